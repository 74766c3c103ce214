"""Benchmark: what the upload request, the Import request and the preview page of a big problem
file cost the web process, against what they cost before.

The file is a 5 MiB, 20,000-row CSV (the largest the site accepts; every row ready to import).
Each run posts through Django's test client, in this process, and measures the request's CPU time
(getrusage of this thread: parsing the body, the view, the service, the database work) and its
wall time. Three requests (`--what`, all by default; `both` is upload and import):

  upload  the upload form, its multipart body encoded before the clock starts. `inline` forces
          reading in the request (PROBLEM_UPLOAD_INLINE_MAX_LINES/_BYTES raised above the file);
          `background` is the site's default: store the bytes, enqueue problems.read_upload.
  import  the preview's Import click (the 20,000-item preview staged before the clock starts).
          `inline` forces the import in the request (PROBLEM_IMPORT_INLINE_MAX_ITEMS raised);
          `background` checks the choices, marks the upload and enqueues problems.import_upload.
  preview the preview page of the 20,000-item upload, staged before the clock starts (with an
          error every 10th row), viewed three ways: page 1, a middle page (200 of 400) and the
          first page of the Errors tab. `rows` is the site's view: one page of ProblemUploadItem
          rows fetched from the database, plus the first 10 errors. `list` is the baseline, the
          view as it was while the items were one JSON list on the upload (ProblemUpload.items),
          rebuilt in this script since that field is gone: the same upload query, then the
          same 20,000 items as the old field held (the rows' values, written as one jsonb value
          to a scratch table before the clock starts) fetched in one query and decoded with
          json.loads, filtered by tab in Python, paginated by a Paginator over the list, the
          first 10 errors picked from the list, and the same template rendered. Both are served
          by the same test client (the old view at a URL of its own), and each run checks that
          the two pages' item tables are the same.

Tasks go to the Redis of --redis-url, whose `default` queue is emptied at the end; no worker runs
them during the bench. Runs come in pairs, one of each side, alternating which goes first (ABBA);
the report gives each side's medians and the median over pairs of inline / background (for the
preview, list / rows).

Run:  .venv/bin/python bench/bench_upload_request.py [--pairs 5] [--what all] [--rows 20000]
Needs the local PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/ringtutor);
works in a scratch database of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIDES = ("inline", "background")
PREVIEW_SIDES = ("list", "rows")  # the old view (the whole JSON list decoded), the site's view
MIB = 1024 * 1024


def big_csv(rows: int = 20_000, size: int = 5 * MIB, *, error_every: int = 0) -> bytes:
    """A CSV of `rows` plain problems, every one ready to import (or, with `error_every`, every
    error_every-th one without a statement: an error), whose worked solutions fill it to just
    under `size` bytes."""
    header = "statement,answer,solution\n"
    plain = [
        f",{2 * n + 1},"
        if error_every and n % error_every == error_every - 1
        else f"What is {n} + {n + 1}? (problem {n}),{2 * n + 1},"
        for n in range(rows)
    ]
    room = size - len(header) - sum(len(line) + 1 for line in plain) - 1
    pad = max(0, room // rows)
    words = "Add the two numbers and check the sum by counting on. " * (pad // 54 + 1)
    lines = [line + words[:pad].strip().ljust(pad, ".") for line in plain]
    return (header + "\n".join(lines) + "\n").encode()


def thread_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return usage.ru_utime + usage.ru_stime


def measured(call) -> tuple[float, float, object]:
    """(CPU seconds of this thread, wall seconds, result) of call()."""
    cpu, wall = thread_cpu_seconds(), time.perf_counter()
    result = call()
    return thread_cpu_seconds() - cpu, time.perf_counter() - wall, result


def pair_orders(pairs: int, sides: tuple[str, ...] = SIDES) -> list[tuple[str, ...]]:
    """The order of each pair's runs: A B, then B A, and so on."""
    return [sides if index % 2 == 0 else tuple(reversed(sides)) for index in range(pairs)]


def item_table(html: str) -> str:
    """The preview's table of items and its page links, where the two preview sides must agree."""
    match = re.search(
        r'<table class="table preview">.*?</table>\s*(<nav class="pagination".*?</nav>)?',
        html,
        re.S,
    )
    assert match, "no item table"
    return match.group()


def paired_ratios(pairs: list[dict[str, float]], a: str, b: str) -> list[float]:
    """Per pair, a / b."""
    return [pair[a] / pair[b] for pair in pairs if pair.get(b)]


def multipart_upload(data: bytes, filename: str) -> tuple[bytes, str]:
    """The upload form's body as a browser sends it, and its content type."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test.client import BOUNDARY, encode_multipart

    fields = {"format": "auto", "default_domain": "math", "target_set": "", "on_error": "skip"}
    body = encode_multipart(BOUNDARY, fields | {"file": SimpleUploadedFile(filename, data)})
    # Not the MULTIPART_CONTENT constant itself: the client then sends the bytes as they are.
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5, help="pairs of runs, ABBA")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--mib", type=float, default=5.0, help="file size")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument(
        "--what", choices=("upload", "import", "preview", "both", "all"), default="all"
    )
    args = parser.parse_args()

    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ringtutor")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["REDIS_URL"] = args.redis_url

    import django

    django.setup()
    import redis
    from django.conf import settings

    from bench.scratch_database import scratch_database

    try:
        with scratch_database("bench_ringtutor_upload_request"):
            run(args)
    finally:
        # The background path's tasks were enqueued, never run: none is left for a worker.
        redis.Redis.from_url(args.redis_url).delete(settings.CELERY_TASK_DEFAULT_QUEUE)


def run(args) -> None:
    from django.conf import settings

    from webapp.accounts.services import user_create

    data = big_csv(args.rows, int(args.mib * MIB))
    assert len(data) <= settings.PROBLEM_UPLOAD_MAX_BYTES, "over the site's upload limit"
    teacher = user_create(username="bench-teacher", password="x", role="teacher", validate=False)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"A {len(data) / MIB:.2f} MiB, {args.rows:,}-row CSV: each request as it was and as it is; "
        f"{args.pairs} ABBA pairs each"
    )
    print(f"({os.cpu_count()} CPUs, load average {load} at the start)")
    if args.what in ("upload", "both", "all"):
        report("Upload request (read the file / store it for problems.read_upload)", args.pairs,
               upload_request(data, teacher))  # fmt: skip
    if args.what in ("import", "both", "all"):
        report("Import request (import the preview / mark it for problems.import_upload)",
               args.pairs, import_request(data, teacher))  # fmt: skip
    if args.what in ("preview", "all"):
        from django.test import override_settings

        preview_data = big_csv(args.rows, int(args.mib * MIB), error_every=10)
        with override_settings(ROOT_URLCONF=preview_urls()):
            for title, query in preview_views(args.rows):
                report(f"Preview page, {title} (the JSON list decoded / one page of rows)",
                       args.pairs, preview_request(preview_data, teacher, query),
                       sides=PREVIEW_SIDES, warm_up=PREVIEW_SIDES)  # fmt: skip


def upload_request(data: bytes, teacher):
    """post(side) -> (CPU, wall) of the upload form's request."""
    from django.test import Client, override_settings
    from django.urls import reverse

    from webapp.problems.models import ProblemUpload, UploadState

    body, content_type = multipart_upload(data, "big.csv")
    client = Client()
    client.force_login(teacher)
    url = reverse("problems:upload")
    forced_inline = override_settings(
        PROBLEM_UPLOAD_INLINE_MAX_LINES=10**9, PROBLEM_UPLOAD_INLINE_MAX_BYTES=10**12
    )

    def post(side: str) -> tuple[float, float]:
        with forced_inline if side == "inline" else contextlib.nullcontext():
            cpu, wall, response = measured(lambda: client.post(url, body, content_type))
        assert response.status_code == 302, response.content[:2000]
        staged = ProblemUpload.objects.defer("raw_data").get()
        expected = UploadState.READY if side == "inline" else UploadState.READING
        assert staged.state == expected, (side, staged.state)
        ProblemUpload.objects.all().delete()
        return cpu, wall

    return post


def import_request(data: bytes, teacher):
    """post(side) -> (CPU, wall) of the preview's Import request (the preview staged untimed)."""
    from django.test import Client, override_settings
    from django.urls import reverse

    from webapp.problems import services
    from webapp.problems.models import Problem, ProblemSet, ProblemUpload, UploadState

    client = Client()
    client.force_login(teacher)
    forced_inline = override_settings(PROBLEM_IMPORT_INLINE_MAX_ITEMS=10**9)

    def post(side: str) -> tuple[float, float]:
        staged = services.problem_upload_preview(teacher=teacher, data=data, filename="big.csv")
        assert staged.ready_count == staged.item_count
        url = reverse("problems:upload_preview", args=[staged.token])
        form = {"on_error": "skip", "title": "Bench"}
        with forced_inline if side == "inline" else contextlib.nullcontext():
            cpu, wall, response = measured(lambda: client.post(url, form))
        assert response.status_code == 302, response.content[:2000]
        if side == "inline":
            assert Problem.objects.count() == staged.ready_count
        else:
            state = ProblemUpload.objects.values_list("state", flat=True).get(pk=staged.pk)
            assert state == UploadState.IMPORTING and not Problem.objects.exists()
        ProblemSet.objects.all().delete()
        ProblemUpload.objects.all().delete()
        return cpu, wall

    return post


def preview_views(rows: int) -> list[tuple[str, dict[str, str]]]:
    """The three views of the preview that are timed: (title, query string)."""
    middle = max(1, -(-rows // 50) // 2)
    return [
        ("page 1", {}),
        (f"page {middle:,} of {-(-rows // 50):,}", {"page": str(middle)}),
        ("Errors tab", {"tab": "error"}),
    ]


_staged_preview: dict[str, object] = {}


def stage_preview(data: bytes, teacher):
    """The preview's upload, staged once (untimed), with the old field's JSON list of the same
    items in a scratch table: (upload, the old view's URL, the site's view's URL)."""
    if not _staged_preview:
        from django.db import connection
        from django.urls import reverse

        from webapp.problems import services

        staged = services.problem_upload_preview(teacher=teacher, data=data, filename="big.csv")
        fields = ("number", "line", "where", "status", "data", "errors", "warnings")
        old_items = [
            {name: getattr(row, name) for name in fields} | {"duplicate_of": row.duplicate_of}
            for row in staged.staged_items.order_by("position")
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE bench_old_items (upload_id bigint PRIMARY KEY, items jsonb NOT NULL)"
            )
            cursor.execute(
                "INSERT INTO bench_old_items VALUES (%s, %s::jsonb)",
                [staged.pk, json.dumps(old_items)],
            )
        _staged_preview.update(
            staged=staged,
            list=f"/bench-old-preview/{staged.token}/",
            rows=reverse("problems:upload_preview", args=[staged.token]),
        )
    return _staged_preview


def old_upload_preview(request, token):
    """The preview view as it was while a staged upload's items were one JSON list
    (`ProblemUpload.items`, decoded whole on every view), for the baseline: the same upload
    query, the list fetched in one query and decoded, the tab filtered and paginated in Python."""
    from django.core.paginator import Paginator
    from django.db import connection
    from django.shortcuts import render

    from webapp.problems import selectors, views
    from webapp.problems.forms import ImportForm
    from webapp.problems.importers import FORMAT_CHOICES

    staged = selectors.problem_upload_get(teacher=request.user, token=token)
    with connection.cursor() as cursor:
        cursor.execute("SELECT items FROM bench_old_items WHERE upload_id = %s", [staged.pk])
        (value,) = cursor.fetchone()
    items = json.loads(value) if isinstance(value, str | bytes) else value
    form = ImportForm(None, initial={"title": staged.title, "on_error": staged.on_error})
    tab = request.GET.get("tab", "all")
    if tab not in views.PREVIEW_TABS:
        tab = "all"
    if tab == "flagged":
        shown = [i for i in items if i["status"] == "ready" and i["data"].get("reference_error")]
    elif tab in ("error", "duplicate"):
        shown = [i for i in items if i["status"] == tab]
    else:
        shown = items
    context = {
        "staged": staged,
        "format_label": dict(FORMAT_CHOICES).get(staged.source_format, staged.source_format),
        "form": form,
        "tabs": views.PREVIEW_TABS,
        "tab": tab,
        "page": Paginator(shown, views.PREVIEW_ITEMS_PER_PAGE).get_page(request.GET.get("page")),
        "error_items": [i for i in items if i["status"] == "error"][: views.PREVIEW_ERRORS_LISTED],
    }
    return render(request, "problems/upload_preview.html", context)


def preview_urls():
    """The site's URLs, plus the old preview view's (ROOT_URLCONF while the preview is timed)."""
    from types import ModuleType

    from django.urls import path

    from webapp.core.roles import role_required
    from webapp.urls import urlpatterns

    urls = ModuleType("bench_preview_urls")  # hashable, as Django's URL resolver cache needs
    old_view = role_required("teacher")(old_upload_preview)
    urls.urlpatterns = [path("bench-old-preview/<uuid:token>/", old_view), *urlpatterns]  # type: ignore[attr-defined]
    return urls


def preview_request(data: bytes, teacher, query: dict[str, str]):
    """get(side) -> (CPU, wall) of one view of the preview page (the upload staged untimed)."""
    from django.test import Client

    staged = stage_preview(data, teacher)
    client = Client()
    client.force_login(teacher)
    tables: dict[str, str] = {}

    def get(side: str) -> tuple[float, float]:
        cpu, wall, response = measured(lambda: client.get(staged[side], query))
        assert response.status_code == 200, response.content[:2000]
        table = item_table(response.content.decode())
        assert table.count("<tr class=") == 50, "not a full page"
        tables[side] = table
        if len(tables) == 2:
            assert tables["list"] == tables["rows"], "the two views show different items"
        return cpu, wall

    return get


def report(
    title: str,
    pairs: int,
    post,
    sides: tuple[str, str] = SIDES,
    warm_up: tuple[str, ...] = ("background",),
) -> None:
    print(f"\n{title}:")
    for side in warm_up:  # imports, connections, templates
        post(side)
    cpu_pairs: list[dict[str, float]] = []
    wall_pairs: list[dict[str, float]] = []
    for order in pair_orders(pairs, sides):
        cpu_pair, wall_pair = {}, {}
        for side in order:
            cpu_pair[side], wall_pair[side] = post(side)
        cpu_pairs.append(cpu_pair)
        wall_pairs.append(wall_pair)
        print(
            "  pair "
            + ", ".join(
                f"{side} {cpu_pair[side] * 1000:.0f} ms CPU / {wall_pair[side] * 1000:.0f} ms wall"
                for side in order
            )
        )
    a, b = sides
    for what, measured_pairs in (("CPU", cpu_pairs), ("wall", wall_pairs)):
        medians = {side: statistics.median(pair[side] for pair in measured_pairs) for side in sides}
        ratio = statistics.median(paired_ratios(measured_pairs, a, b))
        print(
            f"  request {what:4}  {a} {medians[a] * 1000:8.1f} ms   {b} "
            f"{medians[b] * 1000:8.1f} ms   {a}/{b}, median of pairs {ratio:5.1f}×"
        )


if __name__ == "__main__":
    main()
