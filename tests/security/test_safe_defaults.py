"""Finding 3 of issue 12: debug pages for everyone, and inputs that reached them.

`make run` served with DEBUG on and a published key, and three inputs reached a 500 debug page
(settings, source, locals): a NUL byte in a join code (`/teach/join/%00/`), a superscript digit in
`?assignment=` ("²".isdigit() is True, int("²") fails), `?q=%00` on a problem set's page (PostgreSQL
refuses NUL). Each now gives a clean 4xx or is ignored; DEBUG is off by default (see
tests/webapp/core/test_settings.py); the error pages are the site's own, with a way back.
"""

import os
import sys

import httpx
import pytest
from django.test import override_settings
from django.urls import reverse

from tests.fixtures.services import free_port, start_child, wait_until
from webapp.classes.models import Assignment, Classroom, Enrollment
from webapp.core.params import param_id, param_text
from webapp.problems.models import ProblemSet


@pytest.fixture
def classroom(teacher, student):
    classroom = Classroom.objects.create(teacher=teacher, name="7B", join_code="JOIN7B")
    Enrollment.objects.create(classroom=classroom, student=student)
    problem_set = ProblemSet.objects.create(owner=teacher, title="Homework")
    Assignment.objects.create(classroom=classroom, problem_set=problem_set)
    return classroom


@pytest.mark.parametrize("code", ["%00", "ab%00cd", "%C2%B2", "%E2%80%8B"])
def test_a_join_link_with_a_nul_or_odd_characters_is_a_clean_not_found(client, student, code):
    client.force_login(student)
    response = client.get(f"/teach/join/{code}/")
    assert response.status_code == 404
    assert "No class has the code" in response.content.decode()


def test_a_join_form_with_a_nul_is_refused_with_a_message(client, student):
    client.force_login(student)
    response = client.post(reverse("classes:join"), {"code": "JOIN\x007B"}, follow=True)
    assert response.status_code == 200
    assert "Null characters are not allowed" in response.content.decode()
    assert not Enrollment.objects.filter(classroom__join_code="JOIN7B", student=student).exists()


def test_a_join_link_with_spaces_and_lower_case_still_works(client, student, classroom):
    Enrollment.objects.all().delete()
    client.force_login(student)
    assert client.get("/teach/join/join-7b/").status_code == 200
    client.post("/teach/join/join-7b/")
    assert Enrollment.objects.filter(classroom=classroom, student=student).exists()


@pytest.mark.parametrize("value", ["²", "٣", "1²", "%00", "99999999999999999999", "-1", "0", "1e3"])
def test_a_malformed_assignment_filter_is_ignored(client, teacher, classroom, value):
    client.force_login(teacher)
    url = reverse("classes:classroom_results", args=[classroom.pk])
    response = client.get(url, {"assignment": value.replace("%00", "\x00")})
    assert response.status_code == 200


def test_a_well_formed_assignment_filter_still_filters(client, teacher, classroom):
    client.force_login(teacher)
    url = reverse("classes:classroom_results", args=[classroom.pk])
    assignment = Assignment.objects.get(classroom=classroom)
    assert client.get(url, {"assignment": str(assignment.pk)}).status_code == 200
    assert client.get(url, {"assignment": str(assignment.pk + 1000)}).status_code == 404


def test_a_nul_in_the_problem_search_is_ignored(client, teacher):
    problem_set = ProblemSet.objects.create(owner=teacher, title="Algebra")
    client.force_login(teacher)
    url = reverse("problems:problem_set_detail", args=[problem_set.pk])
    assert client.get(url, {"q": "\x00"}).status_code == 200
    assert client.get(url, {"q": "x\x00y", "show": "\x00"}).status_code == 200


def test_a_nul_in_a_rollback_reason_is_not_a_server_error(client, admin):
    client.force_login(admin)
    response = client.post(reverse("registry:rollback"), {"reason": "oops\x00"})
    assert response.status_code < 500


@pytest.mark.parametrize("value", ["\x00", "ad\x00min"])
def test_a_nul_in_the_admins_filters_is_ignored(client, admin, value):
    # The audit log's person filter and the problem-set review's search reached PostgreSQL with
    # the NUL (a 500), found by probing every page's query parameters on a live site.
    client.force_login(admin)
    assert (
        client.get(reverse("audit:audit_log"), {"who": value, "action": value}).status_code == 200
    )
    assert (
        client.get(reverse("set_review:set_list"), {"q": value, "show": value}).status_code == 200
    )


def test_a_nul_in_an_admins_note_or_unlock_is_not_a_server_error(client, admin, teacher):
    from webapp.accounts.models import TeacherStatus

    teacher.teacher_status = TeacherStatus.PENDING
    teacher.save(update_fields=["teacher_status"])
    client.force_login(admin)
    decide = reverse("teacher_review:teacher_decide", args=[teacher.pk])
    response = client.post(decide, {"decision": "reject", "note": "no\x00thanks"})
    assert response.status_code == 302
    teacher.refresh_from_db()
    assert teacher.teacher_status == TeacherStatus.REJECTED
    unlock = reverse("accounts:lockout_unlock")
    response = client.post(unlock, {"kind": "account", "value": "stu\x00dent"}, follow=True)
    assert response.status_code == 200
    assert "Choose an account or an address to unlock." in response.content.decode()


def test_the_shared_readers_accept_ascii_ids_and_text_only():
    from django.http import QueryDict

    params = QueryDict(
        "a=12&b=%C2%B2&c=%D9%A3&d=99999999999999999999&e=%00&f=+7+&q=hi%00&r=hello&s=" + "x" * 300
    )
    assert param_id(params, "a") == 12
    assert [param_id(params, name) for name in "bcde"] == [None] * 4
    assert param_id(params, "f") == 7
    assert param_id(params, "missing") is None
    assert param_text(params, "q", max_chars=10) == ""
    assert param_text(params, "r", max_chars=3) == "hel"
    assert len(param_text(params, "s", max_chars=200)) == 200


# --- the site's own error pages, with DEBUG off -----------------------------------------------


def _looks_like_the_site(page: str) -> None:
    assert 'class="site-header"' in page and "Ring Tutor" in page
    assert 'href="/"' in page  # the way back
    for leak in ("Traceback", "SECRET_KEY", "settings", "hunter2", "Request Method"):
        assert leak not in page


@override_settings(DEBUG=False)
def test_the_404_page_is_the_sites_own(client, student):
    client.force_login(student)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    _looks_like_the_site(response.content.decode())
    assert "There is nothing here" in response.content.decode()


@override_settings(DEBUG=False)
def test_the_403_page_is_the_sites_own(client, student):
    client.force_login(student)
    response = client.get(reverse("registry:dashboard"))
    assert response.status_code == 403
    page = response.content.decode()
    _looks_like_the_site(page)
    assert "not open to you" in page and "student" in page


@override_settings(DEBUG=False, ROOT_URLCONF="tests.security.urls_with_a_failing_view")
def test_the_500_page_is_the_sites_own_and_shows_nothing_of_the_error(client):
    client.raise_request_exception = False
    response = client.get("/failing/")
    assert response.status_code == 500
    page = response.content.decode()
    _looks_like_the_site(page)
    assert "went wrong on our side" in page


@override_settings(DEBUG=False)
def test_a_stale_form_gets_the_sites_csrf_page(student):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(student)
    response = client.post(reverse("classes:join"), {"code": "JOIN7B"})
    assert response.status_code == 403
    _looks_like_the_site(response.content.decode())
    assert "form has expired" in response.content.decode()


# --- `make run`'s defaults on a real server ------------------------------------------------------


@pytest.mark.integration
def test_a_site_started_with_the_defaults_has_no_debug_pages_and_serves_static_files(
    child_env, tmp_path
):
    import subprocess

    env = {k: v for k, v in child_env.items() if k not in {"DEBUG", "SECRET_KEY"}}
    env.update(SECURE_COOKIES="0", DJANGO_SETTINGS_MODULE="webapp.settings")
    # What `make setup` does before `make run` starts the site.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=os.getcwd(), env=env, check=True, timeout=300,
    )  # fmt: skip
    port = free_port()
    child = start_child(
        [sys.executable, "-m", "uvicorn", "webapp.asgi:application",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        log_path=tmp_path / "uvicorn.log",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/accounts/login/", timeout=2).status_code == 200,
            timeout=60,
            child=child,
            what="uvicorn with the defaults",
        )
        css = httpx.get(f"{url}/static/css/site.css", timeout=10)
        assert css.status_code == 200 and ".card" in css.text
        missing = httpx.get(f"{url}/no/such/page/", timeout=10)
        assert missing.status_code == 404
        _looks_like_the_site(missing.text)
        # Anonymous: the join link asks for a log-in, whatever the code holds.
        join = httpx.get(f"{url}/teach/join/%00/", timeout=10)
        assert join.status_code == 302
    finally:
        child.stop()
