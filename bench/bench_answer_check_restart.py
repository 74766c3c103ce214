"""Benchmark: what a student's symbolic answer waits for right after a costly answer was cut off.

A check that runs past the limit has its worker killed. Its replacement is a fork of the pool's
warm zygote (`training.answer_pool`); before, it was a fresh interpreter that imported sympy and
math-verify first, which is what a pool's first check still pays (the zygote's start). Measured
side by side, in pairs whose order alternates (ABBA), on one-worker pools, so the timed check can
only be answered by the replacement or by the new interpreter:

- replacement: a warm pool checks `(999*999)!` (cut off at the limit, worker killed), then the
  clock runs for `x+1 = 1+x`;
- fresh interpreter: the clock runs for the same check on a new pool (start, imports, warm-up).

Prints the median of each side and of the per-pair ratios. Run:
    .venv/bin/python bench/bench_answer_check_restart.py [--pairs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.answer_pool import AnswerCheckPool, bounded_verify  # noqa: E402

SLOW = "(999*999)!"
PATIENCE_S = 120.0  # the timed check waits for its worker however long it takes to start


def timed_check(pool: AnswerCheckPool) -> float:
    start = time.perf_counter()
    verdict = pool.call(
        "verify", patience_s=PATIENCE_S, reference="x+1", prediction="1+x", kind="expression"
    )
    elapsed = time.perf_counter() - start
    assert verdict is True, verdict
    return elapsed


def after_a_kill(limit_s: float) -> float:
    pool = AnswerCheckPool(workers=1, timeout_s=limit_s)
    try:
        timed_check(pool)  # started and warm
        assert bounded_verify(pool, "5", SLOW, kind="expression") is None
        return timed_check(pool)
    finally:
        pool.close()


def fresh_interpreter(limit_s: float) -> float:
    pool = AnswerCheckPool(workers=1, timeout_s=limit_s)
    try:
        return timed_check(pool)
    finally:
        pool.close()


def paired(pairs: int, limit_s: float) -> dict[str, list[float]]:
    sides = {"replacement": after_a_kill, "fresh interpreter": fresh_interpreter}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for index in range(pairs):
        order = list(sides) if index % 2 == 0 else list(reversed(sides))
        for name in order:
            times[name].append(sides[name](limit_s))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--limit", type=float, default=1.0, help="the check's limit, seconds")
    args = parser.parse_args()
    times = paired(args.pairs, args.limit)
    for name, values in times.items():
        print(f"{name:>18}: median {statistics.median(values) * 1000:8.1f} ms  "
              f"({', '.join(f'{v * 1000:.0f}' for v in values)})")  # fmt: skip
    ratios = [f / r for r, f in zip(times["replacement"], times["fresh interpreter"], strict=True)]
    print(f"fresh / replacement: median {statistics.median(ratios):.1f}x over {args.pairs} pairs")


if __name__ == "__main__":
    main()
