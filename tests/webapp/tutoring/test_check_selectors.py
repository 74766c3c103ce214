"""How far a finished answer is trusted (checked / disagrees / unchecked with the model's
confidence), the out-of-scope note from the serving model's manifest, and how the attempt page
shows them: the disagreement with what the check computed and the hint path, the cut-off note,
no Copy button with nothing to copy. The worker stores the verdict and its source (its side is
tested in tests/worker/inference); the page reads them and runs no check of its own, except for an
answer finished before the worker recorded its calculation check."""

import json

import pytest
from django.urls import reverse

from tests.webapp.tutoring.conftest import finish
from webapp.registry.models import ModelVersion
from webapp.tutoring import services
from webapp.tutoring.check_selectors import (
    CHECKED,
    DISAGREES,
    UNCHECKED,
    generation_answer_check,
    generation_scope_note,
)
from webapp.tutoring.models import GenerationKind, VerdictSource

pytestmark = pytest.mark.django_db


def typed(student, statement):
    attempt = services.attempt_create_from_text(student=student, statement=statement)
    return attempt.generations.get()


@pytest.fixture
def no_checker(monkeypatch):
    """The answer checker, made to fail the test if the page calls it."""

    def called(*args, **kwargs):
        raise AssertionError("the page ran the answer checker")

    monkeypatch.setattr("webapp.core.answer_checks.answer_verdict", called)
    monkeypatch.setattr("webapp.tutoring.check_selectors.calculation_verdict", called)


def test_answer_key_checks_or_disputes(student, practice_set, no_checker):
    attempt = services.attempt_create(student=student, problem=practice_set.problems.first())
    generation = finish(
        attempt.generations.get(),
        final_answer="5/6",
        verdict="correct",
        verdict_source=VerdictSource.ANSWER_KEY,
    )
    check = generation_answer_check(generation=generation)
    assert (check.state, check.source) == (CHECKED, "answer key")
    generation = finish(generation, final_answer="2/5", verdict="wrong")
    assert generation_answer_check(generation=generation).state == DISAGREES
    # Stored before the source was (or by an older worker): a verdict was the answer key's.
    generation = finish(generation, verdict_source="")
    check = generation_answer_check(generation=generation)
    assert (check.state, check.source) == (DISAGREES, "answer key")


def test_a_stored_calculation_verdict_is_shown_without_checking_again(student, no_checker):
    """The worker checked the answer against the calculation once and stored the verdict; the
    page reads it and shows what was computed, read again from the statement."""
    generation = typed(student, "what is 3*7?")
    right = finish(
        generation,
        final_answer="21",
        verdict="correct",
        verdict_source=VerdictSource.CALCULATION,
        confidence=0.2,
    )
    check = generation_answer_check(generation=right)
    assert (check.state, check.source, check.computed) == (CHECKED, "calculation", "3 × 7 = 21")
    assert (check.confidence_percent, check.unsure) == (20, True)
    wrong = finish(generation, final_answer="297", verdict="wrong", confidence=0.99)
    check = generation_answer_check(generation=wrong)
    assert (check.state, check.source, check.computed) == (DISAGREES, "calculation", "3 × 7 = 21")
    # Nothing could check it (the checker ran out of time on the worker): unchecked, for good.
    timed_out = finish(generation, final_answer="(999*999)!", verdict="unverifiable")
    timed_out = finish(timed_out, verdict_source=VerdictSource.NONE)
    check = generation_answer_check(generation=timed_out)
    assert (check.state, check.source, check.computed) == (UNCHECKED, "", "")


def test_a_calculation_no_longer_recognised_keeps_its_stored_verdict(student, no_checker):
    generation = typed(student, "Ann has 12 pens and buys 30 more. How many pens now?")
    generation = finish(
        generation,
        answer=r"\boxed{41}",
        final_answer="41",
        verdict="wrong",
        verdict_source=VerdictSource.CALCULATION,
    )
    check = generation_answer_check(generation=generation)
    assert (check.state, check.source, check.computed) == (DISAGREES, "calculation", "")
    generation = finish(generation, verdict="correct")
    check = generation_answer_check(generation=generation)
    assert (check.state, check.source, check.computed) == (CHECKED, "calculation", "")


def test_an_answer_finished_before_the_worker_checked_calculations_is_checked_here(student):
    """A row without a stored source (finished before the worker recorded its calculation
    check) keeps the page's own check, so an old wrong answer stays flagged."""
    generation = typed(student, "what is 3*7?")
    right = finish(generation, final_answer="21", verdict="unverifiable", confidence=0.2)
    check = generation_answer_check(generation=right)
    assert (check.state, check.source, check.computed) == (CHECKED, "calculation", "3 × 7 = 21")
    wrong = finish(generation, final_answer="297", verdict="unverifiable", confidence=0.99)
    check = generation_answer_check(generation=wrong)
    assert (check.state, check.computed) == (DISAGREES, "3 × 7 = 21")


def test_an_old_answers_calculation_check_never_runs_sympy_in_the_request(student, monkeypatch):
    """The model's final answer is untrusted text: checked against a recognised calculation with
    `training.answers.verify` in the page's own thread, `(999*999)!` held the web process for
    4.3 s (a factorial of 998,001 in sympy, no time limit outside a main thread) on every view
    of the attempt. The worker checks it once now; an answer finished before that is still
    checked on the page, through the bounded answer checker: out of time is unchecked."""

    in_this_process = []  # the symbolic checks run here (the page's own checks catch errors)

    def symbolic(*args, **kwargs):
        in_this_process.append(args)
        return False

    monkeypatch.setattr("training.answers._math_verify", symbolic)
    monkeypatch.setattr("training.answers._math_verify_number", symbolic)
    generation = typed(student, "what is 3*7?")
    costly = finish(generation, final_answer="(999*999)!", verdict="unverifiable")
    check = generation_answer_check(generation=costly)
    assert in_this_process == []
    assert (check.state, check.source, check.computed) == (UNCHECKED, "", "")
    # Numbers are still settled at once, in the process.
    right = finish(generation, final_answer="21")
    assert generation_answer_check(generation=right).state == CHECKED


def test_anything_else_is_unchecked_with_the_models_confidence(student, no_checker):
    generation = typed(student, "Ann has 12 pens and buys 30 more. How many pens now?")
    unsure = finish(
        generation,
        final_answer="42",
        verdict="unverifiable",
        verdict_source=VerdictSource.NONE,
        confidence=0.21,
    )
    check = generation_answer_check(generation=unsure)
    assert (check.state, check.unsure, check.confidence_percent) == (UNCHECKED, True, 21)
    sure = finish(generation, confidence=0.97)
    assert not generation_answer_check(generation=sure).unsure
    unknown = finish(generation, confidence=None)
    assert generation_answer_check(generation=unknown).confidence is None


def test_no_check_for_hints_cut_off_or_unfinished_answers(student):
    generation = typed(student, "what is 3*7?")
    assert generation_answer_check(generation=generation) is None  # still queued
    assert generation_answer_check(generation=finish(generation, final_answer="")) is None
    cut = finish(generation, final_answer="21", cut_off=True)
    assert generation_answer_check(generation=cut) is None
    hint = finish(generation, kind=GenerationKind.HINT, cut_off=False)
    assert generation_answer_check(generation=hint) is None


def test_scope_note_from_the_served_models_manifest(student, tmp_path, settings):
    generation = typed(student, "Who was the first king of England?")
    note = generation_scope_note(generation=generation)  # the fallback model: ring-tiny
    assert note is not None and note.area == "history" and "fractions" in note.summary
    assert generation_scope_note(generation=typed(student, "what is 3*7?")) is None

    broad = tmp_path / "ring-lite"
    broad.mkdir()
    (broad / "manifest.json").write_text(json.dumps({"name": "ring-lite"}))
    version = ModelVersion.objects.create(label="ring-lite", path=str(broad))
    generation.model_version = version
    generation.save()
    assert generation_scope_note(generation=generation) is None  # no declared scope: no note
    settings.RING_MODEL = str(broad)
    assert generation_scope_note(generation=typed(student, "Write an essay on Rome")) is None


@pytest.fixture
def student_client(client, student):
    client.force_login(student)
    return client


def page(client, generation) -> str:
    url = reverse("tutoring:attempt_detail", args=[generation.attempt_id])
    return client.get(url).content.decode()


def test_page_shows_the_disagreement_and_offers_hints(student_client, student, no_checker):
    generation = finish(
        typed(student, "what is 3*7?"),
        reasoning="3*7=297",
        answer=r"The answer is \boxed{297}.",
        final_answer="297",
        verdict="wrong",
        verdict_source=VerdictSource.CALCULATION,
        confidence=0.9,
    )
    html = page(student_client, generation)
    assert 'data-check="disagrees"' in html and 'data-role="disagreement"' in html
    assert "3 × 7 = 21" in html and "is probably wrong" in html
    assert "Final answer:" not in html
    start = reverse("tutoring:problem_start", args=[generation.attempt.problem_id])
    assert f'action="{start}"' in html and 'name="mode" value="tutor"' in html
    assert 'data-role="hint-path"' in html


def test_page_shows_checked_and_unchecked_badges(student_client, student, no_checker):
    checked = finish(
        typed(student, "Compute $757 + 18$."),
        answer=r"\boxed{775}",
        final_answer="775",
        verdict="correct",
        verdict_source=VerdictSource.CALCULATION,
    )
    html = page(student_client, checked)
    assert 'data-check="checked"' in html and "757 + 18 = 775, computed exactly" in html
    footer = student_client.get(reverse("tutoring:generation_footer", args=[checked.pk]))
    assert "757 + 18 = 775, computed exactly" in footer.content.decode()
    unsure = finish(
        typed(student, "Ann has 12 pens and buys 30 more. How many pens now?"),
        answer=r"\boxed{41}",
        final_answer="41",
        verdict="unverifiable",
        verdict_source=VerdictSource.NONE,
        confidence=0.3,
    )
    html = page(student_client, unsure)
    assert 'data-check="unchecked"' in html and "data-unsure" in html
    assert "least likely step: 30%" in html


def test_cut_off_answer_says_so_and_has_no_copy_button(student_client, student):
    generation = finish(
        typed(student, "Compute 987654 * 456789."),
        reasoning="multiply 987654 by each digit of 456789 ...",
        answer="",
        final_answer="",
        verdict="unverifiable",
        cut_off=True,
        completion_tokens=768,
    )
    html = page(student_client, generation)
    assert 'data-role="cut-off"' in html and "This answer was cut off" in html
    assert "(768 tokens)" in html and "it has no final answer" in html
    assert "Regenerate the answer" in html
    assert "Copy answer" not in html
    footer = student_client.get(reverse("tutoring:generation_footer", args=[generation.pk]))
    assert "This answer was cut off" in footer.content.decode()


def test_out_of_scope_question_shows_the_note_at_once(student_client, student):
    generation = typed(student, "Who was the first king of England?")
    html = page(student_client, generation)  # still queued: the note is there before the answer
    assert 'data-role="scope-note"' in html
    assert "outside what this model was trained on" in html and "Ring-lite" in html
    assert 'data-role="scope-note"' not in page(student_client, typed(student, "what is 3*7?"))


def test_page_reads_well_when_the_calculation_is_no_longer_recognised(
    student_client, student, no_checker
):
    generation = finish(
        typed(student, "Ann has 12 pens and buys 30 more. How many pens now?"),
        answer=r"\boxed{41}",
        final_answer="41",
        verdict="wrong",
        verdict_source=VerdictSource.CALCULATION,
    )
    html = page(student_client, generation)
    assert "A check worked this out exactly. The tutor's answer does not match it" in html
    generation = finish(generation, answer=r"\boxed{42}", final_answer="42", verdict="correct")
    assert "✓ Checked: computed exactly" in page(student_client, generation)
