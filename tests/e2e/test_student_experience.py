"""The student's experience in real Chromium against the running site and the real inference worker:
a problem streams its reasoning and then a boxed answer typeset by KaTeX, stop cancels on the
server, a reload mid-stream resumes, hints come one at a time, an own answer gets a verdict, and a
hostile problem renders inert. The renderer's rules (prices, every math delimiter, code, streaming
without re-rendering finished blocks) are checked in the same browser.

One browser and one server for the session (the shared fixtures); the worker is started once.
Set UPDATE_DOCS_SCREENSHOTS=1 to refresh docs/images/solved-problem.png from this run.
"""

import os
import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from ringmodel import read_manifest
from tests.fixtures.browser import docs_screenshot
from tests.fixtures.inference import wait_for_row
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import Problem, ProblemSet
from webapp.tutoring.models import Attempt, Feedback, Generation, OwnAnswer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# Long enough (column-by-column long multiplication) to be caught while still streaming.
LONG_PROBLEM = "Compute 987654 * 456789."
GENERATION_TIMEOUT_MS = 90_000


@pytest.fixture
def practice_problem(demo_users) -> Problem:
    # Public (an admin's decision): the demo student is in none of the teacher's classes here.
    problem_set = ProblemSet.objects.create(
        owner=demo_users["teacher"], title="Warm-up", is_practice=True, is_public=True
    )
    statement = "Compute 47 + 38."
    return Problem.objects.create(
        problem_set=problem_set,
        statement=statement,
        answer_kind="number",
        reference_answer="85",
        content_key=problem_content_key(statement),
    )


# Records every phase a generation's article enters (the page's `generation:phase` events), with
# the reasoning block's state and the status line at that moment, so a fast generation cannot slip
# between two assertions.
PHASE_RECORDER = """
window.__phases = [];
document.addEventListener('generation:phase', (event) => {
  const article = event.target;
  const details = article.querySelector('details.reasoning');
  window.__phases.push({
    article: article.id,
    phase: event.detail.phase,
    open: details ? details.open : null,
    status: article.querySelector('[data-role=status-text]').textContent,
  });
});
"""


# Counts the messages every WebSocket of the page receives (`ask_and_watch` waits for the first).
SOCKET_COUNTER = """
window.__socketMessages = 0;
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', () => { window.__socketMessages += 1; });
  }
};
"""


@pytest.fixture
def student_page(demo_users, live_site, page, login):
    page.context.add_init_script(PHASE_RECORDER)
    page.context.add_init_script(SOCKET_COUNTER)
    login(page, "student")
    return page


def phases(page) -> list[dict]:
    return page.evaluate("window.__phases")


def ask(page, live_site, statement: str, *, button: str = "Solve it step by step"):
    page.goto(f"{live_site.url}/solve/")
    page.get_by_label("Your problem").fill(statement)
    page.get_by_role("button", name=button).click()
    page.wait_for_url(re.compile(r"/solve/attempts/\d+/$"))


def generation_row(page) -> Generation:
    article = page.locator("article.generation").last
    return Generation.objects.get(pk=int(article.get_attribute("data-generation-id")))


REASONING_TEXT = (
    "() => { const el = [...document.querySelectorAll('[data-role=reasoning]')].pop();"
    " const view = el && RichText.of(el); return view ? view.text : null; }"
)


def reasoning_text(page) -> str:
    return page.evaluate(REASONING_TEXT) or ""


def wait_for_reasoning_longer_than(page, length: int) -> None:
    page.wait_for_function(
        f"() => (({REASONING_TEXT})() || '').length > {length}", timeout=GENERATION_TIMEOUT_MS
    )


# --- the renderer, in the browser -----------------------------------------------------------

RENDER = "([text, streaming]) => RichText.renderHtml(text, {streaming})"


def test_rich_text_rules(student_page, live_site):
    page = student_page
    page.goto(f"{live_site.url}/solve/")

    def render(text: str, streaming: bool = False) -> str:
        return page.evaluate(RENDER, [text, streaming])

    prices = render("It costs $5 and $10, so $15 in all.")
    assert "katex" not in prices and "$5 and $10" in prices
    for source in ["$x^2$", "$$x^2$$", r"\(x^2\)", r"\[x^2\]", "$$\nx^2\n$$", r"\boxed{85}"]:
        assert 'class="katex' in render(source), source
    assert render(r"\$5 and \$6").strip() == "<p>$5 and $6</p>"
    code = render("```\nprint('$x$')\n```\nand `$y$` but $z$")
    assert "<code>print('$x$')" in code and "<code>$y$</code>" in code
    assert code.count('class="katex"') == 1  # only $z$

    hostile = render(
        '<script>alert(1)</script>\n\n<img src=x onerror="alert(2)"> [a](javascript:alert(3))'
    )
    assert "<script" not in hostile and "<img" not in hostile and "javascript:" not in hostile
    assert "&lt;script&gt;" in hostile

    # Streaming: unclosed math waits as plain text; a price is never held back.
    assert "katex" not in render("so $x^2 + y", True) and 'data-math="pending"' in render(
        "so $x^2", True
    )
    assert "pending" not in render("it costs $5 each", True)

    # Finished blocks are rendered once: appending to the stream never replaces them.
    kept = page.evaluate(
        """() => {
            const el = document.createElement('div');
            document.body.append(el);
            const view = RichText.attach(el, {final: false});
            view.set('First $a+b$ block.\\n\\nSecond', {final: false});
            view.flush();
            const first = el.querySelector('.md-block');
            const firstMath = first.querySelector('.katex');
            for (const piece of [' block with $x', '^2', '$ done.', '\\n\\nThird']) {
                view.append(piece);
                view.flush();
            }
            view.finish();
            view.flush();
            const blocks = el.querySelectorAll('.md-block');
            return {
                same: blocks[0] === first && first.querySelector('.katex') === firstMath,
                count: blocks.length,
                secondMath: blocks[1].querySelectorAll('.katex').length,
            };
        }"""
    )
    assert kept == {"same": True, "count": 3, "secondMath": 1}


def test_hostile_problem_renders_inert(student_page, live_site, inference_worker):
    page = student_page
    hostile = (
        "<script>window.__pwned = 1</script>\n\n"
        'Find $x$ if <img src="x" onerror="window.__pwned = 2"> and $2x = 4$.'
    )
    page.goto(f"{live_site.url}/solve/")
    page.get_by_label("Your problem").fill(hostile)
    preview = page.locator("#statement-preview")
    expect(preview.locator(".katex").first).to_be_visible()
    page.get_by_role("button", name="Solve it step by step").click()
    page.wait_for_url(re.compile(r"/solve/attempts/\d+/$"))
    statement = page.locator(".problem-statement")
    expect(statement).to_contain_text("<script>window.__pwned = 1</script>")
    expect(statement).to_contain_text('<img src="x" onerror=')
    assert statement.locator("img, script").count() == 0
    assert statement.locator(".katex").count() == 2
    assert page.evaluate("() => window.__pwned") is None


# --- with the real worker -------------------------------------------------------------------


@pytest.fixture(scope="session")
def served_model_is_trained(inference_worker) -> bool:
    """Whether the worker serves a trained checkpoint (SFT or C3PO), which closes its reasoning
    and boxes an answer; the session's default is a random-init ring-tiny, which never does."""
    manifest = read_manifest(inference_worker.checkpoint)
    return bool({"sft", "c3po_job"} & manifest.keys())


def test_solution_streams_then_verdict_feedback_and_own_answer(
    student_page, live_site, inference_worker, practice_problem
):
    page = student_page
    # With the workers held until the page is connected, it sees the whole stream, thinking
    # phase included, however late a loaded machine renders it.
    ask_and_watch(page, live_site, inference_worker, practice_problem.statement)
    article = page.locator("article.generation").last
    wait_for_reasoning_longer_than(page, 0)
    expect(article).to_have_attribute("data-status", "done", timeout=GENERATION_TIMEOUT_MS)
    expect(article.locator("[data-role=status-text]")).to_have_text("Done")
    # While it thought, the reasoning block was open and the status line said so.
    thinking = [p for p in phases(page) if p["phase"] == "thinking"]
    assert thinking and all(p["open"] and p["status"] == "Thinking…" for p in thinking)
    assert phases(page)[-1]["phase"] == "ended"
    expect(article.locator("[data-role=reasoning-label]")).to_contain_text("Thought for")
    expect(article.get_by_role("button", name="Stop")).to_have_count(0)
    row = generation_row(page)
    assert row.status == "done"
    if row.cut_off:
        # The session's random-init model never closes its reasoning: the answer reached the
        # length limit, so the page says it was cut off instead of grading an answer it lacks.
        expect(article.locator("[data-role=cut-off]")).to_be_visible()
        expect(article.locator("[data-verdict]")).to_have_count(0)
    else:
        # The verdict against the answer key, as the worker stored it.
        verdict = article.locator("[data-verdict]")
        expect(verdict).to_be_visible()
        assert row.verdict in ("correct", "wrong")
        assert verdict.get_attribute("data-verdict") == row.verdict
    assert reasoning_text(page) == row.reasoning

    # Feedback: thumbs down asks what went wrong; the tags are stored with the generation.
    article.get_by_role("button", name="Not helpful").click()
    article.get_by_label("Unclear step").check()
    article.get_by_label("Tell us more (optional)").fill("skips the carry")
    with page.expect_response(lambda r: r.url.endswith("/feedback/")) as sent:
        article.get_by_role("button", name="Send feedback").click()
    assert sent.value.ok
    expect(article.get_by_text("Thanks, your feedback is saved.")).to_be_visible()
    feedback = Feedback.objects.get(generation=row)
    assert (feedback.rating, feedback.tags, feedback.text) == (
        -1,
        ["unclear_step"],
        "skips the carry",
    )

    # Own answer: the same verifier, recorded.
    page.get_by_label("Your answer").fill("84")
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.locator("[data-own-verdict=wrong]")).to_be_visible()
    page.get_by_label("Your answer").fill("85")
    page.get_by_role("button", name="Check", exact=True).click()
    expect(page.locator("[data-own-verdict=correct]")).to_be_visible()
    assert list(OwnAnswer.objects.order_by("created_at").values_list("answer", "is_correct")) == [
        ("84", False),
        ("85", True),
    ]


def test_boxed_answer_is_typeset_by_katex(
    student_page, live_site, inference_worker, practice_problem, served_model_is_trained, tmp_path
):
    if not served_model_is_trained:
        pytest.skip(
            "the worker serves a random-init checkpoint, which never ends its reasoning; "
            "run with RING_TEST_CHECKPOINT=checkpoints/ring-tiny"
        )
    page = student_page
    page.set_viewport_size({"width": 1000, "height": 900})
    ask(page, live_site, practice_problem.statement)
    first = page.locator("article.generation").first
    expect(first).to_have_attribute("data-status", "done", timeout=GENERATION_TIMEOUT_MS)
    expect(first.locator("[data-role=answer] .katex annotation")).to_contain_text("\\boxed")
    # ring-tiny may finish this one before the page has even loaded (the page then shows it
    # finished); Regenerate streams into the open page, so every phase of it is seen.
    page.get_by_role("button", name="Regenerate").click()
    article = page.locator("article.generation").nth(1)
    expect(article.get_by_role("heading")).to_have_text("Solution 2")
    expect(article).to_have_attribute("data-status", "done", timeout=GENERATION_TIMEOUT_MS)
    # It thought with the reasoning open; when the answer started the reasoning folded away.
    article_id = article.get_attribute("id")
    seen = [(p["phase"], p["open"]) for p in phases(page) if p["article"] == article_id]
    assert ("thinking", True) in seen and ("answering", False) in seen, seen
    assert seen.index(("thinking", True)) < seen.index(("answering", False))
    expect(article.locator("details.reasoning")).not_to_have_attribute("open", "")
    expect(article.locator("[data-role=reasoning-label]")).to_contain_text("Thought for")
    boxed = article.locator("[data-role=answer] .katex annotation").filter(has_text="\\boxed")
    expect(boxed).to_have_count(1)
    row = generation_row(page)
    assert row.final_answer and row.final_answer in boxed.text_content()
    expect(article.locator(".final-answer-value .katex")).to_be_visible()

    # The student can open the reasoning again (and the screenshot shows both).
    article.locator("details.reasoning summary").click()
    expect(article.locator("details.reasoning")).to_have_attribute("open", "")
    expect(article.locator("[data-role=reasoning]")).to_be_visible()

    screenshot = tmp_path / "solved-problem.png"
    page.screenshot(path=screenshot, full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        target = ROOT / "docs" / "images" / "solved-problem.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(screenshot.read_bytes())


def ask_and_watch(page, live_site, workers, statement: str) -> Generation:
    """Ask with the workers held until the attempt page's socket has its first message (the
    snapshot of the queued generation), so the page sees the stream from its first delta."""
    with workers.paused():
        ask(page, live_site, statement)
        # A function, not an expression: Playwright evals a polled expression in the page, which
        # the site's Content-Security-Policy (no 'unsafe-eval') refuses.
        page.wait_for_function("() => window.__socketMessages > 0", timeout=30_000)
        return generation_row(page)


# --- the click: the attempt page arrives in the ask's answer, its socket opens at once ------


def test_asking_streams_into_the_page_without_loading_another(
    student_page, live_site, inference_worker, browser, login
):
    page = student_page
    page.goto(f"{live_site.url}/solve/")
    # A mark on this document: still there after the click means no page was loaded.
    page.evaluate("() => { window.__sameDocument = true; }")
    documents = []
    page.on("request", lambda r: documents.append(r.url) if r.resource_type == "document" else None)
    page.get_by_label("Your problem").fill("Compute 47 + 38.")
    page.get_by_role("button", name="Solve it step by step").click()

    # The attempt's URL is in the address bar, and the first text streams in on this page.
    page.wait_for_url(re.compile(r"/solve/attempts/\d+/$"))
    wait_for_reasoning_longer_than(page, 0)
    assert page.evaluate("() => window.__sameDocument") is True
    assert documents == []  # no redirect, no GET of the attempt page
    expect(page).to_have_title("Compute 47 + 38. · Ring Tutor")
    expect(page.locator(".problem-statement")).to_have_text("Compute 47 + 38.")
    expect(page.locator("#problem-title")).to_be_focused()  # a new page to a keyboard, too
    attempt_url = page.url
    generation = generation_row(page)
    assert generation.attempt.problem.statement == "Compute 47 + 38."

    # Reload: the whole attempt page, from the server.
    page.reload()
    assert page.evaluate("() => window.__sameDocument") is None
    article = page.locator("article.generation").last
    expect(article).to_have_attribute("id", f"generation-{generation.pk}")
    expect(article).to_have_attribute("data-status", "done", timeout=GENERATION_TIMEOUT_MS)

    # Back: the ask page, loaded afresh, lists the new attempt; forward: the attempt again.
    page.go_back()
    page.wait_for_url(f"{live_site.url}/solve/")
    expect(page.get_by_role("heading", name="What are you working on?")).to_be_visible()
    expect(page.locator(".attempt-list")).to_contain_text("Compute 47 + 38.")
    # Back and forward between these entries are same-document steps that htmx turns into page
    # loads; a forward sent before this page's deferred htmx has run is a history step nobody
    # handles (the ask page stays under the attempt's URL). A person cannot click that fast.
    page.wait_for_function("() => document.readyState === 'complete' && !!window.htmx")
    page.go_forward()
    page.wait_for_url(attempt_url)
    expect(page.locator("article.generation").last).to_have_attribute(
        "data-status", "done", timeout=GENERATION_TIMEOUT_MS
    )

    # Without JavaScript the same form posts, redirects and shows the attempt page.
    context = browser.new_context(java_script_enabled=False)
    try:
        plain = login(context.new_page(), "student")
        plain.goto(f"{live_site.url}/solve/")
        plain.get_by_label("Your problem").fill("Compute 64 * 7.")
        plain.get_by_role("button", name="Give me a hint first").click()
        plain.wait_for_url(re.compile(r"/solve/attempts/\d+/$"))
        expect(plain.locator("article.generation h2")).to_have_text("Hint 1")
        hint = Generation.objects.get(
            pk=plain.locator("article.generation").get_attribute("data-generation-id")
        )
        assert hint.attempt.problem.statement == "Compute 64 * 7." and hint.kind == "hint"
    finally:
        context.close()


def test_a_refused_ask_shows_the_reason_in_the_page(student_page, live_site):
    page = student_page
    page.goto(f"{live_site.url}/solve/")
    page.get_by_role("button", name="Solve it step by step").click()
    # The form comes back with its error, as without JavaScript; the address stays /solve/.
    expect(page.locator("#statement-errors")).to_have_text("Type a problem first.")
    assert page.url == f"{live_site.url}/solve/"
    page.get_by_label("Your problem").fill("Compute 2 + 3.")
    expect(page.locator("#statement-preview")).to_contain_text("Compute 2 + 3.")  # still wired
    assert not Attempt.objects.exists()


def test_a_failed_ask_says_so_and_keeps_what_was_typed(student_page, live_site):
    page = student_page
    page.goto(f"{live_site.url}/solve/")
    page.get_by_label("Your problem").fill("Compute 2 + 3.")
    # The site answers 500, then the network is gone: each says so, and the question stays.
    page.route("**/solve/ask/", lambda route: route.fulfill(status=500, body="boom"))
    page.get_by_role("button", name="Solve it step by step").click()
    alert = page.locator("#request-error")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Something went wrong on the site (500)")
    docs_screenshot(page, "request-failed")
    page.unroute("**/solve/ask/")
    page.route("**/solve/ask/", lambda route: route.abort())
    page.get_by_role("button", name="Solve it step by step").click()
    expect(alert).to_contain_text("could not be reached")
    expect(page.get_by_label("Your problem")).to_have_value("Compute 2 + 3.")
    page.get_by_role("button", name="Dismiss").click()
    expect(alert).to_be_hidden()
    assert not Attempt.objects.exists()


def test_an_ask_after_the_session_ended_goes_to_the_log_in_page(student_page, live_site):
    page = student_page
    page.goto(f"{live_site.url}/solve/")
    page.get_by_label("Your problem").fill("Compute 2 + 3.")
    # The session ended (logged out in another tab, expired); the CSRF cookie is still there.
    page.context.clear_cookies(name=settings.SESSION_COOKIE_NAME)
    page.get_by_role("button", name="Solve it step by step").click()
    # The whole page becomes the log-in page, which comes back to the ask page, not to a fragment.
    page.wait_for_url(re.compile(r"/accounts/login/\?next=/solve/$"))
    expect(page.get_by_role("button", name=re.compile("Log in", re.I))).to_be_visible()


# A test generation takes about two seconds (600 tokens), and a loaded machine can deliver all of it
# to the page at once, after the worker has finished. So a test that must act while a generation
# runs holds the worker's engine: the worker claims the request and hands it to the engine, the
# page says "Thinking…", and not one token comes until the test has acted.
@contextmanager
def held_running(page, live_site, workers, statement: str):
    """Ask; yields the generation once it is running on a worker whose engine is held."""
    with workers.engines_held():
        generation = ask_and_watch(page, live_site, workers, statement)
        wait_for_row(generation, lambda row: row.status == "running", "claim")
        status = page.locator("article.generation").last.locator("[data-role=status-text]")
        expect(status).to_have_text("Thinking…")
        yield generation


def test_stop_cancels_on_the_server(student_page, live_site, inference_worker):
    page = student_page
    article = page.locator("article.generation")
    with held_running(page, live_site, inference_worker, LONG_PROBLEM) as generation:
        article.last.get_by_role("button", name="Stop").click()
        wait_for_row(generation, lambda row: row.cancel_requested, "stop request")
        # Released only once the worker has taken the stop: released earlier, a loaded machine
        # can run the whole answer before the worker hears of it.
        worker = inference_worker.by_id(generation.worker_id)
        worker.wait_for_log(f"cancelling generation {generation.pk}")
    # The engine runs again: the worker aborts the request inside it, and the page hears so.
    article = article.last
    expect(article.locator("[data-role=status-text]")).to_have_text("Stopped", timeout=30_000)
    expect(article.get_by_role("button", name="Stop")).to_have_count(0)
    generation.refresh_from_db()
    assert generation.status == "cancelled" and generation.cancel_requested
    assert generation.completion_tokens < 600  # aborted, not run to the length limit
    stopped_at = reasoning_text(page)
    page.wait_for_timeout(1000)
    assert reasoning_text(page) == stopped_at  # nothing more arrives
    expect(page.get_by_role("button", name="Regenerate")).to_be_visible()


def test_reload_mid_stream_resumes(student_page, live_site, inference_worker):
    page = student_page
    with held_running(page, live_site, inference_worker, LONG_PROBLEM):
        page.reload()
        # The reloaded page joins the running generation (its snapshot says so).
        status = page.locator("article.generation").last.locator("[data-role=status-text]")
        expect(status).to_have_text("Thinking…")
    article = page.locator("article.generation").last
    expect(article).to_have_attribute("data-status", "done", timeout=GENERATION_TIMEOUT_MS)
    row = generation_row(page)
    # Everything the worker generated reached the reloaded page, live. (A reconnect that starts
    # from a snapshot of text already generated is tested at the socket level, in
    # tests/worker/inference/test_inference_integration.py.)
    assert row.reasoning and reasoning_text(page) == row.reasoning


def test_hints_one_at_a_time_then_the_full_solution(
    student_page, live_site, inference_worker, practice_problem
):
    page = student_page
    page.goto(f"{live_site.url}/solve/sets/{practice_problem.problem_set_id}/")
    page.get_by_role("button", name="Hints for problem 1").click()
    page.wait_for_url(re.compile(r"/solve/attempts/\d+/$"))
    first = page.locator("article.generation").first
    expect(first.get_by_role("heading")).to_have_text("Hint 1")
    assert first.locator("details.reasoning").count() == 0  # a hint shows no worked solution
    expect(first).to_have_attribute("data-status", "done", timeout=GENERATION_TIMEOUT_MS)

    page.get_by_role("button", name="Next hint").click()
    second = page.locator("article.generation").nth(1)
    expect(second.get_by_role("heading")).to_have_text("Hint 2")
    expect(second).to_have_attribute("data-status", "done", timeout=GENERATION_TIMEOUT_MS)
    expect(page.get_by_text("Hints used: 2 of 3")).to_be_visible()

    page.get_by_role("button", name="Show the full solution").click()
    solution = page.locator("article.generation").nth(2)
    expect(solution.get_by_role("heading")).to_have_text("Solution")
    expect(solution).to_have_attribute("data-status", "done", timeout=GENERATION_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Next hint")).to_have_count(0)
    attempt = Attempt.objects.get(problem=practice_problem)
    assert attempt.hints_revealed == 2
    kinds = list(attempt.generations.order_by("queued_at").values_list("kind", "hint_index"))
    assert kinds == [("hint", 0), ("hint", 1), ("solution", None)]
    # A hint is what the server cut from the model's solution, and nothing else reached the page.
    for hint in attempt.generations.filter(kind="hint"):
        assert hint.reasoning == "" and hint.final_answer == "" and hint.answer
    # Each hint counts its own tokens, not the hidden solution's that every hint shares, and the
    # page shows each generation's own count.
    solution_row = attempt.generations.get(kind="solution")
    page.reload()
    for index, row in enumerate(attempt.generations.order_by("queued_at")):
        meta = page.locator("article.generation").nth(index).locator(".meta")
        expect(meta).to_contain_text(f"{row.completion_tokens} tokens")
        if row.kind == "hint":
            assert row.completion_tokens < solution_row.completion_tokens
