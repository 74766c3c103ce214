"""A student's first week in real Chromium (issue: what a first week trips on, Students 1, 4, 5):
the tutor's `u*t + a*t^2/2` shows its multiplication signs; an assignment reads "0/2 solved" in a
neutral colour until something is solved; "1 3/4" is accepted for 7/4; one rule for "solved"
shows the same thing on the assignment page and in the history, saying which answer solved it;
and no page asks for a favicon that is not there.

Set UPDATE_DOCS_SCREENSHOTS=1 to refresh docs/images/firstweek-*.png from this run.
"""

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import docs_screenshot
from webapp.classes.models import Enrollment
from webapp.classes.services import assignment_create, classroom_create
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import Problem, ProblemSet
from webapp.tutoring.models import Attempt, AttemptMode, Generation, GenerationKind

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OK_GREEN = "rgb(15, 122, 58)"


def problem(problem_set, statement: str, answer: str, kind: str = "expression") -> Problem:
    return Problem.objects.create(
        problem_set=problem_set,
        statement=statement,
        answer_kind=kind,
        reference_answer=answer,
        content_key=problem_content_key(statement),
    )


@pytest.fixture
def assigned(demo_users):
    teacher, student = demo_users["teacher"], demo_users["student"]
    problem_set = ProblemSet.objects.create(owner=teacher, title="Fractions week")
    first = problem(problem_set, "Compute $1 + \\frac{3}{4}$.", "7/4")
    problem(problem_set, "Compute $2 - \\frac{1}{3}$.", "5/3")
    classroom = classroom_create(teacher=teacher, name="Year 7")
    Enrollment.objects.create(classroom=classroom, student=student)
    assignment = assignment_create(classroom=classroom, teacher=teacher, problem_set=problem_set)
    return assignment, first


def test_progress_mixed_numbers_and_one_rule_for_solved(assigned, live_site, page, login):
    assignment, first = assigned
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    login(page, "student")

    # Nothing solved yet: "0/2 solved", not a green tick.
    page.goto(f"{live_site.url}/solve/")
    progress = page.get_by_label("0 of 2 solved")
    expect(progress).to_have_text("0/2 solved")
    assert progress.evaluate("el => getComputedStyle(el).color") != OK_GREEN
    docs_screenshot(page, "firstweek-student-home")

    # A mixed number is accepted for 7/4; a later wrong answer does not unsolve the problem.
    page.get_by_role("link", name="Fractions week").click()
    page.get_by_role("button", name="Hints for problem 1").click()
    page.wait_for_url(re.compile(r"/solve/attempts/\d+/$"))
    for answer, verdict in [("1 3/4", "correct"), ("2", "wrong")]:
        page.get_by_label("Your answer").fill(answer)
        page.get_by_role("button", name="Check").click()
        expect(page.locator(f"[data-own-verdict={verdict}]")).to_be_visible()

    # The assignment page and the history say the same thing, and which answer they show.
    page.goto(f"{live_site.url}/solve/assignments/{assignment.pk}/")
    expect(page.locator(f"#problem-{first.pk} [data-solved]")).to_have_text(
        "✓ You solved it: 1 3/4"
    )
    page.goto(f"{live_site.url}/solve/history/")
    row = page.locator(".attempt-row").first
    expect(row.locator("[data-solved]")).to_have_text("✓ you solved it: 1 3/4")
    expect(row.get_by_text("your last answer here")).to_be_visible()
    docs_screenshot(page, "firstweek-history-solved")

    page.goto(f"{live_site.url}/solve/")
    done = page.get_by_label("1 of 2 solved")
    expect(done).to_have_text("1/2 solved")
    assert done.evaluate("el => getComputedStyle(el).color") != OK_GREEN

    # The favicon exists, both as the page's icon and at /favicon.ico.
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert page.request.get(f"{live_site.url}{icon}").status == 200
    assert page.request.get(f"{live_site.url}/favicon.ico").status == 200
    assert not [url for url in missing if "favicon" in url], missing


def test_the_tutors_products_keep_their_multiplication_signs(demo_users, live_site, page, login):
    problem_set = ProblemSet.objects.create(
        owner=demo_users["teacher"], title="Motion", is_practice=True
    )
    motion = problem(
        problem_set, "A cart starts at 2 m/s and speeds up at 3 m/s^2. How far in 4 s?", "32"
    )
    attempt = Attempt.objects.create(
        student=demo_users["student"], problem=motion, mode=AttemptMode.TUTOR, hints_revealed=1
    )
    Generation.objects.create(
        attempt=attempt,
        kind=GenerationKind.HINT,
        hint_index=0,
        status="done",
        answer="Use s = u*t + a*t^2/2, where u*t is the distance at the starting speed.\n\n"
        "Products of brackets too: (a+b)*(c+d). Real *emphasis* still works.",
    )
    login(page, "student")
    page.goto(f"{live_site.url}/solve/attempts/{attempt.pk}/")
    hint = page.get_by_label("Hint", exact=True)
    expect(hint).to_contain_text("s = u*t + a*t^2/2, where u*t is the distance")
    expect(hint).to_contain_text("(a+b)*(c+d)")
    assert hint.locator("em").all_inner_texts() == ["emphasis"]
    docs_screenshot(page, "firstweek-hint-operators")


# What the renderer makes of operators the tutor (or a student) writes: every star kept, emphasis
# only where Markdown means it. `**` as a power and operands outside ASCII (Greek letters,
# superscript digits) were read as bold and italics.
OPERATORS = [
    ("2**3 + 3**2 = 17", "2**3 + 3**2 = 17"),
    ("x**2 + y**2", "x**2 + y**2"),
    ("α*β*γ", "α*β*γ"),
    ("π*r*r", "π*r*r"),
    ("x²*y²*z", "x²*y²*z"),
    ("s = u*t + a*t^2/2", "s = u*t + a*t^2/2"),
]
EMPHASIS = [("a *word* here", "em", "word"), ("the **answer** is 4", "strong", "answer")]


def test_powers_and_products_of_any_script_stay_operators(demo_users, live_site, page, login):
    login(page, "student")
    page.goto(f"{live_site.url}/solve/")

    def render(text: str) -> dict:
        return page.evaluate(
            """([text]) => {
                const el = document.createElement('div');
                el.innerHTML = RichText.renderHtml(text, {streaming: false});
                return {text: el.textContent.trim(), em: [...el.querySelectorAll('em, strong')]
                    .map(node => [node.tagName.toLowerCase(), node.textContent])};
            }""",
            [text],
        )

    for source, shown in OPERATORS:
        assert render(source) == {"text": shown, "em": []}, source
    for source, tag, word in EMPHASIS:
        assert render(source)["em"] == [[tag, word]], source
