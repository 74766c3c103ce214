"""Benchmark: importing a 10,000-problem CSV, and paging through a 10,000-problem set.

Measures, on a scratch PostgreSQL database created for the run and dropped after it:
- reading the file (decode, parse, validate, verifier check of every reference answer), the
  preview (that plus duplicate look-up and staging) and the import (one transaction), for a
  numbers-only file and a realistic mix where a quarter of the answers are symbolic expressions
  that math-verify must parse, side by side;
- peak Python memory of read + preview + import (tracemalloc, measured in a separate run because
  tracing slows the code);
- the set page at its first, middle and last page, filtered and searched, and the list of sets.

Prints medians. Run:  .venv/bin/python bench/bench_import.py [--repeat 3] [--problems 10000]
Needs the local PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/ringtutor).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ringtutor")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")


def make_csv(count: int, *, symbolic_share: float, seed: int) -> bytes:
    """A CSV like a teacher's: numbers with units, fractions, choices and some algebra."""
    lines = ["statement,domain,answer_type,answer,tolerance,unit,choices,solution,difficulty,tags"]
    symbolic_every = round(1 / symbolic_share) if symbolic_share else 0
    for n in range(count):
        tag = f"week {n % 12 + 1}"
        if symbolic_every and n % symbolic_every == 0:
            lines.append(
                f"Expand $(x+{n % 97 + 1})(x-{seed + n % 89 + 2})$ (variant {n}).,math,expression,"
                f"x^2+({n % 97 + 1}-{seed + n % 89 + 2})x-{(n % 97 + 1) * (seed + n % 89 + 2)},,,,"
                f'"Multiply out the brackets.",3,"algebra, {tag}"'
            )
        elif n % 5 == 1:
            lines.append(
                f"Which of these is {seed + n}?,math,choice,B,,,{seed + n - 1}|{seed + n}|{seed + n + 1},,1,{tag}"
            )
        elif n % 5 == 2:
            lines.append(
                f"A cart of mass {n % 50 + 1} kg accelerates at {seed % 7 + 2} m/s^2 (case {n}). "
                f"Net force?,science,number,{(n % 50 + 1) * (seed % 7 + 2)},1%,N,,,2,forces"
            )
        elif n % 5 == 3:
            lines.append(
                f"Compute $\\frac{{{n}}}{{{n + 3}}} + \\frac{{1}}{{{n + 3}}}$ (seed {seed}).,math,expression,"
                f"{n + 1}/{n + 3},,,,,2,fractions"
            )
        else:
            lines.append(f"Compute {n} + {seed}.,math,number,{n + seed},,,,,1,{tag}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:9.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from bench.scratch_database import scratch_database

    with scratch_database("bench_ringtutor_import"):
        run(args)


def run(args) -> None:
    from django.conf import settings
    from django.test import Client

    from webapp.accounts.services import user_create
    from webapp.problems import services
    from webapp.problems.importers import read_problem_file
    from webapp.problems.models import OnError

    settings.PROBLEM_UPLOAD_MAX_BYTES = 50 * 1024 * 1024
    count = args.problems
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"Ring Tutor import benchmark: {count:,} problems, median of {args.repeat} runs")
    print(f"({os.cpu_count()} CPUs, load average {load} at the start)\n")
    teachers = iter(range(1, 10_000))

    def new_teacher():
        return user_create(
            username=f"bench-{next(teachers)}", password="x", role="teacher", validate=False
        )

    def upload_and_import(data: bytes, timings: dict | None):
        teacher = new_teacher()
        start = time.perf_counter()
        staged = services.problem_upload_preview(teacher=teacher, data=data, filename="bench.csv")
        preview_done = time.perf_counter()
        if staged.pending_checks:  # otherwise no task is sent
            services.problem_upload_check_answers(upload_id=staged.pk)  # what the task runs
            staged.refresh_from_db()
        check_done = time.perf_counter()
        result = services.problem_upload_import(
            upload=staged, teacher=teacher, on_error=OnError.STOP
        )
        import_done = time.perf_counter()
        assert result.imported == count, (result.imported, staged.error_count)
        if timings is not None:
            timings["preview request"].append(preview_done - start)
            timings["background answer check"].append(check_done - preview_done)
            timings["import request"].append(import_done - check_done)
        return result.problem_set, teacher

    variants = {"numbers and choices only": 0.0, "mixed, 1/4 symbolic": 0.25}
    for label, share in variants.items():
        timings = {
            "read (parse + check)": [],
            "preview request": [],
            "background answer check": [],
            "import request": [],
        }
        for run_index in range(args.repeat):
            # Different seeds for the read and the upload: the verifier caches what it parsed.
            read_data = make_csv(count, symbolic_share=share, seed=1000 + run_index)
            start = time.perf_counter()
            read_problem_file(
                read_data,
                filename="bench.csv",
                max_bytes=len(read_data) + 1,
                max_items=count,
                max_slow_checks=services.INLINE_ANSWER_CHECKS,
            )
            timings["read (parse + check)"].append(time.perf_counter() - start)
            data = make_csv(count, symbolic_share=share, seed=run_index + 1)
            last_set, last_teacher = upload_and_import(data, timings)
        print(f"CSV, {label} ({len(data) / 1_048_576:.2f} MB):")
        for name, samples in timings.items():
            print(f"  {name:26} {median_ms(samples)}")
        totals = [
            sum(values)
            for values in zip(
                timings["preview request"],
                timings["background answer check"],
                timings["import request"],
                strict=True,
            )
        ]
        total = statistics.median(totals)
        print(
            f"  {'upload to imported':26} {total * 1000:9.1f} ms  ({total / count * 1e6:.0f} µs/problem)"
        )
        if share:
            symbolic = round(count * share)
            per_answer = statistics.median(timings["background answer check"]) / symbolic
            print(
                f"  {'per symbolic answer':26} {per_answer * 1000:9.1f} ms  ({symbolic:,} of them)"
            )
        print()

    # Peak memory of each web request (the background check runs in a Celery worker, untraced).
    teacher = new_teacher()
    data = make_csv(count, symbolic_share=0.25, seed=99)
    tracemalloc.start()
    staged = services.problem_upload_preview(teacher=teacher, data=data, filename="bench.csv")
    _, preview_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    services.problem_upload_check_answers(upload_id=staged.pk)
    staged.refresh_from_db()
    tracemalloc.start()
    services.problem_upload_import(upload=staged, teacher=teacher, on_error=OnError.STOP)
    _, import_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"Peak Python memory with {count:,} problems (tracemalloc):")
    print(f"  {'preview request':26} {preview_peak / 1_048_576:9.1f} MiB")
    print(f"  {'import request':26} {import_peak / 1_048_576:9.1f} MiB\n")

    client = Client()
    client.force_login(last_teacher)
    base = f"/teach/sets/{last_set.pk}/"
    pages = max(1, -(-count // 50))
    urls = {
        "set page 1": base,
        f"set page {pages // 2}": f"{base}?page={pages // 2}",
        f"set page {pages} (last)": f"{base}?page={pages}",
        "filter: in training pool": f"{base}?show=pool&page=2",
        "search statements": f"{base}?q=variant+99",
        "list of sets": "/teach/sets/",
    }
    print(f"Pages of a {count:,}-problem set (50 per page), median of {max(5, args.repeat)}:")
    first = None
    for name, url in urls.items():
        samples = []
        for _ in range(max(5, args.repeat)):
            start = time.perf_counter()
            response = client.get(url)
            samples.append(time.perf_counter() - start)
            assert response.status_code == 200, (url, response.status_code)
        first = first or statistics.median(samples)
        ratio = statistics.median(samples) / first
        print(f"  {name:26} {median_ms(samples)}  ({ratio:.2f}× page 1)")


if __name__ == "__main__":
    main()
