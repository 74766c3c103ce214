"""How far an answer can be trusted, as the student sees it in real Chromium against the live site.

Forced outputs (finished generation rows written here, as the worker stores them, for statements
a student typed) show each state deterministically: a natural-language question answered right
gets the *checked* badge with what the exact check computed; a wrong answer gets the disagreement
notice with the computed value and a working hint path; a question outside the model's topics
gets the scope note; a cut-off answer says so and has no Copy button. With the real worker the
same states come from the served model: the scope note is on the page before any token, a long
problem is cut off at the length limit, and a natural question gets the badge its answer earns.

Set UPDATE_DOCS_SCREENSHOTS=1 to refresh docs/images/answer-*.png and own-answer-unchecked.png from
this run.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from ringmodel import read_manifest
from tests.fixtures.inference import wait_for_row
from tests.fixtures.problems import stored_solution, symbolic_practice_attempt
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import Problem
from webapp.tutoring.models import Attempt, AttemptMode, Generation

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
GENERATION_TIMEOUT_MS = 120_000


@pytest.fixture
def student_page(demo_users, live_site, page, login):
    login(page, "student")
    page.set_viewport_size({"width": 1000, "height": 900})
    return page


def forced(student, statement: str, **fields) -> Generation:
    """A typed question and a finished solution, stored as the worker stores one (no queue
    entry, so no worker touches it)."""
    problem = Problem.objects.create(
        created_by=student, statement=statement, content_key=problem_content_key(statement)
    )
    attempt = Attempt.objects.create(student=student, problem=problem)
    return stored_solution(attempt, **fields)


def open_attempt(page, live_site, generation: Generation):
    page.goto(f"{live_site.url}/solve/attempts/{generation.attempt_id}/")
    return page.locator(f"#generation-{generation.pk}")


def keep_screenshot(page, tmp_path, name: str) -> None:
    shot = tmp_path / name
    page.screenshot(path=shot, full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        target = ROOT / "docs" / "images" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(shot.read_bytes())


def test_a_right_answer_to_a_natural_question_is_checked(
    student_page, live_site, demo_users, tmp_path
):
    generation = forced(
        demo_users["student"],
        "what's 15% of 240??",
        reasoning="15% of 240 = 240/100*15\n240/100=2.4 ...\nso 36",
        answer="The answer is \\boxed{36}.",
        final_answer="36",
        verdict="correct",
        verdict_source="calculation",
        confidence=0.93,
    )
    article = open_attempt(student_page, live_site, generation)
    badge = article.locator("[data-check]")
    expect(badge).to_have_attribute("data-check", "checked")
    expect(badge).to_contain_text("✓ Checked: 15% of 240 = 36, computed exactly")
    expect(article.locator(".final-answer-value .katex")).to_be_visible()
    expect(article.get_by_role("button", name="Copy answer")).to_be_visible()
    keep_screenshot(student_page, tmp_path, "answer-checked.png")


def test_a_wrong_answer_gets_the_disagreement_and_the_hint_path(
    student_page, live_site, demo_users, tmp_path
):
    generation = forced(
        demo_users["student"],
        "what is 3*7?",
        reasoning="multiply 3*7 by columns:\nones: 3*7=21, write 1 carry 2\nso 3*7=297",
        answer="The answer is \\boxed{297}.",
        final_answer="297",
        verdict="wrong",
        verdict_source="calculation",
        confidence=0.88,
    )
    page = student_page
    article = open_attempt(page, live_site, generation)
    expect(article.locator("[data-check]")).to_have_attribute("data-check", "disagrees")
    notice = article.locator("[data-role=disagreement]")
    expect(notice).to_contain_text("A check worked this out exactly: 3 × 7 = 21")
    expect(article.locator(".final-answer")).to_contain_text("is probably wrong")
    expect(article.get_by_text("Final answer:")).to_have_count(0)
    keep_screenshot(page, tmp_path, "answer-disputed.png")

    notice.get_by_role("button", name="Start again with hints").click()
    # The page is already on an attempt's URL: wait for the new attempt's, not a match of the old.
    here = f"/solve/attempts/{generation.attempt_id}/"
    page.wait_for_url(
        lambda url: re.search(r"/solve/attempts/\d+/$", url) is not None and not url.endswith(here)
    )
    attempt = Attempt.objects.order_by("-pk").first()
    assert attempt.pk != generation.attempt_id and attempt.mode == AttemptMode.TUTOR
    assert attempt.problem_id == generation.attempt.problem_id
    expect(page.locator(".mode-badge")).to_have_text("Hints first")


def test_an_out_of_scope_question_gets_the_scope_note(
    student_page, live_site, demo_users, tmp_path
):
    generation = forced(
        demo_users["student"],
        "Who was the first king of England?",
        reasoning="add 12+7 by columns ...",
        answer="The answer is \\boxed{19}.",
        final_answer="19",
        confidence=0.31,
    )
    article = open_attempt(student_page, live_site, generation)
    note = article.locator("[data-role=scope-note]")
    expect(note).to_contain_text("outside what this model was trained on")
    expect(note).to_contain_text("It looks like history")
    expect(note).to_contain_text("Ring-lite")
    # The note comes before the answer, and the answer itself is marked unchecked and unsure.
    assert note.evaluate(
        "(el) => !!(el.compareDocumentPosition(el.parentElement.querySelector("
        "'[data-role=answer]')) & Node.DOCUMENT_POSITION_FOLLOWING)"
    )
    expect(article.locator("[data-check]")).to_have_attribute("data-check", "unchecked")
    keep_screenshot(student_page, tmp_path, "answer-out-of-scope.png")


def test_a_cut_off_answer_says_so_without_a_copy_button(
    student_page, live_site, demo_users, tmp_path
):
    generation = forced(
        demo_users["student"],
        "Compute 987654 * 456789.",
        reasoning="multiply 987654 by 9:\nones: 4*9=36, write 6 carry 3\n" * 12,
        answer="",
        final_answer="",
        cut_off=True,
        completion_tokens=768,
        confidence=0.97,
    )
    article = open_attempt(student_page, live_site, generation)
    note = article.locator("[data-role=cut-off]")
    expect(note).to_contain_text("This answer was cut off")
    expect(note).to_contain_text("(768 tokens)")
    expect(note.get_by_role("button", name="Regenerate the answer")).to_be_visible()
    expect(article.get_by_role("button", name="Copy answer")).to_have_count(0)
    keep_screenshot(student_page, tmp_path, "answer-cut-off.png")


# --- with the real worker -------------------------------------------------------------------


def ask(page, live_site, statement: str) -> None:
    page.goto(f"{live_site.url}/solve/")
    page.get_by_label("Your problem").fill(statement)
    page.get_by_role("button", name="Solve it step by step").click()
    page.wait_for_url(re.compile(r"/solve/attempts/\d+/$"))


def last_generation(page) -> Generation:
    article = page.locator("article.generation").last
    return Generation.objects.get(pk=int(article.get_attribute("data-generation-id")))


@pytest.fixture
def served_model_is_trained(inference_worker) -> bool:
    return bool({"sft", "c3po_job"} & read_manifest(inference_worker.checkpoint).keys())


def test_served_answers_carry_their_check(
    student_page, live_site, inference_worker, served_model_is_trained
):
    page = student_page
    # Out of scope: the note is drawn with the queued generation, before any token.
    with inference_worker.paused():
        ask(page, live_site, "Who was the first king of England?")
        expect(page.locator("[data-role=scope-note]")).to_contain_text("It looks like history")
    article = page.locator("article.generation").last
    expect(article).to_have_attribute("data-status", "done", timeout=GENERATION_TIMEOUT_MS)

    # A natural question: the badge the served model's answer earns, from the exact check.
    ask(page, live_site, "what is 3*7?")
    article = page.locator("article.generation").last
    expect(article).to_have_attribute("data-status", "done", timeout=GENERATION_TIMEOUT_MS)
    row = last_generation(page)
    wait_for_row(row, lambda r: r.status == "done", "done")
    row.refresh_from_db()
    assert row.confidence is not None and 0 < row.confidence <= 1
    if row.cut_off:
        expect(article.locator("[data-role=cut-off]")).to_be_visible()
    elif row.final_answer:
        expected = "checked" if row.final_answer.strip() == "21" else "disagrees"
        expect(article.locator("[data-check]")).to_have_attribute("data-check", expected)
        if expected == "disagrees":
            expect(article.locator("[data-role=disagreement]")).to_contain_text("3 × 7 = 21")

    # A long problem: an answer that runs into the length limit says so (a random-init model
    # always does; a trained one may finish or stop early, and then there is no note).
    ask(page, live_site, "Compute 987654321 * 123456789.")
    article = page.locator("article.generation").last
    expect(article).to_have_attribute("data-status", "done", timeout=GENERATION_TIMEOUT_MS)
    row = last_generation(page)
    row.refresh_from_db()
    if not served_model_is_trained:
        assert row.cut_off
    note = article.locator("[data-role=cut-off]")
    if row.cut_off:
        expect(note).to_contain_text("This answer was cut off")
        if not row.answer.strip():
            expect(article.get_by_role("button", name="Copy answer")).to_have_count(0)
    else:
        expect(article.locator("[data-role=result-row], .result-row")).to_be_visible()
        expect(note).to_have_count(0)


def test_an_own_answer_the_checker_cannot_finish_is_saved_unchecked(
    demo_users, student_page, live_site, tmp_path
):
    # A factorial of 998,001 passes the cheap guard and would take sympy minutes: the checker
    # process runs out of its time (or, still starting, is not free within the wait), and the
    # answer is saved with no verdict, never marked wrong.
    attempt = symbolic_practice_attempt(demo_users["teacher"], demo_users["student"])
    page = student_page
    page.goto(f"{live_site.url}/solve/attempts/{attempt.pk}/")
    page.get_by_label("Your answer").fill("(999*999)!")
    page.get_by_role("button", name="Check", exact=True).click()
    note = page.locator('[data-own-verdict="timed-out"]')
    expect(note).to_contain_text("couldn't check", timeout=30_000)
    expect(note).to_contain_text("busy with other answers")
    assert attempt.own_answers.get().is_correct is None
    keep_screenshot(page, tmp_path, "own-answer-unchecked.png")
