"""Where the inference worker's event loop loses time: a real worker (vLLM engine) in this process,
N clients in sustained rounds, asyncio's debug mode naming every callback that held the loop.

Run: `python bench/worker_loop_lag.py --clients 32 --seconds 30` (about two minutes on two CPU
cores: most of it the engine's start). It uses its own PostgreSQL database (`ringtutor_looplag`,
created and migrated if missing; `--database-url` for another) and Redis database 12
(`--redis-url`). Each client queues a solution request as the site does (a `queued` row, then an
entry on the stream), waits for the row to finish, and queues the next one, for `--seconds`.
Printed: generations finished, tokens per second, the heartbeat probe's worst loop lateness, and
the callbacks that ran longer than `--slow-ms` (asyncio debug mode's `slow_callback_duration`),
grouped by what ran, with their count, total and worst time.
"""

import argparse
import asyncio
import logging
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "Compute 47 + 38.",
    "What is 12 times 13?",
    "Solve for x: 3x + 5 = 20.",
    "How many minutes are in 7 hours?",
    "What is the remainder when 100 is divided by 7?",
    "A rectangle is 6 by 9. What is its area?",
    "What is 2 to the power 10?",
    "Simplify 48/36.",
]


class SlowCallbacks(logging.Handler):
    """Collects asyncio debug mode's 'Executing <what> took N seconds' warnings."""

    pattern = re.compile(r"Executing (.*) took (\d+\.\d+) seconds")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_what: dict[str, list[float]] = defaultdict(list)

    def emit(self, record: logging.LogRecord) -> None:
        match = self.pattern.search(record.getMessage())
        if match:
            what = re.sub(r" at 0x[0-9a-f]+|id=\d+|created at \S+|\d+", "#", match.group(1))
            self.by_what[what[:160]].append(float(match.group(2)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--slow-ms", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--hold-between",
        type=float,
        default=0.0,
        help="seconds to hold the engine still (SIGSTOP, as the side-by-side bench holds the "
        "side it is not measuring) between rounds",
    )
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "ring-tiny"))
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/ringtutor_looplag"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    return parser.parse_args(argv)


def prepare_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    exists = subprocess.run(
        ["psql", admin, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not exists:
        subprocess.run(["psql", admin, "-c", f'CREATE DATABASE "{name}"'], check=True)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=ROOT,
        check=True,
        env=dict(os.environ, DATABASE_URL=url),
    )


async def client(index, args, config, problems, student, redis, until, finished) -> None:
    from asgiref.sync import sync_to_async

    from inference_contract.protocol import stream_entry
    from webapp.tutoring.models import Attempt, Generation

    def create(problem):
        attempt = Attempt.objects.create(student=student, problem=problem)
        return Generation.objects.create(attempt=attempt, kind="solution")

    def status(pk):
        return Generation.objects.values_list("status", "completion_tokens").get(pk=pk)

    n = 0
    while time.monotonic() < until:
        problem = problems[(index + n) % len(problems)]
        n += 1
        generation = await sync_to_async(create, thread_sensitive=False)(problem)
        await redis.xadd(
            config.stream,
            stream_entry(generation.pk, prompt_text=problem.statement, kind="solution"),
        )
        while True:
            await asyncio.sleep(0.2)
            state, tokens = await sync_to_async(status, thread_sensitive=False)(generation.pk)
            if state not in ("queued", "running"):
                finished.append((state, tokens or 0))
                break


async def measure(args) -> None:
    import redis.asyncio as aioredis

    from webapp.accounts.services import user_create
    from webapp.problems.content_key import problem_content_key
    from webapp.problems.models import Problem
    from worker.inference.config import config_from_settings
    from worker.inference.worker import InferenceWorker

    loop = asyncio.get_running_loop()
    slow = SlowCallbacks()
    logging.getLogger("asyncio").addHandler(slow)
    tag = f"{os.getpid()}"
    config = config_from_settings().with_overrides(
        worker_id=f"looplag-{tag}",
        stream=f"looplag:{tag}:generations",
        group=f"looplag-{tag}",
        fallback_model=args.model,
        reconcile_interval_s=0,
    )

    def rows():
        student = user_create(username=f"looplag-{tag}", password="x", validate=False)
        problems = [
            Problem.objects.get_or_create(
                content_key=problem_content_key(p), defaults={"statement": p}
            )[0]
            for p in PROMPTS
        ]
        return student, problems

    student, problems = await asyncio.to_thread(rows)
    worker = InferenceWorker(config)
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.run(stop))
    while worker.state != "serving":
        if serving.done():
            serving.result()
        await asyncio.sleep(0.5)
    redis = aioredis.Redis.from_url(args.redis_url, decode_responses=True)
    # Measured from here: the engine's start is not what this looks for.
    slow.by_what.clear()
    loop.set_debug(True)
    loop.slow_callback_duration = args.slow_ms / 1000
    worst_lag = 0.0

    async def watch_lag():
        nonlocal worst_lag
        while True:
            await asyncio.sleep(0.25)
            worst_lag = max(worst_lag, worker.heartbeat.loop_lag_ms)

    watcher = asyncio.create_task(watch_lag())
    for number in range(args.rounds):
        if number and args.hold_between:
            from tests.fixtures.process_hold import ProcessHold

            with ProcessHold.descendants_of(os.getpid()).held():
                await asyncio.sleep(args.hold_between)
        worst_lag = 0.0
        slow.by_what.clear()
        finished: list[tuple[str, int]] = []
        began = time.monotonic()
        until = began + args.seconds
        await asyncio.gather(
            *(
                client(i, args, config, problems, student, redis, until, finished)
                for i in range(args.clients)
            )
        )
        report(args, number, time.monotonic() - began, finished, worst_lag, slow)
    loop.set_debug(False)
    watcher.cancel()
    stop.set()
    await serving
    await redis.delete(config.stream)
    await redis.aclose()


def report(args, number, elapsed, finished, worst_lag, slow) -> None:
    tokens = sum(t for _, t in finished)
    states = defaultdict(int)
    for state, _ in finished:
        states[state] += 1
    print(
        f"\nround {number + 1}, N={args.clients}, {elapsed:.0f} s: {len(finished)} generations "
        f"{dict(states)}, {tokens / elapsed:.0f} tok/s, worst loop lag {worst_lag:.0f} ms "
        f"(heartbeat probe, sampled every 0.25 s)"
    )
    print(f"callbacks over {args.slow_ms:.0f} ms (count, total s, worst s, what):")
    ranked = sorted(slow.by_what.items(), key=lambda item: -sum(item[1]))
    for what, seconds in ranked[:15]:
        print(f"  {len(seconds):4d} {sum(seconds):7.2f} {max(seconds):6.3f}  {what}")


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["REDIS_URL"] = args.redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    os.environ.setdefault("INFERENCE_ENFORCE_EAGER", "1")
    prepare_database(args.database_url)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import django

    django.setup()
    asyncio.run(measure(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
