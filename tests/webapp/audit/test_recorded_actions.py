"""Every security-relevant service writes its audit row, in its own transaction: teacher
decisions, sets made public and approved for training, promotions, rollbacks, and training jobs
launched, cancelled and resumed."""

import pytest

from tests.webapp.registry.factories import domain_result, make_pool_problems, make_version
from webapp.accounts.services import (
    teacher_approve,
    teacher_reject,
    teacher_trust_update,
    user_create,
)
from webapp.audit.models import AuditEvent
from webapp.problems import services as problem_services
from webapp.registry.models import JobStatus, TrainingJob, VersionStatus
from webapp.registry.services import model_version_promote, model_version_rollback
from webapp.registry.training_jobs.services import (
    training_job_cancel,
    training_job_create,
    training_job_resume,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return user_create(username="aud-admin", password="x", role="admin", validate=False)


def pending_teacher(name: str):
    return user_create(
        username=name, password="x", role="teacher", validate=False, self_registered=True
    )


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_teacher_decisions(admin):
    ann, bob = pending_teacher("ann"), pending_teacher("bob")
    teacher_approve(teacher=ann, actor=admin)
    teacher_trust_update(teacher=ann, actor=admin, trusted=True)
    teacher_trust_update(teacher=ann, actor=admin, trusted=True)  # unchanged: no second row
    teacher_trust_update(teacher=ann, actor=admin, trusted=False)
    teacher_reject(teacher=bob, actor=admin, note="not a school address")
    assert actions() == [
        "teacher.approved",
        "teacher.trusted",
        "teacher.untrusted",
        "teacher.rejected",
    ]
    rejected = AuditEvent.objects.get(action="teacher.rejected")
    assert rejected.target_label == "bob" and rejected.actor == admin
    assert rejected.details == {"previous": "pending", "note": "not a school address"}


def test_set_decisions(admin):
    teacher = user_create(username="tea", password="x", role="teacher", validate=False)
    problem_set = problem_services.problem_set_create(
        teacher=teacher, title="Week 1", is_practice=True
    )
    problem_services.problem_create(
        problem_set=problem_set, teacher=teacher, fields={"statement": "1+1?", "answer": "2"}
    )
    problem_services.problem_set_visibility_update(
        problem_set=problem_set, actor=admin, public=True
    )
    problem_services.problem_set_training_approval_update(
        problem_set=problem_set, actor=admin, approved=True
    )
    problem_services.problem_set_visibility_update(
        problem_set=problem_set, actor=admin, public=False
    )
    # An untrusted teacher's new problem takes the set out of the pool: recorded as theirs.
    problem_services.problem_create(
        problem_set=problem_set, teacher=teacher, fields={"statement": "2+2?", "answer": "4"}
    )
    assert actions() == [
        "set.made_public",
        "set.training_approved",
        "set.made_private",
        "set.training_withdrawn",
    ]
    approved = AuditEvent.objects.get(action="set.training_approved")
    assert approved.details == {"owner": "tea", "problems": 1}
    lapsed = AuditEvent.objects.get(action="set.training_withdrawn")
    assert lapsed.actor == teacher and lapsed.details["approved_by"] == "aud-admin"


def test_promotion_and_rollback(admin):
    make_version("base", status=VersionStatus.CHAMPION, results={"math": domain_result(50, 100)})
    better = make_version("better", results={"math": domain_result(80, 100)})
    model_version_promote(model_version=better, actor=admin)
    model_version_rollback(actor=admin, reason="students report worse hints")
    assert actions() == ["model.promoted", "model.rolled_back"]
    promoted, rolled_back = AuditEvent.objects.order_by("id")
    assert promoted.target_label == "better" and promoted.details["previous_champion"] == "base"
    assert rolled_back.target_label == "base"
    assert rolled_back.details["reason"] == "students report worse hints"


def test_a_refused_promotion_writes_nothing(admin):
    make_version("base", status=VersionStatus.CHAMPION, results={"math": domain_result(80, 100)})
    worse = make_version("worse", results={"math": domain_result(30, 100)})
    with pytest.raises(Exception):  # noqa: B017 - the gate's ServiceError; only the log matters
        model_version_promote(model_version=worse, actor=admin)
    assert actions() == []


def test_job_launch_cancel_and_resume(admin, tmp_path):
    base = make_version("base", status=VersionStatus.CHAMPION)
    base.path = str(tmp_path)
    base.save()
    make_pool_problems(admin, 12)
    job = training_job_create(
        created_by=admin,
        base_model=base,
        stage="c3po-math",
        algorithm="c3po",
        hyperparameters={"steps": 2},
        problem_filter={},
    )
    TrainingJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED)  # its runner failed
    job = training_job_resume(job=job, actor=admin)
    training_job_cancel(job=job, actor=admin)
    assert actions() == ["job.launched", "job.resumed", "job.cancelled"]
    launched = AuditEvent.objects.get(action="job.launched")
    assert launched.target_id == str(job.pk) and launched.details["stage"] == "c3po-math"
    assert launched.details["problems"] > 0 and len(launched.details["problem_sets"]) == 1
