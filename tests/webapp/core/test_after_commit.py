"""webapp.core.after_commit: what runs after a commit, what a failure does, and that every task a
service enqueues by name is a task some worker knows."""

import ast
import importlib
import logging
from pathlib import Path

import pytest
from django.db import transaction

from webapp import celery_app
from webapp.core.after_commit import enqueue_on_commit, send_on_commit

pytestmark = pytest.mark.django_db(transaction=True)

WEBAPP = Path(__file__).resolve().parents[3] / "webapp"


def test_a_message_is_sent_after_commit_and_not_after_a_rollback():
    sent = []
    with transaction.atomic():
        send_on_commit(lambda: sent.append("kept"), what="kept message")
        assert sent == []  # nothing while the transaction is open
    assert sent == ["kept"]
    with pytest.raises(RuntimeError), transaction.atomic():
        send_on_commit(lambda: sent.append("rolled back"), what="lost message")
        raise RuntimeError
    assert sent == ["kept"]


def test_a_failed_send_is_logged_and_does_not_undo_the_commit(caplog):
    def broken() -> None:
        raise ConnectionError("redis is gone")

    with caplog.at_level(logging.WARNING, logger="webapp.core.after_commit"):
        with transaction.atomic():
            send_on_commit(broken, what="status event for training job 7")
    assert "could not send the status event for training job 7" in caplog.text
    assert "redis is gone" in caplog.text


def test_a_task_is_sent_by_name_after_commit(monkeypatch):
    sent = []
    monkeypatch.setattr(
        celery_app, "send_task", lambda name, args, **options: sent.append((name, args, options))
    )
    with transaction.atomic():
        enqueue_on_commit("registry.run_training_job", 7, task_id="abc")
        enqueue_on_commit("registry.run_evaluation", 8)
        assert sent == []
    assert sent == [
        ("registry.run_training_job", [7], {"task_id": "abc"}),
        ("registry.run_evaluation", [8], {}),
    ]


def test_a_failure_to_enqueue_is_raised(monkeypatch):
    def unreachable(name, args, **options):
        raise ConnectionError("broker down")

    monkeypatch.setattr(celery_app, "send_task", unreachable)
    with pytest.raises(ConnectionError), transaction.atomic():
        enqueue_on_commit("problems.check_upload_answers", 1)


def _enqueued_task_names() -> set[str]:
    names = set()
    for path in WEBAPP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None))
                == "enqueue_on_commit"
                and node.args
            ):
                assert isinstance(node.args[0], ast.Constant), (
                    f"{path}: enqueue_on_commit takes the task's name as a literal"
                )
                names.add(node.args[0].value)
    return names


def test_every_task_enqueued_by_name_is_declared_under_that_name():
    for tasks_module in WEBAPP.glob("*/tasks.py"):
        importlib.import_module(f"webapp.{tasks_module.parent.name}.tasks")
    names = _enqueued_task_names()
    assert {"problems.check_upload_answers", "registry.run_evaluation"} <= names
    assert names <= set(celery_app.tasks), names - set(celery_app.tasks)


def test_every_task_of_the_site_is_named_after_its_app_and_function():
    for tasks_module in WEBAPP.glob("*/tasks.py"):
        importlib.import_module(f"webapp.{tasks_module.parent.name}.tasks")
    ours = {
        name: task for name, task in celery_app.tasks.items() if task.__module__[:7] == "webapp."
    }
    assert ours
    for name, task in ours.items():
        app_label = task.__module__.split(".")[1]
        assert name == f"{app_label}.{task.__name__}", (name, task.__module__)


def test_the_routes_go_by_task_name():
    # Training jobs run on the `training` queue only; every other task on `default`.
    def queue_of(name: str) -> str:
        return celery_app.amqp.router.route({}, name)["queue"].name

    assert queue_of("registry.run_training_job") == "training"
    assert queue_of("registry.run_evaluation") == "default"
    assert queue_of("problems.check_upload_answers") == "default"
