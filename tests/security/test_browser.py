"""The role findings that only a browser shows, in real Chromium against the running site:

- an outside link in a problem statement (rendered client side by rich-text.js) shows its real
  address and opens with rel="noopener noreferrer nofollow";
- an admin approves a pending teacher on the dashboard and finds the decision in the audit log.

Set UPDATE_DOCS_SCREENSHOTS=1 to refresh docs/images/teacher-approval.png and
docs/images/audit-log.png from this run.
"""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from webapp.accounts.models import TeacherStatus, User
from webapp.accounts.services import user_create
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import Problem, ProblemSet
from webapp.problems.services import problem_set_visibility_update

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
STATEMENT = (
    "Read [the class rules](https://evil.example/phish?from=ring) and https://plain.example/ "
    "first; your [bank](https://bаnk.example/) is not involved. Compute 2 + 2."
)


def _save_screenshot(page, name: str) -> None:
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        target = ROOT / "docs" / "images" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target), full_page=True)


def test_outside_links_show_their_real_address(demo_users, live_site, page, login):
    problem_set = ProblemSet.objects.create(
        owner=demo_users["teacher"], title="Links", is_practice=True, is_public=True
    )
    Problem.objects.create(
        problem_set=problem_set,
        statement=STATEMENT,
        answer_kind="number",
        reference_answer="4",
        content_key=problem_content_key(STATEMENT),
    )
    login(page, "student")
    page.goto(f"{live_site.url}/solve/sets/{problem_set.pk}/")
    statement = page.locator(".problem-statement").first
    disguised = statement.get_by_role("link", name="the class rules")
    expect(disguised).to_have_attribute("href", "https://evil.example/phish?from=ring")
    expect(disguised).to_have_attribute("rel", "nofollow noopener noreferrer")
    expect(disguised).to_have_attribute("target", "_blank")
    expect(disguised).to_have_attribute("title", "https://evil.example/phish?from=ring")
    addresses = statement.locator(".link-address").all_text_contents()
    # The disguised link and the look-alike host (Cyrillic "а") both show where they go; the
    # bare address is its own text already.
    assert addresses == [
        " (https://evil.example/phish?from=ring)",
        " (https://xn--bnk-6cd.example/)",
    ]
    plain = statement.get_by_role("link", name="https://plain.example/")
    expect(plain).to_have_attribute("rel", "nofollow noopener noreferrer")


def test_an_admin_approves_a_pending_teacher_and_finds_it_in_the_audit_log(
    demo_users, live_site, page, login
):
    for name in ("ms-garcia", "mr-okafor", "dr-lindqvist"):
        user_create(
            username=name,
            password="x",
            email=f"{name}@school.example",
            role="teacher",
            validate=False,
            self_registered=True,
        )
    audit_record(action=AuditAction.LOGIN_FAILED, actor_username="admin", ip="203.0.113.7")
    practice = ProblemSet.objects.create(
        owner=demo_users["teacher"], title="Fractions practice", is_practice=True
    )
    problem_set_visibility_update(problem_set=practice, actor=demo_users["admin"], public=True)
    login(page, "admin")
    page.goto(f"{live_site.url}/dashboard/teachers/")
    expect(page.get_by_role("link", name="Awaiting approval (3)")).to_be_visible()
    _save_screenshot(page, "teacher-approval.png")

    page.get_by_role("button", name="Approve mr-okafor").click()
    expect(page.locator(".message.success")).to_contain_text("mr-okafor is approved")
    assert User.objects.get(username="mr-okafor").teacher_status == TeacherStatus.APPROVED

    page.get_by_role("navigation", name="Admin pages").get_by_role("link", name="Audit log").click()
    first_row = page.locator("tbody tr").first
    expect(first_row).to_have_attribute("data-action", "teacher.approved")
    expect(first_row).to_contain_text("mr-okafor")
    expect(page.locator('tr[data-action="login.failed"]')).to_contain_text("203.0.113.7")
    _save_screenshot(page, "audit-log.png")
