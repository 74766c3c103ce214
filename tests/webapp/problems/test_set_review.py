"""The admin's problem-set review pages: the tabs, a set's problems as typed, decisions and their
way back, and the django-admin pages that show (but do not change) the decisions."""

import pytest
from django.urls import reverse

from webapp.problems import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def sets(teacher, other_teacher):
    practice = services.problem_set_create(teacher=teacher, title="Practice A", is_practice=True)
    services.problem_create(
        problem_set=practice,
        teacher=teacher,
        fields={"statement": "See [here](https://x.example) for 1+1.", "answer": "2"},
    )
    homework = services.problem_set_create(teacher=other_teacher, title="Homework B")
    services.problem_create(
        problem_set=homework, teacher=other_teacher, fields={"statement": "Explain why."}
    )
    return practice, homework


def test_tabs_list_the_right_sets(client, site_admin, sets):
    client.force_login(site_admin)
    url = reverse("set_review:set_list")

    def titles(show: str) -> set[str]:
        page = client.get(url, {"show": show}).content.decode()
        return {t for t in ("Practice A", "Homework B") if f'data-set="{t}"' in page}

    assert titles("practice") == {"Practice A"}
    assert titles("training") == {"Practice A"}  # Homework B has nothing ready for training
    assert titles("all") == {"Practice A", "Homework B"}
    assert titles("public") == set() and titles("approved") == set()
    assert titles("nonsense") == {"Practice A"}  # an unknown tab falls back to the first
    by_teacher = client.get(url, {"show": "all", "q": "t-bob"}).content.decode()
    assert 'data-set="Homework B"' in by_teacher and 'data-set="Practice A"' not in by_teacher


def test_the_detail_shows_statements_as_typed_and_decisions_come_back_to_it(
    client, site_admin, sets
):
    practice, _ = sets
    client.force_login(site_admin)
    detail = reverse("set_review:set_detail", args=[practice.pk])
    page = client.get(detail).content.decode()
    assert "See [here](https://x.example) for 1+1." in page  # the raw link, not a rendered one
    response = client.post(
        reverse("set_review:set_decide", args=[practice.pk]),
        {"decision": "approve", "next": "detail"},
    )
    assert response["Location"] == detail
    practice.refresh_from_db()
    assert practice.is_training_approved and practice.training_approved_by == site_admin
    back = client.post(
        reverse("set_review:set_decide", args=[practice.pk]),
        {"decision": "public", "show": "practice"},
    )
    assert back["Location"] == reverse("set_review:set_list") + "?show=practice"
    assert (
        client.post(
            reverse("set_review:set_decide", args=[practice.pk]), {"decision": "drop"}
        ).status_code
        == 404
    )


def test_a_refused_decision_is_a_message(client, site_admin, sets):
    _, homework = sets
    client.force_login(site_admin)
    response = client.post(
        reverse("set_review:set_decide", args=[homework.pk]), {"decision": "public"}, follow=True
    )
    assert "is not a practice set" in response.content.decode()
    homework.refresh_from_db()
    assert not homework.is_public


def test_django_admin_shows_the_decisions_read_only(client, site_admin, sets, teacher):
    site_admin.is_superuser = True
    site_admin.save()
    client.force_login(site_admin)
    practice, _ = sets
    user_page = client.get(reverse("admin:accounts_user_change", args=[teacher.pk]))
    set_page = client.get(reverse("admin:problems_problemset_change", args=[practice.pk]))
    assert user_page.status_code == 200 and set_page.status_code == 200
    assert 'name="teacher_status"' not in user_page.content.decode()
    assert 'name="is_public"' not in set_page.content.decode()
