"""A teacher's first week in real Chromium (issue: what a first week trips on, Teachers 1-3 and
Students 2): a CSV with one broken line, an unknown domain and a key without a unit is previewed
with every problem listed at once, and the good rows are imported with "Skip bad items"; a GIFT
quiz typed without blank lines between questions imports every question; a student then checks
their own answer to the unit-less key in kilometres, centimetres and kilograms.

Set UPDATE_DOCS_SCREENSHOTS=1 to refresh docs/images/firstweek-upload-preview.png.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from webapp.problems.models import Problem, ProblemSet

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"

CSV_WITH_PROBLEMS = (
    "statement,answer,domain\n"
    "What is 2+3?,5,math\n"
    '"An unclosed quote on this line,7,math\n'
    '"A ball rolls at 45 m/s for 3 s. How far does it go, in metres?",135,science\n'
    "How many legs has a spider?,8,biology\n"
    ",4,math\n"
)
GIFT_WITHOUT_BLANK_LINES = (
    "::Add:: What is 3+4? {#7}\n"
    "::Half:: What is half of 10? {=5}\n"
    "Which is prime?\n{~4 =7 ~9}\n"
    "Water boils at 100 degrees Celsius at sea level.{TRUE}\n"
)


def screenshot(page, name: str) -> None:
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        page.screenshot(path=str(IMAGES / f"{name}.png"), full_page=True)


def upload(page, live_site, path: Path) -> None:
    page.goto(f"{live_site.url}/teach/sets/upload/")
    page.get_by_label("Problem file").set_input_files(str(path))
    page.get_by_role("button", name="Preview").click()


def test_a_flawed_csv_and_a_run_on_gift_quiz_import_what_is_good(
    demo_users, live_site, browser, page, login, tmp_path
):
    login(page, "teacher")
    csv_file = tmp_path / "week1.csv"
    csv_file.write_text(CSV_WITH_PROBLEMS)
    upload(page, live_site, csv_file)

    # One preview lists every problem of the file, and says the rest can still be imported.
    callout = page.get_by_role("alert").filter(has_text="items with errors")
    expect(callout).to_contain_text("2 items with errors: the other 3 can still be imported")
    expect(callout).to_contain_text("Line 3")
    expect(callout).to_contain_text("a double quote opened here is never closed")
    expect(callout).to_contain_text("Line 6")
    expect(callout).to_contain_text("The statement is empty")
    # The unknown domain and the unit taken from the statement are said, not done silently.
    expect(
        page.get_by_text(re.compile("“biology” is not one of the site's domains"))
    ).to_be_visible()
    expect(page.get_by_text(re.compile(r"so it is checked as 135 m"))).to_be_visible()
    screenshot(page, "firstweek-upload-preview")

    page.get_by_label("Title of the new set").fill("Week 1 mechanics")
    page.get_by_label("Skip bad items, import the rest").check()
    page.get_by_role("button", name="Import 3 problems").click()
    expect(page.get_by_text(re.compile(r"Imported 3 problem\(s\)"))).to_be_visible()
    imported = ProblemSet.objects.get(title="Week 1 mechanics")
    rolled = imported.problems.get(reference_answer="135")
    assert rolled.unit == "m"
    assert imported.problems.get(reference_answer="8").domain == "science"

    # A GIFT quiz typed without blank lines: every question, each run-on one with a note.
    gift_file = tmp_path / "quiz.gift"
    gift_file.write_text(GIFT_WITHOUT_BLANK_LINES)
    upload(page, live_site, gift_file)
    expect(page.get_by_role("button", name="Import 4 problems")).to_be_visible()
    expect(page.get_by_text(re.compile("No blank line before this question")).first).to_be_visible()
    page.get_by_label("Title of the new set").fill("Quick quiz")
    page.get_by_role("button", name="Import 4 problems").click()
    expect(page.get_by_text(re.compile(r"Imported 4 problem\(s\)"))).to_be_visible()

    # A student answers the unit-less key (135, "in metres?") in other units.
    # (a practice set every student sees: an admin made it public)
    imported.is_practice = True
    imported.is_public = True
    imported.save(update_fields=["is_practice", "is_public"])
    student_context = browser.new_context()
    student = student_context.new_page()
    try:
        login(student, "student")
        student.goto(f"{live_site.url}/solve/sets/{imported.pk}/")
        student.locator(f"#problem-{rolled.pk}").get_by_role("button", name="Hints").click()
        student.wait_for_url(re.compile(r"/solve/attempts/\d+/$"))
        verdicts = {}
        for answer in ["0.135 km", "13500 cm", "135 kg"]:
            student.get_by_label("Your answer").fill(answer)
            student.get_by_role("button", name="Check").click()
            expect(student.locator("#own-answer-result")).to_contain_text(answer)
            verdicts[answer] = student.locator("[data-own-verdict]").get_attribute(
                "data-own-verdict"
            )
        assert verdicts == {"0.135 km": "correct", "13500 cm": "correct", "135 kg": "wrong"}
        screenshot(student, "firstweek-own-answer-units")
    finally:
        student_context.close()
    assert Problem.objects.filter(problem_set=imported).count() == 3


def test_the_teacher_reads_each_students_work_and_downloads_it(demo_users, live_site, page, login):
    from webapp.classes.models import Enrollment
    from webapp.classes.services import assignment_create, classroom_create
    from webapp.problems.content_key import problem_content_key
    from webapp.tutoring.models import Attempt, Generation, OwnAnswer

    teacher, student = demo_users["teacher"], demo_users["student"]
    problem_set = ProblemSet.objects.create(owner=teacher, title="Week 2")
    statement = "Compute $47 + 38$."
    sum_problem = Problem.objects.create(
        problem_set=problem_set,
        statement=statement,
        answer_kind="number",
        reference_answer="85",
        content_key=problem_content_key(statement),
    )
    classroom = classroom_create(teacher=teacher, name="Year 9")
    Enrollment.objects.create(classroom=classroom, student=student)
    assignment_create(classroom=classroom, teacher=teacher, problem_set=problem_set)
    attempt = Attempt.objects.create(
        student=student, problem=sum_problem, mode="tutor", hints_revealed=2
    )
    Generation.objects.create(
        attempt=attempt,
        kind="solution",
        status="done",
        final_answer="85",
        verdict="correct",
        answer="Add the units: 7 + 8 = 15, carry 1. Then 4 + 3 + 1 = 8. So $\\boxed{85}$.",
    )
    OwnAnswer.objects.create(attempt=attempt, answer="85", is_correct=True)

    login(page, "teacher")
    page.goto(f"{live_site.url}/teach/classes/{classroom.pk}/results/")
    work = page.locator(f"#work-{student.pk}")
    work.locator("summary").first.click()  # open the student's work
    row = work.get_by_role("row").filter(has_text="Week 2 #1")
    expect(row.get_by_role("cell").first).to_have_text("hints, then the full solution")
    expect(row.get_by_role("cell").nth(1)).to_have_text("2")
    expect(row).to_contain_text("85")
    expect(row).to_contain_text("✓ correct")
    row.get_by_text("Read it").click()
    expect(row.locator(".tutor-solution")).to_contain_text("carry 1")
    screenshot(page, "firstweek-class-work")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "asked for" in text.splitlines()[0] and "tutor's verdict" in text.splitlines()[0]
    assert "hints" in text.splitlines()[1] and "correct" in text.splitlines()[1]
