"""Celery tasks of webapp.problems (queue `default`).

Bound to the project's Celery app explicitly, so a task sent from any process (web, a script, a
test) goes to the configured broker even before anything else has imported the app.
"""

from webapp.celery import app
from webapp.problems.services import problem_upload_check_answers


@app.task(name="problems.check_upload_answers")
def check_upload_answers(upload_id: int) -> int:
    """Finish the preview of a big upload: the verifier reads its pending symbolic answers."""
    return problem_upload_check_answers(upload_id=upload_id)
