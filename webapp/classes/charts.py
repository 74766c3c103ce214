"""Geometry for the server-rendered SVG bar chart of the problems the model gets wrong most.

Rendered on the server so the chart needs no JavaScript, prints, and reads out through its
<title>/<desc> text; the list beside it carries the same numbers for anyone who cannot see it.
"""

from __future__ import annotations

from webapp.classes.selectors import ProblemRow

CHART_WIDTH = 600
LABEL_WIDTH = 230
BAR_SPACE = 300
BAR_HEIGHT = 24
BAR_GAP = 8
LABEL_CHARS = 32


def wrong_answers_chart(rows: list[ProblemRow]) -> dict:
    """Bars (one per problem, longest = most wrong model solutions) laid out in SVG units."""
    most = max((row.activity.model_wrong for row in rows), default=0)
    bars = []
    for index, row in enumerate(rows):
        label = f"{row.problem.problem_set.title} #{row.problem.position + 1}"
        width = round(BAR_SPACE * row.activity.model_wrong / most, 1) if most else 0
        y = index * (BAR_HEIGHT + BAR_GAP)
        bars.append(
            {
                "row": row,
                "label": label,
                "short_label": label
                if len(label) <= LABEL_CHARS
                else label[: LABEL_CHARS - 1] + "…",
                "y": y,
                "text_y": y + BAR_HEIGHT * 0.7,
                "width": width,
                "count_x": LABEL_WIDTH + width + 6,
            }
        )
    return {
        "bars": bars,
        "width": CHART_WIDTH,
        "height": max(BAR_HEIGHT, len(bars) * (BAR_HEIGHT + BAR_GAP)),
        "bar_x": LABEL_WIDTH,
        "bar_height": BAR_HEIGHT,
        "label_x": LABEL_WIDTH - 8,
    }
