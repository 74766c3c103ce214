"""In a real browser, each demo user logs in through the form and lands on their role's home page."""

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize(
    "username,path",
    [("student", "/solve/"), ("teacher", "/teach/"), ("admin", "/dashboard/")],
)
def test_demo_user_lands_on_role_home(demo_users, live_site, page, login, username, path):
    login(page, username)
    assert page.url == f"{live_site.url}{path}"
    assert page.get_by_role("button", name="Log out").is_visible()


def test_wrong_password_is_refused_in_words(demo_users, live_site, page, login):
    login(page, "student", "not-the-password")
    assert "/accounts/login/" in page.url
    assert page.get_by_role("alert").is_visible()


def test_student_is_forbidden_from_teacher_pages(demo_users, live_site, page, login):
    login(page, "student")
    response = page.goto(f"{live_site.url}/teach/")
    assert response.status == 403
