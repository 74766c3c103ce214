"""The admin's decisions on teachers, through the services and the review page: who may decide,
which decisions make sense from which state, and what the list shows."""

import pytest
from django.urls import reverse

from webapp.accounts.models import TeacherStatus
from webapp.accounts.selectors import teacher_review_list, teacher_status_counts
from webapp.accounts.services import (
    teacher_approve,
    teacher_reject,
    teacher_trust_update,
    user_create,
)
from webapp.core.errors import ServiceError

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return user_create(username="rev-admin", password="x", role="admin", validate=False)


def signed_up(name: str, role: str = "teacher"):
    return user_create(username=name, password="x", role=role, validate=False, self_registered=True)


def test_only_self_registered_teachers_start_pending():
    assert signed_up("t1").teacher_status == TeacherStatus.PENDING
    assert signed_up("s1", role="student").teacher_status == TeacherStatus.APPROVED
    made = user_create(username="t2", password="x", role="teacher", validate=False)
    assert made.teacher_status == TeacherStatus.APPROVED


def test_only_admins_decide(admin):
    pending = signed_up("t1")
    other_teacher = user_create(username="t2", password="x", role="teacher", validate=False)
    for actor in (other_teacher, pending, None):
        with pytest.raises(ServiceError) as refused:
            teacher_approve(teacher=pending, actor=actor)
        assert refused.value.status == 403
    pending.refresh_from_db()
    assert pending.teacher_status == TeacherStatus.PENDING


def test_decisions_follow_the_state(admin):
    teacher = signed_up("t1")
    with pytest.raises(ServiceError) as untrusted:
        teacher_trust_update(teacher=teacher, actor=admin, trusted=True)
    assert untrusted.value.code == "not_approved"
    teacher_reject(teacher=teacher, actor=admin)
    with pytest.raises(ServiceError):
        teacher_reject(teacher=teacher, actor=admin)  # already rejected
    teacher_approve(teacher=teacher, actor=admin)  # a rejection can be reconsidered
    with pytest.raises(ServiceError) as approved:
        teacher_reject(teacher=teacher, actor=admin)
    assert approved.value.code == "already_approved"
    student = user_create(username="s1", password="x", validate=False)
    with pytest.raises(ServiceError) as not_teacher:
        teacher_approve(teacher=student, actor=admin)
    assert not_teacher.value.status == 404


def test_the_list_and_counts(admin, client):
    first, second = signed_up("early"), signed_up("late")
    teacher_approve(teacher=second, actor=admin)
    assert [t.username for t in teacher_review_list(status="pending")] == ["early"]
    assert teacher_status_counts() == {"pending": 1, "approved": 1, "rejected": 0}
    client.force_login(admin)
    page = client.get(reverse("teacher_review:teacher_list")).content.decode()
    assert 'data-teacher="early"' in page and 'data-teacher="late"' not in page
    assert "Awaiting approval (1)" in page
    approved = client.get(reverse("teacher_review:teacher_list"), {"status": "approved"})
    assert "by rev-admin" in approved.content.decode()
    # A decision that makes no sense is explained, not a crash.
    response = client.post(
        reverse("teacher_review:teacher_decide", args=[second.pk]), {"decision": "reject"}
    )
    assert response.status_code == 302
    assert client.get(response["Location"]).status_code == 200
    bogus = client.post(
        reverse("teacher_review:teacher_decide", args=[first.pk]), {"decision": "delete"}
    )
    assert bogus.status_code == 404
