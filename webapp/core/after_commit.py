"""The one way a service acts on the world after its transaction commits.

Two kinds of action, one function each:

- `send_on_commit(send, what=...)`: a message for someone who is watching (a live event for a page,
  a control message for the inference workers). It runs once the transaction commits (at once
  outside one), so nobody hears of a row that was rolled back. A failure is logged and swallowed:
  the rows are already committed, and every watcher can catch up from them (a page's socket sends
  a fresh snapshot, a worker's heartbeat shows what it serves), so a lost message must not turn a
  saved change into an error page.
- `enqueue_on_commit(task_name, *args)`: a Celery task, sent by its stable name (the naming rule
  is in docs/architecture.md, "One way to do each thing"). Services never import a tasks module: the task
  modules import their services (inside the task function), and enqueueing by name keeps the
  dependency one way, so there is no import cycle between the two. A failure to reach the broker
  is not swallowed: work that was never queued must show.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

from webapp import celery_app

logger = logging.getLogger(__name__)


def send_on_commit(send: Callable[[], object], *, what: str) -> None:
    """Call `send()` once the current transaction commits; log (never raise) if it fails.

    `what` names the message in the log line, e.g. "status event for training job 7".
    """

    def send_logging_failure() -> None:
        try:
            send()
        except Exception:  # noqa: BLE001 - the change is committed; watchers catch up from the rows
            logger.warning("could not send the %s", what, exc_info=True)

    transaction.on_commit(send_logging_failure)


def enqueue_on_commit(
    task_name: str, *args: Any, task_id: str | None = None, queue: str | None = None
) -> None:
    """Send the Celery task called `task_name` with positional `args` once the current transaction
    commits (at once outside one), so the worker finds the rows it is given the ids of.

    The queue comes from settings.CELERY_TASK_ROUTES (by task name) unless `queue` is given.
    """
    options: dict[str, Any] = {}
    if task_id is not None:
        options["task_id"] = task_id
    if queue is not None:
        options["queue"] = queue
    transaction.on_commit(lambda: celery_app.send_task(task_name, args=list(args), **options))
