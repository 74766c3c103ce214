"""`seed_demo` creates a usable demo site and is safe to run twice."""

import pytest
from django.core.management import call_command
from django.http import HttpRequest

from webapp.accounts.models import TeacherStatus, User
from webapp.audit.models import AuditEvent
from webapp.classes.models import Assignment, Enrollment
from webapp.core.demo_data import DEMO_PROBLEMS, DEMO_SET_TITLE, DEMO_USERS
from webapp.problems.models import Problem, ProblemSet
from webapp.problems.selectors import training_pool_problems
from webapp.registry.models import ModelVersion

pytestmark = pytest.mark.django_db


def test_seed_demo_is_complete_and_idempotent(client, capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    for username, password, role in DEMO_USERS:
        assert f"password={password}" in out
        user = User.objects.get(username=username)
        assert user.role == role
        # django-axes checks every log-in against its request (the test client sends none).
        assert client.login(request=HttpRequest(), username=username, password=password)
    assert Problem.objects.count() == len(DEMO_PROBLEMS)
    assert Enrollment.objects.count() == 1
    assert Assignment.objects.count() == 1
    assert ModelVersion.objects.filter(status="champion").count() == 1


def test_the_demo_teacher_is_approved_and_the_demo_set_public_and_in_the_pool():
    call_command("seed_demo")
    call_command("seed_demo")
    teacher = User.objects.get(username="teacher")
    assert teacher.teacher_status == TeacherStatus.APPROVED and teacher.may_publish
    demo_set = ProblemSet.objects.get(title=DEMO_SET_TITLE)
    assert demo_set.is_practice and demo_set.is_public
    assert demo_set.training_approved_by.username == "admin"
    assert len(training_pool_problems()) == len(DEMO_PROBLEMS)
    # Both decisions are on record once, however often the command runs.
    assert sorted(AuditEvent.objects.values_list("action", flat=True)) == [
        "set.made_public",
        "set.training_approved",
    ]
