"""Celery tasks of webapp.problems (queue `default`).

Declared as every task of the site is: `@shared_task(name="<app>.<what it does>")`, taking ids and
importing its service inside the function; services enqueue it by that name
(webapp.core.after_commit.enqueue_on_commit) and never import this module.
"""

from celery import shared_task


@shared_task(name="problems.check_upload_answers")
def check_upload_answers(upload_id: int) -> int:
    """Finish the preview of a big upload: the verifier reads its pending symbolic answers."""
    from webapp.problems.services import problem_upload_check_answers

    return problem_upload_check_answers(upload_id=upload_id)


@shared_task(name="problems.read_upload")
def read_upload(upload_id: int, attempt: int) -> str:
    """Read a big upload that the request stored (try number `attempt`) and stage its preview."""
    from webapp.problems.services import problem_upload_read

    return problem_upload_read(upload_id=upload_id, attempt=attempt)


@shared_task(name="problems.import_upload")
def import_upload(upload_id: int, attempt: int) -> str:
    """Import a big preview the teacher confirmed (try number `attempt`), in one transaction."""
    from webapp.problems.services import problem_upload_import_run

    return problem_upload_import_run(upload_id=upload_id, attempt=attempt)
