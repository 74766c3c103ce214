"""What a small model was trained on, written into its manifest, and a bounded check of whether a
question falls outside it.

ring-tiny knows only the generated problem families (`training.problems`); asked about history,
an essay, calculus or code it still answers in its trained format, confidently and wrongly. Its
manifest carries `scope` (`scope_manifest`): the topics, and a sentence naming them for students.
A model without `scope` in its manifest (Ring-lite) is taken to answer broadly, and no note is
shown. `classify_scope` is deliberately simple and bounded (a few regular expressions over the
first `MAX_SCAN_CHARS` characters): a statement is outside the scope when it names an area the
model never saw, or holds no number at all (every trained problem is a calculation).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from training.problems import GENERATORS

MAX_SCAN_CHARS = 2000

SCOPE_SUMMARY = (
    "arithmetic (adding, subtracting, multiplying, order of operations), fractions, "
    "percentages, linear equations, short word problems, unit conversions, and physics and "
    "chemistry calculations on speed, acceleration, force, density and molar mass"
)

# Areas a question can be about that no generator covers, by a few telling words each.
_OUTSIDE_AREAS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "calculus",
        re.compile(
            r"\b(derivative|differentiate|integral|integrate|antiderivative|limit of|"
            r"d/dx|dy/dx)\b|\\int(?![a-z])|\\lim(?![a-z])|\\frac\{d"
        ),
    ),
    ("trigonometry", re.compile(r"\b(sin|cos|tan|sine|cosine|tangent|trigonometr\w*)\b")),
    (
        "history",
        re.compile(
            r"\b(history|historical|war|wars|king|queen|emperor|empire|dynasty|revolution|"
            r"president|pharaoh|who was|when did|century)\b"
        ),
    ),
    (
        "writing",
        re.compile(
            r"\b(essay|poem|story about|write a letter|summar(y|ise|ize)|paragraph|"
            r"book report)\b"
        ),
    ),
    (
        "programming",
        re.compile(
            r"\b(python|javascript|java|html|css|sql|code|coding|program|programming|"
            r"algorithm|compile|function in)\b|c\+\+"
        ),
    ),
    (
        "biology",
        re.compile(r"\b(cell|cells|dna|photosynthesis|evolution|organism|species)\b"),
    ),
)


@dataclass(frozen=True)
class ScopeVerdict:
    """`in_scope` False names the `area` the question seems to be about ("a question without
    numbers" when it holds no calculation)."""

    in_scope: bool
    area: str | None = None


def scope_manifest() -> dict[str, Any]:
    """The manifest entry of a model trained on `training.problems`."""
    return {
        "domains": sorted({d for d, _ in GENERATORS}),
        "topics": [t for _, t in GENERATORS],
        "summary": SCOPE_SUMMARY,
    }


def classify_scope(statement: str) -> ScopeVerdict:
    """Whether a statement looks like one of the trained problem families (bounded time)."""
    text = statement[:MAX_SCAN_CHARS].lower()
    for area, pattern in _OUTSIDE_AREAS:
        if pattern.search(text):
            return ScopeVerdict(in_scope=False, area=area)
    if not re.search(r"\d", text):
        return ScopeVerdict(in_scope=False, area="a question without numbers")
    return ScopeVerdict(in_scope=True)


def manifest_scope(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The `scope` entry of a checkpoint manifest, or None for a model without one."""
    scope = manifest.get("scope")
    return scope if isinstance(scope, dict) and scope.get("summary") else None
