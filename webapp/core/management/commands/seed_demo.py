"""`manage.py seed_demo`: demo users for each role, a demo class and problem set, and a champion model.

The demo teacher is approved (made here, not self-registered), and the demo admin makes the demo set
public and approves it for training, so a fresh site can be tried and trained at once; both
decisions are in the audit log like any other. Idempotent: running it again changes nothing that
already exists. Prints how to log in.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from webapp.accounts.models import User
from webapp.accounts.services import user_create
from webapp.classes.models import Assignment, Classroom, Enrollment
from webapp.core.demo_data import (
    DEMO_CLASS_JOIN_CODE,
    DEMO_CLASS_NAME,
    DEMO_PROBLEMS,
    DEMO_SET_TITLE,
    DEMO_USERS,
)
from webapp.problems.content_key import problem_content_key
from webapp.problems.models import Problem, ProblemSet
from webapp.problems.services import (
    problem_set_training_approval_update,
    problem_set_visibility_update,
)
from webapp.registry.services import model_version_ensure_default_champion


class Command(BaseCommand):
    help = "Create demo users, a demo class and problem set, and register the default champion."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        users = {}
        for username, password, role in DEMO_USERS:
            user = User.objects.filter(username=username).first()
            if user is None:
                user = user_create(username=username, password=password, role=role, validate=False)
                if role == "admin":
                    user.is_superuser = True
                    user.save(update_fields=["is_superuser"])
            users[role] = user

        problem_set, created = ProblemSet.objects.get_or_create(
            owner=users["teacher"],
            title=DEMO_SET_TITLE,
            defaults={"description": "A few problems to try the site with.", "is_practice": True},
        )
        if created:
            Problem.objects.bulk_create(
                Problem(
                    problem_set=problem_set,
                    created_by=users["teacher"],
                    position=index,
                    content_key=problem_content_key(item["statement"]),
                    **item,
                )
                for index, item in enumerate(DEMO_PROBLEMS)
            )
        problem_set_visibility_update(problem_set=problem_set, actor=users["admin"], public=True)
        problem_set_training_approval_update(
            problem_set=problem_set, actor=users["admin"], approved=True
        )
        classroom, _ = Classroom.objects.get_or_create(
            join_code=DEMO_CLASS_JOIN_CODE,
            defaults={"teacher": users["teacher"], "name": DEMO_CLASS_NAME},
        )
        Enrollment.objects.get_or_create(classroom=classroom, student=users["student"])
        Assignment.objects.get_or_create(classroom=classroom, problem_set=problem_set)
        champion = model_version_ensure_default_champion()

        self.stdout.write(self.style.SUCCESS("Demo data ready. Log in with:"))
        for username, password, role in DEMO_USERS:
            self.stdout.write(f"  {role:8} username={username:8} password={password}")
        self.stdout.write(f"Champion model: {champion.label} ({champion.path})")
