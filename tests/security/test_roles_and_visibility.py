"""Security findings of issue #12 about roles, each reproduced as an attacker would try it:

- a self-registered teacher published a practice set that every student saw;
- a student outside a teacher's classes saw that teacher's (non-public) practice sets;
- every keyed problem of any teacher joined the default C3PO training pool (data poisoning);
- the approval path: a pending teacher approved by an admin can then publish;
- the admin pages (approvals, sets, audit) are closed to every other role.

Each test failed before the fix (the fix: pending teachers, admin-public sets, per-set training
approval) and passes after it. The outside-links finding is a browser test (test_outside_links.py).
"""

import pytest
from django.test import Client
from django.urls import reverse

from webapp.accounts.models import TeacherStatus, User
from webapp.accounts.services import user_create
from webapp.audit.models import AuditEvent
from webapp.classes.models import Classroom, Enrollment
from webapp.core.errors import ServiceError
from webapp.problems import services as problem_services
from webapp.problems.models import ProblemSet
from webapp.problems.selectors import training_pool_problems
from webapp.registry.training_jobs import pool as training_pool

pytestmark = pytest.mark.django_db

SIGNUP_PASSWORD = "a-long-teacher-pass-92"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin():
    return user_create(username="sec-admin", password="x", role="admin", validate=False)


@pytest.fixture
def outsider():
    """A student in no class at all: anyone can sign up as one."""
    return user_create(username="sec-outsider", password="x", role="student", validate=False)


def sign_up_as_teacher(client, username: str = "eve") -> User:
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": username,
            "email": "",
            "password1": SIGNUP_PASSWORD,
            "password2": SIGNUP_PASSWORD,
            "role": "teacher",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return User.objects.get(username=username)


def add_problem(client, problem_set_id: int, statement: str, answer: str) -> None:
    client.post(
        reverse("problems:problem_create", args=[problem_set_id]),
        {"statement": statement, "domain": "math", "answer_kind": "number", "answer": answer},
    )


def student_sees(student, problem_set: ProblemSet) -> bool:
    client = Client()  # a browser of the student's own (no flash messages from another user)
    client.force_login(student)
    listed = problem_set.title in client.get(reverse("tutoring:student_home")).content.decode()
    opened = client.get(reverse("tutoring:problem_set_detail", args=[problem_set.pk]))
    assert listed == (opened.status_code == 200)  # the list and the page agree
    return listed


# --- a self-registered teacher cannot reach every student ------------------------------------


def test_a_self_registered_teacher_cannot_publish_a_set_every_student_sees(client, outsider):
    eve = sign_up_as_teacher(client)
    assert eve.teacher_status == TeacherStatus.PENDING

    # The attack: a new practice set with a link to an outside site.
    client.post(
        reverse("problems:problem_set_create"),
        {"title": "Free answers", "description": "", "is_practice": "on"},
    )
    problem_set = ProblemSet.objects.get(owner=eve)
    add_problem(client, problem_set.pk, "Your grades: [log in](https://evil.example/login)", "1")

    assert not problem_set.is_practice and not problem_set.is_public
    assert not student_sees(outsider, problem_set)
    # Nor through the service directly, nor through a class of her own.
    with pytest.raises(ServiceError) as refused:
        problem_services.problem_set_create(teacher=eve, title="Again", is_practice=True)
    assert refused.value.status == 403 and refused.value.code == "teacher_not_approved"
    client.force_login(eve)
    client.post(reverse("classes:classroom_create"), {"name": "Everyone"})
    assert not Classroom.objects.filter(teacher=eve).exists()


def test_a_pending_teacher_can_still_upload_and_preview(client):
    eve = sign_up_as_teacher(client)
    home = client.get(reverse("classes:teacher_home")).content.decode()
    assert "awaiting approval" in home and "Create class" not in home
    csv = b"statement,answer\nCompute 2+2.,4\n"
    response = client.post(
        reverse("problems:upload"),
        {
            "source": "paste",
            "pasted": csv.decode(),
            "format": "csv",
            "default_domain": "math",
            "on_error": "skip",
            "target_set": "",
            "title": "Draft",
        },
    )
    assert response.status_code == 302 and "/upload/" in response["Location"]
    preview = client.get(response["Location"])
    assert preview.status_code == 200 and "Compute 2+2." in preview.content.decode()
    client.post(response["Location"], {"title": "Draft", "on_error": "skip"})
    assert ProblemSet.objects.get(owner=eve).problems.count() == 1


# --- practice sets: the teacher's own classes, or public by an admin --------------------------


def test_a_student_outside_the_teachers_classes_does_not_see_a_practice_set(
    client, admin, outsider
):
    teacher = user_create(username="tess", password="x", role="teacher", validate=False)
    pupil = user_create(username="pupil", password="x", role="student", validate=False)
    classroom = Classroom.objects.create(teacher=teacher, name="7B", join_code="SEC7B")
    Enrollment.objects.create(classroom=classroom, student=pupil)
    practice = problem_services.problem_set_create(
        teacher=teacher, title="Fractions practice", is_practice=True
    )
    problem_services.problem_create(
        problem_set=practice, teacher=teacher, fields={"statement": "1/2+1/2?", "answer": "1"}
    )

    assert student_sees(pupil, practice)
    assert not student_sees(outsider, practice)

    # An admin makes it public: now every student sees it, and the decision is on record.
    client.force_login(admin)
    client.post(reverse("set_review:set_decide", args=[practice.pk]), {"decision": "public"})
    assert student_sees(outsider, practice)
    event = AuditEvent.objects.get(action="set.made_public")
    assert event.actor == admin and event.target_label == "Fractions practice"


def test_only_practice_sets_can_be_made_public(admin):
    teacher = user_create(username="tess", password="x", role="teacher", validate=False)
    homework = problem_services.problem_set_create(teacher=teacher, title="Homework")
    with pytest.raises(ServiceError) as refused:
        problem_services.problem_set_visibility_update(
            problem_set=homework, actor=admin, public=True
        )
    assert refused.value.code == "not_practice"
    with pytest.raises(ServiceError):
        problem_services.problem_set_visibility_update(
            problem_set=homework, actor=teacher, public=True
        )


# --- the training pool takes approved sets only -----------------------------------------------


def test_problems_from_unapproved_sets_are_not_in_the_default_pool(client, admin):
    eve = sign_up_as_teacher(client)
    poisoned = problem_services.problem_set_create(teacher=eve, title="Poison")
    for n in range(12):
        problem_services.problem_create(
            problem_set=poisoned,
            teacher=eve,
            fields={"statement": f"Compute {n} + {n}.", "answer": str(n + 1)},  # wrong keys
        )
    default = {"domains": [], "problem_set_ids": []}

    assert training_pool_problems() == []
    counts = training_pool.pool_counts(problem_filter=default, stage="c3po-math")
    assert counts["train"] + counts["held_out"] == 0
    # Naming the set in a job's filter does not let it in either.
    by_id = {"problem_set_ids": [poisoned.pk]}
    assert training_pool.pool_split(problem_filter=by_id).train == []
    # Nor can its teacher approve it herself.
    with pytest.raises(ServiceError) as refused:
        problem_services.problem_set_training_approval_update(
            problem_set=poisoned, actor=eve, approved=True
        )
    assert refused.value.status == 403


def test_an_approved_set_joins_the_pool_and_leaves_when_changed_afterwards(client, admin):
    teacher = user_create(username="tess", password="x", role="teacher", validate=False)
    algebra = problem_services.problem_set_create(teacher=teacher, title="Algebra")
    problem = problem_services.problem_create(
        problem_set=algebra, teacher=teacher, fields={"statement": "2x=4, x?", "answer": "2"}
    )
    client.force_login(admin)
    client.post(reverse("set_review:set_decide", args=[algebra.pk]), {"decision": "approve"})
    pool = training_pool_problems()
    assert [p.problem_id for p in pool] == [problem.pk]
    assert (pool[0].teacher_username, pool[0].training_approved_by) == ("tess", "sec-admin")

    # The launch form shows where the pool comes from: the set, its teacher, who approved it.
    launch = client.get(reverse("registry:pool_count")).content.decode()
    assert "Algebra" in launch and "tess" in launch and "sec-admin" in launch

    # The teacher (not trusted) edits the problem after approval: the set leaves the pool.
    problem_services.problem_update(
        problem=problem, teacher=teacher, fields={"statement": "2x=6, x?", "answer": "3"}
    )
    assert training_pool_problems() == []


def test_a_teacher_trusted_for_training_approves_their_own_sets(client, admin):
    teacher = user_create(username="tess", password="x", role="teacher", validate=False)
    own = problem_services.problem_set_create(teacher=teacher, title="Mine")
    problem_services.problem_create(
        problem_set=own, teacher=teacher, fields={"statement": "3*3?", "answer": "9"}
    )
    client.force_login(admin)
    client.post(reverse("teacher_review:teacher_decide", args=[teacher.pk]), {"decision": "trust"})
    teacher.refresh_from_db()
    client.force_login(teacher)
    client.post(reverse("problems:problem_set_training", args=[own.pk]), {"approved": "1"})
    own.refresh_from_db()
    assert own.training_approved_by == teacher and len(training_pool_problems()) == 1
    # Their own later changes keep the approval: they could approve again anyway.
    problem_services.problem_create(
        problem_set=own, teacher=teacher, fields={"statement": "4*4?", "answer": "16"}
    )
    assert len(training_pool_problems()) == 2
    # Another teacher's set stays out of their reach.
    other = user_create(username="otto", password="x", role="teacher", validate=False)
    foreign = problem_services.problem_set_create(teacher=other, title="Not mine")
    response = client.post(
        reverse("problems:problem_set_training", args=[foreign.pk]), {"approved": "1"}
    )
    assert response.status_code == 404
    foreign.refresh_from_db()
    assert not foreign.is_training_approved


# --- approval: pending, approved by an admin, then publishing ---------------------------------


def test_a_pending_teacher_approved_by_an_admin_can_then_publish(client, admin, outsider):
    eve = sign_up_as_teacher(client, "newteacher")
    client.force_login(admin)
    listing = client.get(reverse("teacher_review:teacher_list")).content.decode()
    assert 'data-teacher="newteacher"' in listing
    client.post(reverse("teacher_review:teacher_decide", args=[eve.pk]), {"decision": "approve"})
    eve.refresh_from_db()
    assert eve.teacher_status == TeacherStatus.APPROVED and eve.teacher_reviewed_by == admin
    event = AuditEvent.objects.get(action="teacher.approved")
    assert (event.actor, event.target_label, event.details) == (
        admin,
        "newteacher",
        {"previous": "pending"},
    )

    client.force_login(eve)
    assert "awaiting approval" not in client.get(reverse("classes:teacher_home")).content.decode()
    client.post(reverse("classes:classroom_create"), {"name": "Year 9"})
    assert Classroom.objects.filter(teacher=eve).exists()
    client.post(
        reverse("problems:problem_set_create"),
        {"title": "Practice 1", "description": "", "is_practice": "on"},
    )
    assert ProblemSet.objects.get(owner=eve, title="Practice 1").is_practice


def test_a_rejected_teacher_is_told_and_stays_unable_to_publish(client, admin):
    eve = sign_up_as_teacher(client, "rejected")
    client.force_login(admin)
    client.post(
        reverse("teacher_review:teacher_decide", args=[eve.pk]),
        {"decision": "reject", "note": "unknown school"},
    )
    eve.refresh_from_db()
    assert eve.teacher_status == TeacherStatus.REJECTED
    client.force_login(eve)
    assert "was not approved" in client.get(reverse("classes:teacher_home")).content.decode()
    with pytest.raises(ServiceError):
        problem_services.problem_set_create(teacher=eve, title="x", is_practice=True)
    assert AuditEvent.objects.get(action="teacher.rejected").details["note"] == "unknown school"


def test_teachers_made_by_an_admin_or_the_demo_are_approved():
    made = user_create(username="made", password="x", role="teacher", validate=False)
    assert made.teacher_status == TeacherStatus.APPROVED and made.may_publish


# --- the admin pages are the admins' ---------------------------------------------------------


def admin_pages(teacher_id: int, set_id: int) -> list[tuple[str, str, dict]]:
    return [
        ("get", reverse("teacher_review:teacher_list"), {}),
        (
            "post",
            reverse("teacher_review:teacher_decide", args=[teacher_id]),
            {"decision": "approve"},
        ),
        ("get", reverse("set_review:set_list"), {}),
        ("get", reverse("set_review:set_detail", args=[set_id]), {}),
        ("post", reverse("set_review:set_decide", args=[set_id]), {"decision": "approve"}),
        ("get", reverse("audit:audit_log"), {}),
    ]


@pytest.mark.parametrize("role", ["student", "teacher", "pending teacher", "trusted teacher"])
def test_non_admins_get_403_on_the_audit_approval_and_set_pages(client, role, admin):
    user = user_create(
        username="someone",
        password="x",
        role="student" if role == "student" else "teacher",
        validate=False,
        self_registered=role == "pending teacher",
    )
    if role == "trusted teacher":
        User.objects.filter(pk=user.pk).update(trusted_for_training=True)
    pending = user_create(
        username="waiting", password="x", role="teacher", validate=False, self_registered=True
    )
    problem_set = problem_services.problem_set_create(teacher=pending, title="Theirs")
    client.force_login(user)
    for method, url, data in admin_pages(pending.pk, problem_set.pk):
        response = getattr(client, method)(url, data)
        assert response.status_code == 403, (method, url)
    pending.refresh_from_db()
    problem_set.refresh_from_db()
    assert pending.teacher_status == TeacherStatus.PENDING
    assert not problem_set.is_training_approved
    assert not AuditEvent.objects.exclude(action="login.failed").exists()


def test_anonymous_visitors_are_sent_to_log_in(client, admin):
    pending = user_create(
        username="waiting", password="x", role="teacher", validate=False, self_registered=True
    )
    problem_set = problem_services.problem_set_create(teacher=pending, title="Theirs")
    for method, url, data in admin_pages(pending.pk, problem_set.pk):
        response = getattr(client, method)(url, data)
        assert response.status_code == 302 and reverse("accounts:login") in response["Location"]
