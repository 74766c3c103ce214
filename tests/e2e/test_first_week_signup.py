"""Sign-up in real Chromium (issue: what a first week trips on, Everyone): the page is in the
site's design, the password rules sit under the password field, a refused password says why next
to the field, and a good one creates the account.

Set UPDATE_DOCS_SCREENSHOTS=1 to refresh docs/images/firstweek-signup.png from this run.
"""

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import docs_screenshot
from webapp.accounts.models import User

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_sign_up_shows_the_password_rules_and_creates_a_teacher(transactional_db, live_site, page):
    page.goto(f"{live_site.url}/accounts/signup/")
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    rules = page.locator("#password-rules")
    expect(rules).to_contain_text("at least 8 characters")
    # The rules describe the password field, right under it.
    assert page.get_by_label("Password", exact=True).get_attribute("aria-describedby") == (
        "password-rules"
    )

    page.get_by_label("teacher").check()
    page.get_by_label("Username").fill("ms-okafor")
    page.get_by_label("Password", exact=True).fill("12345678")
    page.get_by_label("Password again").fill("12345678")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("alert").filter(has_text="entirely numeric")).to_be_visible()
    expect(page.get_by_label("Username")).to_have_value("ms-okafor")
    docs_screenshot(page, "firstweek-signup")

    page.get_by_label("Password", exact=True).fill("quiet-harbour-71")
    page.get_by_label("Password again").fill("quiet-harbour-71")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_load_state("networkidle")
    assert User.objects.get(username="ms-okafor").role == "teacher"
