"""Right-to-left text and direction controls, as Chromium lays them out on the live site.

A student types an Arabic problem with a right-to-left override (U+202E) pasted in front of a
number, and an English one. The override is gone from what is stored (webapp.core.user_text), the
Arabic statement is laid out right to left and the English one left to right (each takes its
direction from its own first letter, `dir="auto"`), and the history page's own text around them
keeps its direction.

Set UPDATE_DOCS_SCREENSHOTS=1 to refresh docs/images/right-to-left-history.png from this run.
"""

import os
from pathlib import Path

import pytest

from tests.fixtures.problems import stored_solution
from webapp.tutoring.models import Attempt
from webapp.tutoring.services import problem_for_typed_statement

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
ARABIC = "احسب \u202e12 + 5\u202c ثم اقسم الناتج على 17."
ENGLISH = "Compute 12 + 5, then divide by 17."


def answered(student, statement: str) -> Attempt:
    """A typed problem with a finished solution, as the worker stores one (no queue entry)."""
    problem = problem_for_typed_statement(student=student, statement=statement)
    attempt = Attempt.objects.create(student=student, problem=problem)
    stored_solution(
        attempt,
        reasoning="12 + 5 = 17, and 17 / 17 = 1.",
        answer="The result is $\\boxed{1}$.",
        final_answer="1",
        completion_tokens=30,
        duration_ms=400.0,
    )
    return attempt


def direction(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(
        selector, "nodes => nodes.map(n => getComputedStyle(n).direction)"
    )


def test_an_arabic_problem_reads_right_to_left_and_a_pasted_override_is_gone(
    demo_users, live_site, page, login, tmp_path
):
    student = demo_users["student"]
    arabic = answered(student, ARABIC)
    answered(student, ENGLISH)
    assert "\u202e" not in arabic.problem.statement and "\u202c" not in arabic.problem.statement
    assert arabic.problem.statement == "احسب 12 + 5 ثم اقسم الناتج على 17."

    login(page, "student")
    page.set_viewport_size({"width": 1000, "height": 700})
    page.goto(f"{live_site.url}/solve/history/")
    statements = page.locator(".attempt-statement")
    assert statements.count() == 2
    # Newest first: the English problem, then the Arabic one.
    assert direction(page, ".attempt-statement") == ["ltr", "rtl"]
    # The page's own text keeps the page's direction.
    assert direction(page, ".attempt-meta") == ["ltr", "ltr"]
    shot = tmp_path / "right-to-left-history.png"
    page.screenshot(path=shot, full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        (ROOT / "docs" / "images" / shot.name).write_bytes(shot.read_bytes())

    page.goto(f"{live_site.url}/solve/attempts/{arabic.pk}/")
    assert direction(page, ".problem-statement") == ["rtl"]
    assert page.locator(".problem-statement").inner_text().strip() == arabic.problem.statement
