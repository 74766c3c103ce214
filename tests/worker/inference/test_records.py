"""`records.verdict_for`: how the worker grades a finished solution once, when it stores it: the
answer key first, else the exact value of a statement that is a pure calculation, else nothing.
(Storing the grade is tested with the worker, tests/worker/inference/test_worker.py.)"""

import dataclasses

import pytest

from worker.inference.records import GenerationJob, Grade, verdict_for

TYPED = GenerationJob(
    generation_id=1,
    kind="solution",
    problem_text="What is 47 + 38?",
    answer_kind="none",
    reference_answer="",
    tolerance=None,
    unit="",
    choices=(),
    has_verified_reference=False,
    cancel_requested=False,
)
KEYED = dataclasses.replace(
    TYPED, answer_kind="number", reference_answer="86", has_verified_reference=True
)


@pytest.mark.parametrize(
    ("job", "final_answer", "grade"),
    [
        (TYPED, "85", Grade("correct", "calculation")),
        (TYPED, "58", Grade("wrong", "calculation")),
        (TYPED, None, Grade("unverifiable", "none")),
        # The answer key settles it, even where the calculation would say otherwise.
        (KEYED, "86", Grade("correct", "answer_key")),
        (KEYED, "85", Grade("wrong", "answer_key")),
        (KEYED, None, Grade("wrong", "answer_key")),
        (
            dataclasses.replace(TYPED, problem_text="Ann has 47 pens."),
            "85",
            Grade("unverifiable", "none"),
        ),
        (dataclasses.replace(TYPED, kind="hint"), "85", Grade("", "")),
    ],
)
def test_the_answer_key_then_the_calculation_then_nothing(job, final_answer, grade):
    assert verdict_for(job, final_answer) == grade


def test_a_key_the_checker_cannot_settle_falls_back_to_the_calculation(monkeypatch):
    calls = []

    def out_of_time_on_the_key(*, reference, **kwargs):
        calls.append(reference)
        return None if reference == "86" else True

    monkeypatch.setattr("webapp.core.answer_checks.answer_verdict", out_of_time_on_the_key)
    assert verdict_for(KEYED, "85") == Grade("correct", "calculation")
    assert calls == ["86", "85"]  # the key, then the exact value, in the one call
