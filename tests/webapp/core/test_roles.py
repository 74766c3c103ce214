"""Role boundaries: who may open which home page, and where each role lands after logging in."""

import pytest
from django.urls import reverse

from webapp.accounts.services import user_create

pytestmark = pytest.mark.django_db

PAGES = {
    "student": reverse("tutoring:student_home"),
    "teacher": reverse("classes:teacher_home"),
    "admin": reverse("registry:dashboard"),
}


@pytest.fixture
def users():
    return {
        role: user_create(username=f"u-{role}", password="x", role=role, validate=False)
        for role in ("student", "teacher", "admin")
    }


@pytest.mark.parametrize("page", PAGES.values())
def test_anonymous_is_sent_to_login(client, page):
    response = client.get(page)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_an_anonymous_htmx_request_loads_the_log_in_page_as_a_whole(client):
    """htmx would follow a redirect inside its request and swap the log-in page into a fragment;
    it is told to load the log-in page, which then returns to the page the person was on."""
    response = client.post(
        reverse("tutoring:attempt_create"),
        {"statement": "Compute 2 + 3."},
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/solve/?x=1"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("accounts:login") + "?next=/solve/%3Fx%3D1"


@pytest.mark.parametrize(
    "role,page,status",
    [
        ("student", "student", 200),
        ("student", "teacher", 403),
        ("student", "admin", 403),
        ("teacher", "teacher", 200),
        ("teacher", "student", 403),
        ("teacher", "admin", 403),
        ("admin", "admin", 200),
        ("admin", "teacher", 200),
    ],
)
def test_role_boundaries(client, users, role, page, status):
    client.force_login(users[role])
    assert client.get(PAGES[page]).status_code == status


@pytest.mark.parametrize("role", ["student", "teacher", "admin"])
def test_home_redirects_to_the_roles_page(client, users, role):
    client.force_login(users[role])
    response = client.get(reverse("core:home"))
    assert response.status_code == 302
    assert response["Location"] == PAGES[role]


def test_signup_creates_a_student_and_logs_in(client):
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "newkid",
            "email": "",
            "role": "student",
            "password1": "a-long-enough-pass-42",
            "password2": "a-long-enough-pass-42",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == PAGES["student"]


def test_signup_cannot_choose_admin(client):
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "sneaky",
            "role": "admin",
            "password1": "a-long-enough-pass-42",
            "password2": "a-long-enough-pass-42",
        },
    )
    assert response.status_code == 200
    assert "role" in response.context["form"].errors


def test_weak_password_is_refused_with_a_message(client):
    response = client.post(
        reverse("accounts:signup"),
        {"username": "weak", "role": "student", "password1": "123", "password2": "123"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors
