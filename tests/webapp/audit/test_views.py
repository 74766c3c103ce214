"""The admin's audit page: newest first, filtered by action or person, paginated; 403 for
everyone else."""

import pytest
from django.urls import reverse

from webapp.accounts.services import user_create
from webapp.audit.models import AuditAction
from webapp.audit.services import audit_record
from webapp.audit.views import EVENTS_PER_PAGE

pytestmark = pytest.mark.django_db
URL = reverse("audit:audit_log")


@pytest.fixture
def admin():
    return user_create(username="aud-admin", password="x", role="admin", validate=False)


def test_admins_see_every_event_newest_first(client, admin):
    audit_record(action=AuditAction.LOGIN_FAILED, actor_username="first-one", ip="192.0.2.1")
    audit_record(action=AuditAction.JOB_LAUNCHED, actor=admin, details={"stage": "c3po-math"})
    client.force_login(admin)
    page = client.get(URL).content.decode()
    assert page.index('data-action="job.launched"') < page.index('data-action="login.failed"')
    assert "first-one" in page and "192.0.2.1" in page and "c3po-math" in page


def test_filtering_by_action_and_person(client, admin):
    audit_record(action=AuditAction.LOGIN_FAILED, actor_username="mallory")
    audit_record(action=AuditAction.MODEL_PROMOTED, actor=admin)
    client.force_login(admin)
    failed = client.get(URL, {"action": "login.failed"}).content.decode()
    assert 'data-action="login.failed"' in failed and 'data-action="model.promoted"' not in failed
    mallory = client.get(URL, {"who": "mallory"}).content.decode()
    assert 'data-action="login.failed"' in mallory and 'data-action="model.promoted"' not in mallory
    # An unknown action is ignored rather than an error.
    assert client.get(URL, {"action": "<script>"}).status_code == 200


def test_pages_keep_the_filter(client, admin):
    for n in range(EVENTS_PER_PAGE + 3):
        audit_record(action=AuditAction.LOGIN_FAILED, actor_username=f"guess{n}")
    client.force_login(admin)
    first = client.get(URL, {"action": "login.failed"}).content.decode()
    assert first.count('data-action="login.failed"') == EVENTS_PER_PAGE
    assert "action=login.failed&amp;page=2" in first
    second = client.get(URL, {"action": "login.failed", "page": 2}).content.decode()
    assert second.count('data-action="login.failed"') == 3 and "guess0" in second


@pytest.mark.parametrize("role", ["student", "teacher"])
def test_other_roles_get_403(client, role):
    client.force_login(user_create(username=f"u-{role}", password="x", role=role, validate=False))
    assert client.get(URL).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get(URL)
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]
