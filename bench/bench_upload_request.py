"""Benchmark: what the upload request and the Import request of a big problem file cost the web
process, done in the request (as before) against left to a Celery task.

The file is a 5 MiB, 20,000-row CSV (the largest the site accepts; every row ready to import).
Each run posts through Django's test client, in this process, and measures the request's CPU time
(getrusage of this thread: parsing the body, the view, the service, the database work) and its
wall time. Two requests (`--what`, both by default):

  upload  the upload form, its multipart body encoded before the clock starts. `inline` forces
          reading in the request (PROBLEM_UPLOAD_INLINE_MAX_LINES/_BYTES raised above the file);
          `background` is the site's default: store the bytes, enqueue problems.read_upload.
  import  the preview's Import click (the 20,000-item preview staged before the clock starts).
          `inline` forces the import in the request (PROBLEM_IMPORT_INLINE_MAX_ITEMS raised);
          `background` checks the choices, marks the upload and enqueues problems.import_upload.

Tasks go to the Redis of --redis-url, whose `default` queue is emptied at the end; no worker runs
them during the bench. Runs come in pairs, one of each side, alternating which goes first (ABBA);
the report gives each side's medians and the median over pairs of inline / background.

Run:  .venv/bin/python bench/bench_upload_request.py [--pairs 5] [--what both] [--rows 20000]
Needs the local PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/ringtutor);
works in a scratch database of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIDES = ("inline", "background")
MIB = 1024 * 1024


def big_csv(rows: int = 20_000, size: int = 5 * MIB) -> bytes:
    """A CSV of `rows` plain problems, every one ready to import, whose worked solutions fill it
    to just under `size` bytes."""
    header = "statement,answer,solution\n"
    plain = [f"What is {n} + {n + 1}? (problem {n}),{2 * n + 1}," for n in range(rows)]
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
    parser.add_argument("--what", choices=("upload", "import", "both"), default="both")
    args = parser.parse_args()

    os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ringtutor")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["REDIS_URL"] = args.redis_url

    import django
    from django.conf import settings

    django.setup()
    from django.db import connections
    from django.test.utils import (
        setup_databases,
        setup_test_environment,
        teardown_databases,
        teardown_test_environment,
    )

    connections["default"].settings_dict["TEST"]["NAME"] = "bench_ringtutor_upload_request"
    settings.ALLOWED_HOSTS = ["testserver"]
    setup_test_environment()
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        run(args)
    finally:
        teardown_databases(old_config, verbosity=0)
        teardown_test_environment()
        import redis

        redis.Redis.from_url(args.redis_url).delete(settings.CELERY_TASK_DEFAULT_QUEUE)


def run(args) -> None:
    from django.conf import settings

    from webapp.accounts.services import user_create

    data = big_csv(args.rows, int(args.mib * MIB))
    assert len(data) <= settings.PROBLEM_UPLOAD_MAX_BYTES, "over the site's upload limit"
    teacher = user_create(username="bench-teacher", password="x", role="teacher", validate=False)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"A {len(data) / MIB:.2f} MiB, {args.rows:,}-row CSV: the request done in place (inline) vs "
        f"left to a Celery task (background); {args.pairs} ABBA pairs"
    )
    print(f"({os.cpu_count()} CPUs, load average {load} at the start)")
    if args.what in ("upload", "both"):
        report("Upload request (read the file / store it for problems.read_upload)", args.pairs,
               upload_request(data, teacher))  # fmt: skip
    if args.what in ("import", "both"):
        report("Import request (import the preview / mark it for problems.import_upload)",
               args.pairs, import_request(data, teacher))  # fmt: skip


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


def report(title: str, pairs: int, post) -> None:
    print(f"\n{title}:")
    post("background")  # warm-up: imports, connections, templates
    cpu_pairs: list[dict[str, float]] = []
    wall_pairs: list[dict[str, float]] = []
    for order in pair_orders(pairs):
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
    for what, measured_pairs in (("CPU", cpu_pairs), ("wall", wall_pairs)):
        medians = {side: statistics.median(pair[side] for pair in measured_pairs) for side in SIDES}
        ratio = statistics.median(paired_ratios(measured_pairs, "inline", "background"))
        print(
            f"  request {what:4}  inline {medians['inline'] * 1000:8.1f} ms   background "
            f"{medians['background'] * 1000:8.1f} ms   inline/background, median of pairs "
            f"{ratio:5.1f}×"
        )


if __name__ == "__main__":
    main()
