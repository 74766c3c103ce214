"""No request may stall the site: the upload request of the biggest file the site accepts (5 MiB,
20,000 rows) does bounded work. It stores the file and enqueues `problems.read_upload`; reading
it (about 0.2 ms of CPU per item, seconds for this file) happens in the Celery task. Likewise the
Import click of its 20,000-item preview marks it and enqueues `problems.import_upload`, which
creates the problems.

The bound is a ratio of CPU time measured in this thread (getrusage), not wall clock against a
constant: the request must cost a small fraction of reading the file, whatever the machine's load.
bench/bench_upload_request.py gives the figures (docs/security.md).
"""

import pytest
from django.conf import settings
from django.urls import reverse

from bench.bench_upload_request import big_csv, measured, multipart_upload
from webapp.problems import services
from webapp.problems.importers import read_problem_file
from webapp.problems.models import Problem, ProblemUpload, UploadState

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_the_request_for_a_5_mib_20000_row_file_costs_a_fraction_of_reading_it(
    client, teacher, enqueued_tasks
):
    data = big_csv(20_000)
    assert 4.9 * 1024 * 1024 < len(data) <= settings.PROBLEM_UPLOAD_MAX_BYTES
    body, content_type = multipart_upload(data, "big.csv")
    client.force_login(teacher)
    url = reverse("problems:upload")

    request_cpu, _, response = measured(lambda: client.post(url, body, content_type))
    assert response.status_code == 302
    staged = ProblemUpload.objects.get()
    assert staged.state == UploadState.READING and not staged.staged_items.exists()
    assert enqueued_tasks == [("problems.read_upload", (staged.pk, 1))]

    read_cpu, _, read = measured(
        lambda: read_problem_file(
            data,
            filename="big.csv",
            max_bytes=settings.PROBLEM_UPLOAD_MAX_BYTES,
            max_items=services.MAX_ITEMS_PER_UPLOAD,
        )
    )
    assert len(read.items) == 20_000
    # Measured: about 0.06 s for the request against 1.7 s to read the file (2 CPUs).
    assert request_cpu * 5 < read_cpu, (request_cpu, read_cpu)


def test_the_import_click_of_a_20000_item_preview_costs_a_fraction_of_importing_it(
    client, teacher, enqueued_tasks
):
    staged = services.problem_upload_preview(
        teacher=teacher, data=big_csv(20_000), filename="big.csv"
    )
    assert staged.ready_count == 20_000
    client.force_login(teacher)
    url = reverse("problems:upload_preview", args=[staged.token])

    request_cpu, _, response = measured(
        lambda: client.post(url, {"on_error": "skip", "title": "Big"})
    )
    assert response["Location"] == url
    assert enqueued_tasks == [("problems.import_upload", (staged.pk, 1))]
    assert not Problem.objects.exists()

    import_cpu, _, outcome = measured(
        lambda: services.problem_upload_import_run(upload_id=staged.pk, attempt=1)
    )
    assert outcome == UploadState.IMPORTED and Problem.objects.count() == 20_000
    # Measured: about 0.01 s for the request against 2.3 s to import (2 CPUs).
    assert request_cpu * 5 < import_cpu, (request_cpu, import_cpu)
