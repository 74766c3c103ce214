"""`audit_record`: what a row holds, where its address comes from, and that it commits with the
action it describes (or not at all)."""

import pytest
from django.db import transaction
from django.test import RequestFactory

from webapp.accounts.services import user_create
from webapp.audit.models import AuditAction, AuditEvent
from webapp.audit.request_context import AuditRequestMiddleware, current_ip
from webapp.audit.selectors import audit_event_list
from webapp.audit.services import audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return user_create(username="aud-admin", password="x", role="admin", validate=False)


@pytest.fixture
def teacher():
    return user_create(username="aud-teacher", password="x", role="teacher", validate=False)


def test_a_row_names_the_actor_the_target_and_the_details(admin, teacher):
    event = audit_record(
        action=AuditAction.TEACHER_APPROVED,
        actor=admin,
        target=teacher,
        details={"previous": "pending"},
        ip="10.0.0.7",
    )
    event.refresh_from_db()
    assert (event.action, event.actor, event.actor_username) == (
        "teacher.approved",
        admin,
        "aud-admin",
    )
    assert (event.target_type, event.target_id, event.target_label) == (
        "accounts.user",
        str(teacher.pk),
        "aud-teacher",
    )
    assert event.details == {"previous": "pending"} and event.ip == "10.0.0.7"


def test_the_actor_name_survives_the_account(admin):
    audit_record(action=AuditAction.MODEL_PROMOTED, actor=admin)
    admin.delete()
    event = AuditEvent.objects.get()
    assert event.actor is None and event.actor_username == "aud-admin"


def test_an_action_that_rolls_back_leaves_no_row(admin):
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action=AuditAction.JOB_LAUNCHED, actor=admin)
        raise RuntimeError("the launch failed after the audit call")
    assert not AuditEvent.objects.exists()


def test_unknown_actions_are_refused():
    with pytest.raises(ValueError):
        audit_record(action="user.did_something")


def test_the_address_is_the_current_requests_and_only_during_it(admin):
    seen = {}

    def view(request):
        seen["ip"] = current_ip()
        return audit_record(action=AuditAction.SET_MADE_PUBLIC, actor=admin)

    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.44")
    event = AuditRequestMiddleware(view)(request)
    assert seen["ip"] == "192.0.2.44" and event.ip == "192.0.2.44"
    assert current_ip() is None
    bad = RequestFactory().get("/", REMOTE_ADDR="not an address")
    assert AuditRequestMiddleware(lambda r: current_ip())(bad) is None


def test_the_selector_is_newest_first_and_filters(admin, teacher):
    first = audit_record(action=AuditAction.TEACHER_APPROVED, actor=admin, target=teacher)
    second = audit_record(action=AuditAction.LOGIN_FAILED, actor_username="mallory")
    third = audit_record(action=AuditAction.TEACHER_TRUSTED, actor=admin, target=teacher)
    assert list(audit_event_list()) == [third, second, first]
    assert list(audit_event_list(action="login.failed")) == [second]
    assert list(audit_event_list(action="no.such.action")) == []
    assert list(audit_event_list(who="MALLORY")) == [second]
    # A person's rows include those where they are the target (a teacher's approval).
    assert list(audit_event_list(who="aud-teacher")) == [third, first]
