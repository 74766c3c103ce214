"""`seed_demo` creates a usable demo site and is safe to run twice."""

import pytest
from django.core.management import call_command
from django.http import HttpRequest

from webapp.accounts.models import User
from webapp.classes.models import Assignment, Enrollment
from webapp.core.demo_data import DEMO_PROBLEMS, DEMO_USERS
from webapp.problems.models import Problem
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
