"""Benchmark: an honest student's answer check while many callers keep the answer checkers busy.

The site's own path (`webapp.core.answer_checks`, the server process's shared pool of
`ANSWER_CHECK_WORKERS` checker processes, each check limited to `ANSWER_CHECK_TIMEOUT_SECONDS`),
in one process, with threads standing in for request threads:

- `flood`: 20 accounts, each sending a slow-but-legal symbolic answer (`(x+y+z+k)^{10}`, a distinct
  k every time so no parse is cached: 0.7-1 s of sympy, some cut off at the 1 s limit) one after
  another, as the per-student limit allows (one check at a time each), for `--seconds`. Meanwhile
  an honest student checks `(x+1)^2` against `x^2+2x+1` every 0.5 s, and at 2 s a teacher's
  upload request reads a 20-problem file with symbolic reference answers (the inline check of
  `problems.services`, `INLINE_ANSWER_CHECK_SECONDS`); at 3 s a teacher saves one problem (the
  single-problem form's reference check).
- `teachers`: 3 upload requests at once, each reading a file of 150 symbolic reference answers
  (integrals, ~0.1 s of parsing each) within the inline budget, while the honest student checks
  every 0.5 s.

Prints, for each: the honest checks' verdicts (True: checked; None: "couldn't check") and their
wall times (median, max), the flood's longest check, and each upload request's wall time and the
answers it left to the background check. Run:
    .venv/bin/python bench/bench_answer_check_flood.py [--what flood,teachers] [--seconds 8]
Needs no database (the upload is read, not stored).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from webapp.core.answer_checks import answer_verdict, reference_problem  # noqa: E402
from webapp.problems import services  # noqa: E402
from webapp.problems.importers import read_problem_file  # noqa: E402

_distinct = itertools.count(1)


def slow_answer() -> bool | None:
    return answer_verdict(
        reference="x^2+1", answer=f"(x+y+z+{next(_distinct)})^{{10}}", kind="expression"
    )


def honest_answer() -> tuple[bool | None, float]:
    start = time.monotonic()
    verdict = answer_verdict(reference="(x+1)^2", answer="x^2+2x+1", kind="expression")
    return verdict, time.monotonic() - start


def upload(problems: int, label: str) -> dict:
    """One upload request's reading of a file of symbolic reference answers (distinct integrals)."""
    rows = [
        {
            "statement": f"{label}: problem {i}",
            "answer": f"\\int_0^1 {i + 2} x^{{{i % 40 + 10}}} e^{{x}} \\sin(x) dx",
            "answer_kind": "expression",
        }
        for i in range(problems)
    ]
    start = time.monotonic()
    read = read_problem_file(
        json.dumps(rows).encode(),
        filename="set.json",
        max_bytes=settings.PROBLEM_UPLOAD_MAX_BYTES,
        max_items=services.MAX_ITEMS_PER_UPLOAD,
        max_slow_checks=services.INLINE_ANSWER_CHECKS,
        slow_checks_budget_s=services.INLINE_ANSWER_CHECK_SECONDS,
    )
    unavailable = sum(
        1 for item in read.items if "not available" in item.data.get("reference_error", "")
    )
    return {
        "seconds": time.monotonic() - start,
        "left_for_background": read.pending_checks,
        "marked_unavailable": unavailable,
    }


def _honest_loop(stop: threading.Event, start_after: float, results: list) -> None:
    time.sleep(start_after)
    while not stop.is_set():
        results.append(honest_answer())
        time.sleep(0.5)


def _report(name: str, honest: list, extra: dict) -> None:
    times = [t for _, t in honest]
    checked = sum(1 for verdict, _ in honest if verdict is True)
    wrong = sum(1 for verdict, _ in honest if verdict is False)
    print(
        f"{name}: honest checks {len(honest)}: {checked} checked, {len(honest) - checked - wrong} "
        f"couldn't check, {wrong} wrong; wall median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s ({', '.join(f'{t:.2f}' for t in times)})"
    )
    for key, value in extra.items():
        print(f"  {key}: {value}")


def flood(seconds: float, accounts: int = 20) -> None:
    stop = threading.Event()
    flood_times: list[float] = []
    honest: list = []
    uploads: list[dict] = []

    def account() -> None:
        while not stop.is_set():
            start = time.monotonic()
            slow_answer()
            flood_times.append(time.monotonic() - start)

    threads = [threading.Thread(target=account) for _ in range(accounts)]
    threads.append(threading.Thread(target=_honest_loop, args=(stop, 1.0, honest)))
    threads.append(
        threading.Thread(target=lambda: (time.sleep(2.0), uploads.append(upload(20, "flood"))))
    )
    form: list = []

    def single_problem_form() -> None:
        time.sleep(3.0)
        start = time.monotonic()
        message = reference_problem("\\frac{x}{2}+1", "expression")
        form.append({"seconds": round(time.monotonic() - start, 2), "reference_error": message})

    threads.append(threading.Thread(target=single_problem_form))
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    _report(
        f"flood ({accounts} accounts, {seconds:g} s)",
        honest,
        {
            "flood checks": f"{len(flood_times)}, longest {max(flood_times):.2f} s",
            "upload request (20 symbolic answers)": uploads[0],
            "single-problem form (one reference answer)": form[0],
        },
    )


def teachers(count: int = 3) -> None:
    stop = threading.Event()
    honest: list = []
    uploads: list[dict] = []
    readers = [
        threading.Thread(target=lambda i=i: uploads.append(upload(150, f"teacher {i}")))
        for i in range(count)
    ]
    student = threading.Thread(target=_honest_loop, args=(stop, 0.2, honest))
    for thread in [*readers, student]:
        thread.start()
    for thread in readers:
        thread.join()
    stop.set()
    student.join()
    _report(
        f"teachers ({count} uploads of 150 symbolic answers at once)",
        honest,
        {f"upload {i}": result for i, result in enumerate(uploads)},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--what", default="flood,teachers")
    parser.add_argument("--seconds", type=float, default=8.0, help="how long the flood lasts")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # every "couldn't check" is logged; the report counts them
    print(
        f"ANSWER_CHECK_WORKERS={settings.ANSWER_CHECK_WORKERS}, "
        f"ANSWER_CHECK_TIMEOUT_SECONDS={settings.ANSWER_CHECK_TIMEOUT_SECONDS:g}, "
        f"ANSWER_CHECK_WAIT_SECONDS={getattr(settings, 'ANSWER_CHECK_WAIT_SECONDS', '(none)')}"
    )
    # Start the pool's workers and wait until they answer, as on a server that is already up.
    deadline = time.monotonic() + 120
    while honest_answer()[0] is not True:
        assert time.monotonic() < deadline, "the answer checker did not start"
    for _ in range(4):
        honest_answer()
    for what in args.what.split(","):
        {"flood": lambda: flood(args.seconds), "teachers": teachers}[what]()


if __name__ == "__main__":
    main()
