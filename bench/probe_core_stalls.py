"""How late a process the kernel wakes is, on each CPU: the diagnosis behind the CPU layout.

Run: `python bench/probe_core_stalls.py --seconds 25` while something runs (say an inference worker
answering a student). One probe process per CPU, pinned to it, sleeps 1 ms again and again and
counts the wake-ups that came more than `--late-ms` (50) late, with the worst ones. On this 2-core
machine, with the worker's vLLM engine answering one student at a time and nothing pinned, the
engine's core (0) showed 14-22 such stalls in 25 s, up to 0.5 s, and core 1 none
(docs/inference-worker.md, "CPU layout").
"""

import argparse
import multiprocessing
import os
import time


def probe(cpu: int, seconds: float, late_ms: float, out) -> None:
    os.sched_setaffinity(0, {cpu})
    late: list[float] = []
    samples = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        time.sleep(0.001)
        overshoot_ms = (time.perf_counter() - start) * 1000 - 1
        samples += 1
        if overshoot_ms > late_ms:
            late.append(overshoot_ms)
    out.put((cpu, samples, sorted(late)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0)
    parser.add_argument("--late-ms", type=float, default=50.0)
    args = parser.parse_args()
    out: multiprocessing.Queue = multiprocessing.Queue()
    cpus = sorted(os.sched_getaffinity(0))
    probes = [
        multiprocessing.Process(target=probe, args=(cpu, args.seconds, args.late_ms, out))
        for cpu in cpus
    ]
    for process in probes:
        process.start()
    results = sorted(out.get() for _ in probes)
    for process in probes:
        process.join()
    print(f"| CPU | wake-ups | later than {args.late_ms:.0f} ms | worst (ms) |")
    print("|---|---|---|---|")
    for cpu, samples, late in results:
        worst = ", ".join(f"{ms:.0f}" for ms in late[-5:][::-1]) or "-"
        print(f"| {cpu} | {samples} | {len(late)} | {worst} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
