"""Benchmark of the streaming path: the whole stack against the raw vLLM engine, and a hot-swap.

Run: `python bench/bench_streaming.py` (about 15 minutes on two CPU cores; `--help` for options).

It measures, in one run on this machine, with the same checkpoint, prompts and sampling settings
(greedy, INFERENCE_MAX_NEW_TOKENS) on both sides:

1. Raw engine: one `VllmEngine` (the wrapper the worker uses around vLLM's AsyncLLM) in this
   process, N = 1, 8, 32 concurrent requests: generated tokens per second, and each request's time
   to its first *visible* text (the first text the reasoning/answer split would show).
2. Whole stack: uvicorn serving webapp.asgi + Redis + `python -m worker.inference`, N WebSocket
   clients. Each client has its page open (socket connected, snapshot received) before its request
   is put on the queue, as a student's page is; the clock starts at the enqueue and stops at the
   client's `done`. Throughput = tokens of all `done` events / wall time; client TTFT = first delta
   received - enqueue. The table prints stack/raw throughput and the difference of median TTFTs.
3. Sustained load: the same two sides again, each with N clients that send their next request as
   soon as the last one is done, for `--sustained-seconds` per round. A burst of N requests is
   mostly its ramp and its tail when answers are short (the stage-6 ring-tiny answers the bench's
   prompts in 60-200 tokens, so a burst of 32 lasts about a second), which makes the burst ratio
   a measure of fixed per-request latency as much as of throughput; the sustained rounds measure
   the rate a busy site serves at. Both are printed. For each stack round the CPU each part of the
   stack used (uvicorn, the worker's main process, its engine, Redis, PostgreSQL, the bench's own
   clients) is printed as cores in use.
4. Hot-swap under 32 streams: clients keep 32 generations running while the worker is told to swap
   to a copy of the checkpoint (a new version label); reported: requests that did not end `done`,
   the longest gap between two consecutive deltas of any one stream, and the time from the
   promotion message to the first delta of a generation served by the new version.

Only one side generates at a time, and the other side's engine processes are held still
(SIGSTOP) meanwhile, so an idle engine takes no CPU from the measured one. Each N starts with
one unmeasured round per side. Then raw and stack rounds come in pairs (raw N,
stack N; then stack N, raw N; ...: only one side generates at a time, the other engine idles, and
each side goes first in half the pairs), so a change in the machine's background load hits both
sides alike. Each pair is compared on its own (stack/raw tokens per second, difference of median
first-token times) and the table gives the medians over pairs beside the all-rounds totals.
The site and worker run on their own PostgreSQL database (`ringtutor_bench`, created and migrated
if missing) and Redis database 7, so a developer's data is left alone. Results are printed as a
table and written as JSON (`--out`).
"""

import argparse
import asyncio
import contextlib
import gc
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_DB = "ringtutor_bench"
BENCH_REDIS = "redis://127.0.0.1:6379/7"
# How long the bench's clients reuse an idle HTTP connection: less than the servers keep one
# (webapp.serve.KEEP_ALIVE_S, the site's and, in bench_vs_vllm_server, vLLM's), so the client lets
# go first. With both at 5 s (uvicorn's and httpx's defaults) a client now and then sent its
# request on a connection the server was closing at that moment and read a reset (httpx.ReadError).
CLIENT_KEEP_ALIVE_S = 60
STATEMENTS = [
    "Compute 47 + 38.",
    "Compute 305 - 178.",
    "Compute 64 * 7.",
    "Solve for x: 3x + 5 = 20.",
    "What is 25% of 80?",
    "Compute 1/2 + 1/3.",
    "A 4 kg cart accelerates at 3 m/s^2. What net force acts on it, in N?",
    "Convert 2.5 km to m.",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_checkpoint = ROOT / "checkpoints" / "ring-tiny"
    parser.add_argument(
        "--checkpoint",
        default=str(default_checkpoint),
        help="checkpoint to serve (default: checkpoints/ring-tiny; a random-init ring-tiny "
        "is made when it does not exist)",
    )
    parser.add_argument("--clients", default="1,8,32", help="comma-separated N (default 1,8,32)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument(
        "--rounds", type=int, default=6, help="measured batches of N requests per N and side"
    )
    parser.add_argument(
        "--sustained-seconds",
        type=float,
        default=20.0,
        help="length of each sustained-load round (N clients, each sending its next request as "
        "soon as the last is done); 0 skips the sustained rounds",
    )
    parser.add_argument(
        "--sustained-rounds", type=int, default=3, help="sustained rounds per N and side"
    )
    parser.add_argument("--swap-streams", type=int, default=32)
    parser.add_argument("--skip-swap", action="store_true")
    parser.add_argument("--eager", action="store_true", help="vLLM eager mode on both sides")
    parser.add_argument("--workdir", default="runs/bench-streaming")
    parser.add_argument("--out", default="runs/bench-streaming/results.json")
    return parser.parse_args()


def environment(args, checkpoint: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "webapp.settings",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}",
            "REDIS_URL": BENCH_REDIS,
            "RING_MODEL": str(checkpoint),
            "INFERENCE_TEMPERATURE": "0",
            "INFERENCE_MAX_NEW_TOKENS": str(args.max_new_tokens),
            "INFERENCE_ENFORCE_EAGER": "1" if args.eager else "0",
            "INFERENCE_RECONCILE_SECONDS": "0",
            "INFERENCE_MAX_CONCURRENT_PER_USER": "1000",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "PYTHONUNBUFFERED": "1",
            "TOKENIZERS_PARALLELISM": "false",
            # As `make run` serves the site: no debug pages (and no query log), cookies over HTTP.
            "DEBUG": "0",
            "SECURE_COOKIES": "0",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
    )
    return env


def ensure_checkpoint(path: Path, workdir: Path) -> Path:
    if (path / "manifest.json").exists():
        return path
    import torch

    import ringmodel as rm

    target = workdir / "ring-tiny-random"
    if not (target / "manifest.json").exists():
        torch.manual_seed(0)
        model = rm.BailingMoeForCausalLM(rm.BailingMoeConfig.ring_tiny()).eval()
        rm.save_checkpoint(model, rm.build_tokenizer(), target, manifest_extra={"seed": 0})
    print(f"{path} does not exist: benchmarking a random-init ring-tiny ({target})")
    return target


def ensure_database(name: str = BENCH_DB) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# --- phase 1: the raw engine ---------------------------------------------------------------------


async def start_raw_engine(checkpoint: Path):
    from worker.inference.config import config_from_settings
    from worker.inference.engine import ModelSpec, VllmEngine

    # The engine settings the stack's worker builds from the same environment (environment()
    # sets it, --eager included), so both sides run the same engine.
    settings = config_from_settings().engine
    engine = await VllmEngine.start(ModelSpec(None, "raw", str(checkpoint)), settings)
    # As the worker (and vLLM's own server) does: keep the collector off the long-lived heap.
    gc.collect()
    gc.freeze()
    return engine


async def raw_request(engine, request_id, prompt, max_tokens, split_reasoning) -> tuple:
    """One greedy request on the raw engine: (tokens, ms to the first visible text or None,
    when it ended)."""
    text, first_visible, tokens = "", None, 0
    submitted = time.perf_counter()
    async for chunk in engine.stream(
        f"{request_id}-{time.time()}", prompt, max_tokens=max_tokens, temperature=0.0, top_p=1.0
    ):
        tokens += chunk.new_tokens
        text += chunk.text
        if first_visible is None and text:
            split = split_reasoning(text)
            if split.reasoning or split.answer:
                first_visible = (time.perf_counter() - submitted) * 1000
    return tokens, first_visible, time.perf_counter()


async def run_raw_batch(engine, prompts, n, max_tokens, split_reasoning, round_index=0) -> dict:
    async def one(i: int) -> tuple[int, float | None, float]:
        return await raw_request(
            engine, f"raw-{round_index}-{n}-{i}", prompts[i % len(prompts)], max_tokens,
            split_reasoning,
        )  # fmt: skip

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(n)))
    ended = max(o[2] for o in outcomes)
    return {
        "tokens": sum(o[0] for o in outcomes),
        "seconds": ended - started,
        "ttft_ms": [o[1] for o in outcomes if o[1] is not None],
        "requests": n,
    }


def merge_rounds(rounds: list[dict]) -> dict:
    tokens = sum(r["tokens"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    ttfts = [t for r in rounds for t in r["ttft_ms"]]
    return {
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_s": tokens / seconds,
        "ttft_ms_median": statistics.median(ttfts) if ttfts else float("nan"),
        "ttft_ms_p90": percentile(ttfts, 0.9),
        "failed": sum(r.get("failed", 0) for r in rounds),
        "delta_gap_p99_ms": percentile([g for r in rounds for g in r.get("gaps_ms", [])], 0.99),
        "worker_loop_lag_max_ms": max((r.get("loop_lag_ms", 0.0) for r in rounds), default=0.0),
        "requests": sum(r["requests"] for r in rounds),
        **(
            {
                "in_flight_mean": round(statistics.mean(r["in_flight_mean"] for r in rounds), 1),
                "phases_ms": {
                    name: round(statistics.median(r["phases_ms"][name] for r in rounds), 1)
                    for name in rounds[0]["phases_ms"]
                },
            }
            if "phases_ms" in rounds[0]
            else {}
        ),
        **(
            {
                "cpu_cores": {
                    group: round(statistics.median(r["cpu_cores"][group] for r in rounds), 2)
                    for group in rounds[0]["cpu_cores"]
                }
            }
            if "cpu_cores" in rounds[0]
            else {}
        ),
    }


# --- the stack: processes, users, sockets ----------------------------------------------------------


class Stack:
    """The site (one uvicorn) and `workers` inference workers on one queue. `processes` is
    uvicorn first, then the workers in order."""

    def __init__(
        self, env: dict, workdir: Path, workers: int = 1, worker_envs: list[dict] | None = None
    ) -> None:
        self.env = env
        # Settings of each worker's own on top of `env` (e.g. the cores its engine binds).
        self.worker_envs = worker_envs or [{} for _ in range(workers)]
        if len(self.worker_envs) != workers:
            raise ValueError(f"{len(self.worker_envs)} worker settings for {workers} workers")
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.worker_ids = [f"bench-{os.getpid()}-{i}" for i in range(workers)]
        self._redis = None  # one connection for the heartbeat reads (see heartbeat())

    @property
    def worker_id(self) -> str:
        """The first worker: the one whose heartbeat LoopLagWatch and the swap phase read."""
        return self.worker_ids[0]

    @property
    def workers(self) -> list[subprocess.Popen]:
        return self.processes[1:]

    def start(self) -> None:
        self._spawn(
            [
                sys.executable, "-m", "webapp.serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--log-level", "warning", "--no-access-log",
            ],
            "uvicorn.log",
        )  # fmt: skip
        for i, worker_id in enumerate(self.worker_ids):
            self._spawn(
                [sys.executable, "-m", "worker.inference", "--worker-id", worker_id],
                "worker.log" if i == 0 else f"worker-{i}.log",
                {**self.env, **self.worker_envs[i]},
            )

    def _spawn(self, args: list[str], log_name: str, env: dict | None = None) -> None:
        log = open(self.workdir / log_name, "wb")  # noqa: SIM115 - lives as long as the process
        self.processes.append(
            subprocess.Popen(
                args, cwd=ROOT, env=env or self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )  # fmt: skip

    def heartbeat(self, worker_id: str | None = None) -> dict | None:
        import redis

        from inference_contract.protocol import heartbeat_key

        # One connection for every read: a client per read would add HELLO, SELECT and a connection
        # to the site's Redis per sample, counted against the stack by the per-generation
        # Redis command figures of bench_vs_vllm_server.
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.env["REDIS_URL"])
        raw = self._redis.get(heartbeat_key(worker_id or self.worker_id))
        return json.loads(raw) if raw else None

    def wait_serving(self, timeout: float = 900) -> dict:
        """Wait until every worker is serving; the first one's heartbeat."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a stack process exited; see {self.workdir}/*.log")
            beats = [self.heartbeat(worker_id) for worker_id in self.worker_ids]
            if all(beat and beat["state"] == "serving" for beat in beats):
                return beats[0]
            time.sleep(0.5)
        raise RuntimeError("the inference workers did not start")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def engine_processes(stack: "Stack") -> tuple:
    """(the raw engine's processes, the stack worker's engine processes): children of this
    process that are not the stack's, and the worker's children. Both engines live on the same
    two cores and an idle vLLM engine still takes CPU (its busy loop, OpenMP threads that spin
    before they sleep): without holding the side that is not measured, the raw side's first token
    took ~1 s in some rounds and not in others."""
    import psutil

    from tests.fixtures.process_hold import ProcessHold

    stack_pids = {p.pid for p in stack.processes}
    raw = [c for c in psutil.Process().children() if c.pid not in stack_pids]
    raw += [d for c in raw for d in c.children(recursive=True)]
    return ProcessHold(raw), stack_engines(stack)


def stack_engines(stack: "Stack"):
    """Every worker's engine processes, to hold them all still together."""
    from tests.fixtures.process_hold import ProcessHold

    return ProcessHold(
        [
            engine
            for worker in stack.workers
            for engine in ProcessHold.descendants_of(worker.pid).processes
        ]
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_users(count: int) -> list[tuple[object, str]]:
    """(user, session cookie) for `count` students."""
    from django.conf import settings
    from django.test import Client

    from webapp.accounts.models import User

    users = []
    for index in range(count):
        user, _ = User.objects.get_or_create(
            username=f"bench-{index}", defaults={"role": "student"}
        )
        client = Client()
        client.force_login(user)
        cookie = (
            f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        )
        users.append((user, cookie))
    return users


def make_problems() -> list:
    from webapp.problems.content_key import problem_content_key
    from webapp.problems.models import Problem

    return [
        Problem.objects.get_or_create(
            content_key=problem_content_key(statement), defaults={"statement": statement}
        )[0]
        for statement in STATEMENTS
    ]


def new_generation(user, problem) -> int:
    from webapp.tutoring.models import Attempt, Generation

    attempt = Attempt.objects.create(student=user, problem=problem)
    return Generation.objects.create(attempt=attempt).pk


class StreamClient:
    """One student page: a socket on one generation, recording when each event arrives."""

    def __init__(self, stack: Stack, generation_id: int, cookie: str) -> None:
        self.stack = stack
        self.generation_id = generation_id
        self.cookie = cookie
        self.events: list[tuple[float, dict]] = []
        self.done = asyncio.Event()

    async def open(self) -> None:
        import websockets

        started = time.perf_counter()
        self.socket = await websockets.connect(
            f"{self.stack.ws_url}/ws/generations/{self.generation_id}/",
            additional_headers={"Cookie": self.cookie},
            origin=self.stack.url,
            open_timeout=30,
            max_queue=None,
        )
        first = json.loads(await self.socket.recv())
        assert first["type"] == "snapshot", first
        # From asking for the socket to its first message: the handshake and the server's opening
        # work (who is asking, the generation, its replay).
        self.socket_ms = (time.perf_counter() - started) * 1000
        # Kept: a page that opens late gets its text in the snapshot (bench_vs_vllm_server.py
        # rebuilds the text from everything received).
        self.events.append((time.perf_counter(), first))
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                event = json.loads(raw)
                self.events.append((time.perf_counter(), event))
                if event["type"] == "done":
                    self.done.set()
                    break
        finally:
            self.done.set()
            await self.socket.close()

    def first_delta_at(self) -> float | None:
        return next((t for t, e in self.events if e["type"] == "delta"), None)

    def done_event(self) -> dict | None:
        return next((e for _, e in self.events if e["type"] == "done"), None)

    def timed_delta_gaps(self) -> list[tuple[float, float]]:
        """(when the gap ended, its length) between consecutive deltas."""
        times = [t for t, e in self.events if e["type"] == "delta"]
        return [(b, b - a) for a, b in zip(times, times[1:], strict=False)]


class LoopLagWatch:
    """Reads the workers' heartbeats while a batch runs: the longest an event loop was late, and
    how many generations the workers had in flight together (how full the engines' batches were
    kept)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.worst_ms = 0.0
        self.in_flight: list[int] = []
        self.reads = 0  # heartbeat GETs made, which a caller counting Redis commands subtracts
        self.task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            in_flight = 0
            for worker_id in self.stack.worker_ids:
                self.reads += 1
                beat = await asyncio.to_thread(self.stack.heartbeat, worker_id) or {}
                self.worst_ms = max(self.worst_ms, float(beat.get("loop_lag_ms") or 0.0))
                in_flight += int(beat.get("in_flight") or 0)
            self.in_flight.append(in_flight)
            await asyncio.sleep(0.5)

    @property
    def in_flight_mean(self) -> float:
        return statistics.mean(self.in_flight) if self.in_flight else 0.0

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def run_stack_batch(stack: Stack, n: int, users, problems) -> dict:
    from asgiref.sync import sync_to_async

    from inference_contract.request_queue import enqueue_generation
    from webapp.core.redis_client import redis_client

    ids = [
        await sync_to_async(new_generation)(users[i][0], problems[i % len(problems)])
        for i in range(n)
    ]
    streams = [StreamClient(stack, gid, users[i][1]) for i, gid in enumerate(ids)]
    await asyncio.gather(*(s.open() for s in streams))
    client = redis_client()
    lag = LoopLagWatch(stack)
    cpu = CpuMeter(stack)
    started = time.perf_counter()
    enqueued_at = []
    for i, gid in enumerate(ids):
        enqueued_at.append(time.perf_counter())
        # The entry generation_enqueue writes on commit (self-contained: kind and text).
        enqueue_generation(
            client,
            generation_id=gid,
            prompt_text=problems[i % len(problems)].statement,
            kind="solution",
        )
    await asyncio.wait_for(asyncio.gather(*(s.done.wait() for s in streams)), 600)
    await lag.stop()
    ended = max(t for s in streams for t, _ in s.events)
    dones = [s.done_event() for s in streams]
    return {
        "loop_lag_ms": lag.worst_ms,
        "cpu_cores": cpu.cores_used(time.perf_counter() - started),
        "tokens": sum((d or {}).get("completion_tokens") or 0 for d in dones),
        "seconds": ended - started,
        "ttft_ms": [
            (s.first_delta_at() - at) * 1000
            for s, at in zip(streams, enqueued_at, strict=True)
            if s.first_delta_at()
        ],
        "requests": n,
        "failed": sum(1 for d in dones if not d or d["status"] != "done"),
        "gaps_ms": [gap * 1000 for s in streams for _, gap in s.timed_delta_gaps()],
    }


async def request_and_wait(stack: Stack, user, cookie: str, problem, queue_client) -> tuple:
    """One student's request: the generation row, the page's socket, the enqueue, the `done`.
    Returns (the stream, when it was enqueued)."""
    from asgiref.sync import sync_to_async

    from inference_contract.request_queue import enqueue_generation

    page_started = time.perf_counter()
    gid = await sync_to_async(new_generation)(user, problem)
    stream = StreamClient(stack, gid, cookie)
    await stream.open()
    enqueued_at = time.perf_counter()
    stream.page_ms = (enqueued_at - page_started) * 1000
    enqueue_generation(
        queue_client, generation_id=gid, prompt_text=problem.statement, kind="solution"
    )
    await asyncio.wait_for(stream.done.wait(), 600)
    return stream, enqueued_at


async def run_raw_sustained(engine, prompts, n, max_tokens, split_reasoning, seconds) -> dict:
    """N clients, each submitting its next prompt as soon as its last one ends, for `seconds`:
    the engine's steady-state throughput, which a burst of N requests (run_raw_batch) does not
    show once answers are short (a burst is mostly its ramp and its tail)."""
    deadline = time.perf_counter() + seconds
    records: list[tuple[int, float | None]] = []

    async def client(i: int) -> None:
        k = 0
        while time.perf_counter() < deadline:
            tokens, first_visible, _ = await raw_request(
                engine, f"raw-sustained-{n}-{i}-{k}", prompts[(i + k) % len(prompts)],
                max_tokens, split_reasoning,
            )  # fmt: skip
            records.append((tokens, first_visible))
            k += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(n)))
    return {
        "tokens": sum(r[0] for r in records),
        "seconds": time.perf_counter() - started,
        "ttft_ms": [r[1] for r in records if r[1] is not None],
        "requests": len(records),
    }


async def run_stack_sustained(stack: Stack, n: int, users, problems, seconds) -> dict:
    """The same closed loop through the whole stack: N students, each asking for its next
    solution (row, socket, enqueue) as soon as its last one is `done`; the same prompts in the
    same order as run_raw_sustained. The time a student spends opening its next page counts
    against the stack, as it would for a real student."""
    from webapp.core.redis_client import redis_client

    client = redis_client()
    lag = LoopLagWatch(stack)
    cpu = CpuMeter(stack)
    deadline = time.perf_counter() + seconds
    finished: list[tuple[StreamClient, float]] = []

    async def student(i: int) -> None:
        k = 0
        while time.perf_counter() < deadline:
            problem = problems[(i + k) % len(problems)]
            finished.append(await request_and_wait(stack, *users[i], problem, client))
            k += 1

    started = time.perf_counter()
    await asyncio.gather(*(student(i) for i in range(n)))
    seconds_taken = time.perf_counter() - started
    await lag.stop()
    dones = [s.done_event() for s, _ in finished]
    return {
        "in_flight_mean": lag.in_flight_mean,
        "phases_ms": await request_phases(finished),
        "loop_lag_ms": lag.worst_ms,
        "cpu_cores": cpu.cores_used(seconds_taken),
        "tokens": sum((d or {}).get("completion_tokens") or 0 for d in dones),
        "seconds": seconds_taken,
        "ttft_ms": [(s.first_delta_at() - at) * 1000 for s, at in finished if s.first_delta_at()],
        "requests": len(finished),
        "failed": sum(1 for d in dones if not d or d["status"] != "done"),
        "gaps_ms": [gap * 1000 for s, _ in finished for _, gap in s.timed_delta_gaps()],
    }


async def request_phases(finished: list[tuple["StreamClient", float]]) -> dict[str, float]:
    """Where the time of a request goes, medians in ms: the student's page (row and socket),
    the socket (from asking for it to its first message, the snapshot), the queue (enqueue to
    the worker's claim, from the row's started_at), the way to the first token (claim to the
    first delta at the client), the stream (first delta to `done`), and the gap between the
    row's finished_at and the client's `done`."""
    from asgiref.sync import sync_to_async

    from webapp.tutoring.models import Generation

    # perf_counter times on this machine's wall clock, to compare with the rows' timestamps.
    wall_offset = time.time() - time.perf_counter()
    rows = await sync_to_async(
        lambda: {
            g.pk: (g.started_at, g.finished_at)
            for g in Generation.objects.filter(pk__in=[s.generation_id for s, _ in finished])
        }
    )()
    phases: dict[str, list[float]] = {
        "page": [], "socket": [], "queue": [], "to first delta": [], "stream": [],
        "finished to done": [],
    }  # fmt: skip
    for stream, enqueued_at in finished:
        started_at, finished_at = rows.get(stream.generation_id, (None, None))
        first, done = stream.first_delta_at(), stream.events[-1][0] if stream.events else None
        phases["page"].append(stream.page_ms)
        phases["socket"].append(stream.socket_ms)
        if started_at:
            claim = started_at.timestamp() - wall_offset
            phases["queue"].append((claim - enqueued_at) * 1000)
            if first:
                phases["to first delta"].append((first - claim) * 1000)
        if first and done:
            phases["stream"].append((done - first) * 1000)
        if finished_at and done:
            phases["finished to done"].append(
                (done - (finished_at.timestamp() - wall_offset)) * 1000
            )
    return {name: round(statistics.median(v), 1) for name, v in phases.items() if v}


class CpuMeter:
    """CPU time each part of the stack spends during a round, as cores in use: on a host where
    the engine is CPU-bound, what the web tier uses is what the engine loses (see
    docs/inference-worker.md, "Measured")."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.before = self._sample()

    def _groups(self) -> dict[str, list]:
        import psutil

        uvicorn = psutil.Process(self.stack.processes[0].pid)
        workers = [psutil.Process(p.pid) for p in self.stack.workers]
        engine = [child for worker in workers for child in worker.children(recursive=True)]
        named = {"redis": [], "postgres": []}
        for process in psutil.process_iter(["name"]):
            name = process.info["name"] or ""
            if name.startswith("redis-server"):
                named["redis"].append(process)
            elif name.startswith("postgres"):
                named["postgres"].append(process)
        return {
            "uvicorn": [uvicorn, *uvicorn.children(recursive=True)],
            "worker main": workers,
            "worker engine": engine,
            "bench clients": [psutil.Process()],
            **named,
        }

    def _sample(self) -> dict[str, dict[int, float]]:
        import psutil

        sample = {}
        for group, processes in self._groups().items():
            sample[group] = {}
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    sample[group][process.pid] = times.user + times.system
        return sample

    def cores_used(self, seconds: float) -> dict[str, float]:
        after = self._sample()
        return {
            group: round(
                sum(t - self.before[group].get(pid, 0.0) for pid, t in after[group].items())
                / seconds,
                2,
            )
            for group in after
        }


async def sustained_phase(args, engine, stack: Stack, clients: list[int], users, problems):
    """Sustained-load rounds, paired and alternated like the burst rounds."""
    from ringmodel.chat import split_reasoning

    prompts = [engine.prompt_ids(s) for s in STATEMENTS]
    raw_engine, stack_engine = engine_processes(stack)
    raw, whole = {}, {}
    for n in clients:

        async def raw_round(n: int = n) -> dict:
            with stack_engine.held():
                return await run_raw_sustained(
                    engine, prompts, n, args.max_new_tokens, split_reasoning,
                    args.sustained_seconds,
                )  # fmt: skip

        async def stack_round(n: int = n) -> dict:
            with raw_engine.held():
                return await run_stack_sustained(stack, n, users, problems, args.sustained_seconds)

        raw_rounds, stack_rounds = await paired_rounds(
            raw_round, stack_round, args.sustained_rounds
        )
        raw[n], whole[n] = merge_rounds(raw_rounds), merge_rounds(stack_rounds)
        whole[n]["paired"] = paired_comparison(raw_rounds, stack_rounds)
        report_n("sustained", n, raw[n], whole[n])
    return raw, whole


async def paired_rounds(raw_round, stack_round, rounds: int) -> tuple[list, list]:
    """`rounds` pairs of (raw, stack) rounds, each side first in every other pair, so that neither
    the machine's drifting load nor going first favours one side; each pair is compared on its
    own (paired_comparison) and the medians of those comparisons reported."""
    raw_rounds, stack_rounds = [], []
    for round_index in range(rounds):
        if round_index % 2 == 0:
            raw_rounds.append(await raw_round())
            stack_rounds.append(await stack_round())
        else:
            stack_rounds.append(await stack_round())
            raw_rounds.append(await raw_round())
    return raw_rounds, stack_rounds


def report_n(kind: str, n: int, raw: dict, whole: dict) -> None:
    paired = whole["paired"]
    print(
        f"{kind} N={n:>2}: raw {raw['tokens_per_s']:6.0f} tok/s, TTFT {raw['ttft_ms_median']:.1f} ms"
        f" | stack {whole['tokens_per_s']:6.0f} tok/s, TTFT "
        f"{whole['ttft_ms_median']:.1f} ms, p99 gap between deltas "
        f"{whole['delta_gap_p99_ms']:.0f} ms, worker loop lag "
        f"{whole['worker_loop_lag_max_ms']:.0f} ms, failed {whole['failed']}"
        f" | per pair: stack/raw {paired['throughput_ratios']}, "
        f"client - raw TTFT {paired['ttft_differences_ms']} ms"
        + (f" | stack CPU (cores) {whole['cpu_cores']}" if "cpu_cores" in whole else "")
        + (
            f" | workers' in flight (mean) {whole['in_flight_mean']}, request phases (median ms) "
            f"{whole['phases_ms']}"
            if "phases_ms" in whole
            else ""
        ),
        flush=True,
    )


async def throughput_phase(args, engine, stack: Stack, clients: list[int], users, problems):
    """Raw and stack rounds, alternating, for each N."""
    from ringmodel.chat import split_reasoning

    prompts = [engine.prompt_ids(s) for s in STATEMENTS]
    raw_engine, stack_engine = engine_processes(stack)
    # Warm-up: the site's first connections, the worker's first imports, both engines' largest
    # batch; each N gets its own unmeasured round below.
    with stack_engine.held():
        await run_raw_batch(engine, prompts, max(clients), args.max_new_tokens, split_reasoning)
    with raw_engine.held():
        await run_stack_batch(stack, max(clients), users, problems)
    raw, whole = {}, {}
    for n in clients:

        async def raw_round(round_index: int = 0, n: int = n) -> dict:
            with stack_engine.held():
                return await run_raw_batch(
                    engine, prompts, n, args.max_new_tokens, split_reasoning, round_index
                )

        async def stack_round(n: int = n) -> dict:
            with raw_engine.held():
                return await run_stack_batch(stack, n, users, problems)

        # One unmeasured round of this N on each side first: the first batch of a new size is
        # slow on either engine (new shapes), and a cold side would decide the comparison.
        await raw_round(-1)
        await stack_round()
        raw_rounds, stack_rounds = await paired_rounds(raw_round, stack_round, args.rounds)
        raw[n], whole[n] = merge_rounds(raw_rounds), merge_rounds(stack_rounds)
        whole[n]["paired"] = paired_comparison(raw_rounds, stack_rounds)
        report_n("burst", n, raw[n], whole[n])
    return raw, whole


def paired_comparison(raw_rounds: list[dict], stack_rounds: list[dict]) -> dict:
    """Each (raw, stack) pair of rounds compared on its own: stack/raw tokens per second and the
    difference of the median first-token times; then the median over pairs."""

    def rate(round_: dict) -> float:
        return round_["tokens"] / round_["seconds"]

    ratios = [rate(s) / rate(r) for r, s in zip(raw_rounds, stack_rounds, strict=True)]
    differences = [
        statistics.median(s["ttft_ms"]) - statistics.median(r["ttft_ms"])
        for r, s in zip(raw_rounds, stack_rounds, strict=True)
        if r["ttft_ms"] and s["ttft_ms"]
    ]
    return {
        "throughput_ratios": [round(x, 3) for x in ratios],
        "throughput_ratio_median": statistics.median(ratios),
        "ttft_differences_ms": [round(x, 1) for x in differences],
        "ttft_difference_ms_median": statistics.median(differences) if differences else None,
    }


async def swap_phase(args, stack: Stack, users, problems, checkpoint: Path, workdir: Path) -> dict:
    from inference_contract.control import publish_swap
    from webapp.core.redis_client import redis_client

    new_path = workdir / "ring-tiny-swap-copy"
    if new_path.exists():
        shutil.rmtree(new_path)
    shutil.copytree(checkpoint, new_path)
    new_label = f"bench-swap-{int(time.time())}"
    finished: list[StreamClient] = []
    stop = asyncio.Event()

    async def student(index: int) -> None:
        while not stop.is_set():
            stream, _ = await request_and_wait(
                stack, *users[index], problems[index % len(problems)], redis_client()
            )
            finished.append(stream)

    tasks = [asyncio.create_task(student(i)) for i in range(args.swap_streams)]
    await asyncio.sleep(8)
    promoted = time.perf_counter()
    publish_swap(redis_client(), model_version_id=None, label=new_label, path=str(new_path))
    while True:
        beat = stack.heartbeat() or {}
        last = beat.get("last_swap") or {}
        if last.get("label") == new_label:
            break
        if time.perf_counter() - promoted > 600:
            raise RuntimeError("the swap did not finish in 10 minutes")
        await asyncio.sleep(0.2)
    swapped = time.perf_counter()
    await asyncio.sleep(8)
    stop.set()
    await asyncio.gather(*tasks)

    def served_by_new(stream: StreamClient) -> bool:
        done = stream.done_event() or {}
        return done.get("model_version") == new_label

    new_first = [s.first_delta_at() for s in finished if served_by_new(s) and s.first_delta_at()]
    # Gaps between consecutive deltas of one stream, by when the gap ended: the same load before
    # the promotion is the baseline the swap window is compared with.
    timed_gaps = [
        (end, gap, served_by_new(s)) for s in finished for end, gap in s.timed_delta_gaps()
    ]
    before = [gap for end, gap, _ in timed_gaps if end < promoted]
    during = [(end, gap, new) for end, gap, new in timed_gaps if promoted <= end <= swapped + 5]
    worst_end, worst, worst_new = (
        max(during, key=lambda item: item[1]) if during else (promoted, 0.0, False)
    )
    result = {
        "swap_ok": bool(last.get("ok")),
        "swap_error": last.get("error", ""),
        "swap_seconds": round(swapped - promoted, 2),
        "requests": len(finished),
        "failed": sum(1 for s in finished if (s.done_event() or {}).get("status") != "done"),
        "errors": sum(1 for s in finished for _, e in s.events if e["type"] == "error"),
        "served_by_new": sum(1 for s in finished if served_by_new(s)),
        "longest_pause_ms": round(worst * 1000, 1),
        "longest_pause_at_s_after_promotion": round(worst_end - worst - promoted, 1),
        "longest_pause_in_a_new_version_stream": worst_new,
        "p99_gap_during_swap_ms": round(percentile([g for _, g, _ in during], 0.99) * 1000, 1),
        "longest_pause_before_promotion_ms": round(max(before, default=0.0) * 1000, 1),
        "p99_gap_before_promotion_ms": round(percentile(before, 0.99) * 1000, 1),
        "promotion_to_first_new_token_s": (
            round(min(new_first) - promoted, 2) if new_first else None
        ),
    }
    print(f"hot-swap under {args.swap_streams} streams: {result}", flush=True)
    return result


def print_table(phases: dict[str, tuple[dict, dict]], swap: dict | None, meta: dict) -> None:
    print()
    print(
        f"checkpoint {meta['checkpoint']}  max_new_tokens {meta['max_new_tokens']}  "
        f"eager {meta['eager']}  burst rounds {meta['rounds']}  sustained rounds "
        f"{meta['sustained_rounds']} x {meta['sustained_seconds']:.0f} s  "
        f"load average {meta['load_before']:.1f} before, {meta['load_after']:.1f} after"
    )
    for title, (raw, stack) in phases.items():
        print(f"\n{title}")
        print(
            "| N | raw engine tok/s | whole stack tok/s | stack/raw (all rounds) "
            "| stack/raw (median of pairs) | raw TTFT median ms | client TTFT median ms "
            "| client - raw ms (median of pairs) | requests | failed |"
        )
        print("|" + "---|" * 10)
        for n in raw:
            r, s = raw[n], stack[n]
            paired = s["paired"]
            difference = paired["ttft_difference_ms_median"]
            print(
                f"| {n} | {r['tokens_per_s']:.0f} | {s['tokens_per_s']:.0f} | "
                f"{s['tokens_per_s'] / r['tokens_per_s']:.3f} | "
                f"{paired['throughput_ratio_median']:.3f} | {r['ttft_ms_median']:.1f} | "
                f"{s['ttft_ms_median']:.1f} | "
                f"{'n/a' if difference is None else f'{difference:.1f}'} | {s['requests']} | "
                f"{s['failed']} |"
            )
        groups = list(next(iter(stack.values()))["cpu_cores"])
        print("\nCPU of the stack's processes in those rounds (cores in use, median of rounds)")
        print("| N | " + " | ".join(groups) + " |")
        print("|" + "---|" * (len(groups) + 1))
        for n, s in stack.items():
            print(f"| {n} | " + " | ".join(f"{s['cpu_cores'][g]:.2f}" for g in groups) + " |")
        if "phases_ms" in next(iter(stack.values())):
            names = list(next(iter(stack.values()))["phases_ms"])
            print(
                "\nWhere a request's time went (median ms) and the workers' mean in-flight count (all workers together)"
            )
            print("| N | " + " | ".join(names) + " | in flight |")
            print("|" + "---|" * (len(names) + 2))
            for n, s in stack.items():
                print(
                    f"| {n} | "
                    + " | ".join(f"{s['phases_ms'].get(name, float('nan')):.0f}" for name in names)
                    + f" | {s['in_flight_mean']:.1f} |"
                )
    if swap:
        print()
        print("| hot-swap under load | value |")
        print("|---|---|")
        for key, value in swap.items():
            print(f"| {key} | {value} |")


async def run_all(args, checkpoint: Path, clients, users, problems, stack: Stack, workdir):
    # The two engines start together (the raw one here, the stack's in its worker process).
    engine_task = asyncio.create_task(start_raw_engine(checkpoint))
    try:
        beat = await asyncio.to_thread(stack.wait_serving)
        engine = await engine_task
        phases = {
            "burst (N requests at once, until the last is done)": await throughput_phase(
                args, engine, stack, clients, users, problems
            )
        }
        if args.sustained_seconds > 0:
            phases[
                f"sustained ({args.sustained_seconds:.0f} s of N clients, each sending its next "
                "request when the last is done)"
            ] = await sustained_phase(args, engine, stack, clients, users, problems)
    finally:
        # Even when the stack failed to start: never leave an engine process behind.
        with contextlib.suppress(Exception):
            await (await engine_task).shutdown()
    swap = None
    if not args.skip_swap:
        swap = await swap_phase(args, stack, users, problems, checkpoint, workdir)
    return beat, phases, swap


def main() -> int:
    args = parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    clients = [int(n) for n in args.clients.split(",")]
    checkpoint = ensure_checkpoint(Path(args.checkpoint).resolve(), workdir)
    env = environment(args, checkpoint)
    os.environ.update(env)
    meta = {
        "checkpoint": str(checkpoint),
        "max_new_tokens": args.max_new_tokens,
        "eager": args.eager,
        "rounds": args.rounds,
        "sustained_rounds": args.sustained_rounds,
        "sustained_seconds": args.sustained_seconds,
        "load_before": os.getloadavg()[0],
        "clients": clients,
    }

    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import redis

    redis.Redis.from_url(BENCH_REDIS).flushdb()
    users = make_users(max(max(clients), args.swap_streams))
    problems = make_problems()

    stack = Stack(env, workdir)
    stack.start()
    try:
        beat, phases, swap = asyncio.run(
            run_all(args, checkpoint, clients, users, problems, stack, workdir)
        )
    finally:
        stack.stop()
    meta["served"] = beat["model_version"]
    meta["load_after"] = os.getloadavg()[0]
    print_table(phases, swap, meta)
    results = {title: {"raw": raw, "stack": whole} for title, (raw, whole) in phases.items()}
    Path(args.out).write_text(json.dumps({"meta": meta, "phases": results, "swap": swap}, indent=2))
    print(f"\nresults written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
