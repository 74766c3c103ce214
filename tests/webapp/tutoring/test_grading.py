"""The exact check of a finished solution against a statement that is a pure calculation: the
one function the inference worker grades with (and the page, for answers finished before the
worker did)."""

import pytest

from webapp.tutoring.grading import calculation_verdict
from webapp.tutoring.models import Verdict


@pytest.mark.parametrize(
    ("statement", "final_answer", "verdict"),
    [
        ("what is 3*7?", "21", Verdict.CORRECT),
        ("what is 3*7?", "297", Verdict.WRONG),
        ("What is 15% of 240?", "36", Verdict.CORRECT),
        ("Convert 0.135 km to m.", "135 m", Verdict.CORRECT),
        ("Convert 0.135 km to m.", "135 kg", Verdict.WRONG),
        # Not a pure calculation, or nothing to compare: no verdict.
        ("Ann has 12 pens and buys 30 more. How many pens now?", "42", None),
        ("what is 3*7?", "", None),
    ],
)
def test_an_answer_is_checked_against_the_exact_value(statement, final_answer, verdict):
    assert calculation_verdict(statement=statement, final_answer=final_answer) == verdict


def test_an_answer_the_checker_cannot_settle_has_no_verdict(monkeypatch):
    monkeypatch.setattr("webapp.core.answer_checks.answer_verdict", lambda **kwargs: None)
    assert calculation_verdict(statement="what is 3*7?", final_answer="(999*999)!") is None

    def broken(**kwargs):
        raise RuntimeError("a checking bug")

    monkeypatch.setattr("webapp.core.answer_checks.answer_verdict", broken)
    assert calculation_verdict(statement="what is 3*7?", final_answer="21") is None
