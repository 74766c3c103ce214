"""The teacher's path in real Chromium against the running site: upload a file with planted
errors, read them in the preview, import the good items, create a class, assign the set with a
due date, and see a student join by the shared link and find the assignment with its progress.
A hostile file is refused on screen and leaves nothing in the database.

Set UPDATE_DOCS_SCREENSHOTS=1 to refresh the screenshots in docs/images/ used by the teacher guide.
"""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from webapp.classes.models import Assignment, Enrollment
from webapp.problems.models import Problem, ProblemSet, ProblemUpload

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLES = DOCS / "examples"


def screenshot(page, name: str) -> None:
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        page.screenshot(path=str(DOCS / "images" / f"{name}.png"), full_page=True)


def test_upload_preview_import_assign_and_a_student_sees_it(
    demo_users, live_site, browser, page, login
):
    login(page, "teacher")
    page.goto(f"{live_site.url}/teach/sets/upload/")
    page.get_by_label("Problem file").set_input_files(
        str(EXAMPLES / "with-errors" / "problems.csv")
    )
    page.get_by_role("button", name="Preview").click()

    # The preview: errors with their lines, nothing saved yet.
    expect(page.get_by_role("heading", name=re.compile("5 items with errors"))).to_be_visible()
    expect(
        page.get_by_text("The statement is empty: every problem needs one.").first
    ).to_be_visible()
    assert not Problem.objects.exists()
    page.get_by_role("link", name="Errors", exact=True).click()
    for line in (3, 4, 5, 7, 8):
        expect(page.get_by_role("cell", name=f"Line {line}", exact=True)).to_be_visible()
    expect(
        page.locator("table.preview").get_by_text("“forty-two” is not a number.")
    ).to_be_visible()
    screenshot(page, "teacher-upload-preview")

    page.get_by_label("Title of the new set").fill("Week 1 quiz")
    page.get_by_label("Skip bad items, import the rest").check()
    page.get_by_role("button", name="Import 4 problems").click()
    expect(
        page.get_by_text(re.compile(r"Imported 4 problem\(s\) into “Week 1 quiz”"))
    ).to_be_visible()
    expect(page.get_by_role("heading", name="Week 1 quiz")).to_be_visible()
    assert ProblemSet.objects.get().problems.count() == 4

    # A class, its join code, and the assignment with a due date.
    page.goto(f"{live_site.url}/teach/")
    page.get_by_label("New class").fill("Year 9 maths")
    page.get_by_role("button", name="Create class").click()
    expect(page.get_by_role("heading", name="Year 9 maths")).to_be_visible()
    join_url = page.get_by_label("or this link").input_value()
    assert re.fullmatch(rf"{live_site.url}/teach/join/[A-Z2-9]{{8}}/", join_url)
    page.get_by_label("Problem set").select_option(label="Week 1 quiz")
    page.get_by_label("Due (optional)").fill("2031-03-14T09:30")
    page.get_by_role("button", name="Assign").click()
    expect(page.get_by_text("Assigned “Week 1 quiz” to Year 9 maths.")).to_be_visible()
    assert Assignment.objects.get().due_at.year == 2031
    screenshot(page, "teacher-class")

    # The student opens the shared link, joins, and sees the assignment with progress.
    student_context = browser.new_context()
    student_page = student_context.new_page()
    try:
        login(student_page, "student")
        student_page.goto(join_url)
        student_page.get_by_role("button", name="Join Year 9 maths").click()
        expect(student_page.get_by_text("You joined Year 9 maths.")).to_be_visible()
        expect(student_page.get_by_role("link", name="Week 1 quiz")).to_be_visible()
        expect(student_page.get_by_text("0 of 4 solved")).to_be_visible()
        expect(student_page.get_by_text("due Fri 14 Mar, 09:30")).to_be_visible()
        screenshot(student_page, "student-my-classes")
        assert Enrollment.objects.filter(student=demo_users["student"]).exists()
    finally:
        student_context.close()

    # Back on the teacher's side, the student is on the roster.
    page.reload()
    expect(page.get_by_role("heading", name="Students (1)")).to_be_visible()


def test_a_hostile_file_is_refused_on_screen_and_stores_nothing(
    demo_users, live_site, page, login, tmp_path
):
    login(page, "teacher")
    hostile = tmp_path / "problems.csv"
    hostile.write_text('statement,answer\nFine,1\n"<script>alert(1)</script>",2\n')
    page.goto(f"{live_site.url}/teach/sets/upload/")
    page.get_by_label("Problem file").set_input_files(str(hostile))
    page.get_by_role("button", name="Preview").click()
    alert = page.get_by_role("alert").filter(has_text="This file was not imported")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Line 3, statement: It contains an HTML <script> tag")
    assert not ProblemUpload.objects.exists() and not ProblemSet.objects.exists()
