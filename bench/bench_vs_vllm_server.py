"""The stack against vLLM's own OpenAI-compatible server, both streaming to clients (issue #18).

Run: `python bench/bench_vs_vllm_server.py` (N = 1, 8, 32; 20 s rounds; 2 pairs; `--help`).

The peer a user would pick instead of this stack is `python -m vllm.entrypoints.openai.api_server`
streaming over SSE. Both sides serve the same checkpoint, greedy, with the same `max_tokens`, on the
same 40 prompts: the stack builds its prompt with the worker's chat template from the typed
question; the server gets exactly those token ids (`prompt` as a list of ids on
`/v1/completions`). Each N runs sustained rounds (N clients, each sending its next question when
its last is done) in pairs of alternating order (server, stack; then stack, server), with the idle
side's engine processes held still (SIGSTOP), so only one engine computes at a time.

A stack client behaves like a browser: it logs in through the log-in form (students the bench
creates), POSTs the question to the ask form, opens the generation's WebSocket and reads until
`done`. How it gets from the POST to the socket is `--page-flow`: `inline` (what the page does with
JavaScript: the POST is sent as htmx sends it and answers with the attempt page's content, which
names the socket), `redirect` (the page without JavaScript, and every page before issue #18's page
phase: the POST redirects, the client loads the attempt page, then opens its socket), or `both`
(the stack's requests alternate the two, each client starting with a different one, so both flows
meet the same load in the same rounds; first text is then also reported per flow). Its first-text
clock starts at the POST (the click). For every stack request the bench rebuilds the text from what the client received
(snapshot, then deltas in order) and compares it with the stored Generation row; every answer is
compared, per prompt, with the server's text for the same prompt.

Reported per side and N: tokens per second (stack/server per pair, median of pairs), first-text
p50, non-engine CPU per generated token (psutil: the engine's processes against every other
process of that side), PostgreSQL commits per generation (`xact_commit` of the site's database),
Redis commands per generation (`INFO commandstats` of a redis-server the bench starts for the site
alone), failed requests, and the stack's request phases. Both sides get the same CPU layout
(`--cpu-layout`, docs/inference-worker.md "CPU layout": by default each engine's processes on the
cores its OpenMP threads are bound to, everything else, the bench's clients included, on the rest);
the site runs with DEBUG=0, as `make run` serves it. Printed as markdown, written as JSON to
`--out`. The site uses the database `ringtutor_vsbench_site` (created and migrated if missing).
"""

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_streaming import (  # noqa: E402 - after the path is set
    CLIENT_KEEP_ALIVE_S,
    STATEMENTS,
    CpuMeter,
    LoopLagWatch,
    Stack,
    StreamClient,
    ensure_checkpoint,
    ensure_database,
    environment,
    free_port,
    merge_rounds,
    paired_comparison,
    paired_rounds,
    request_phases,
    stack_engines,
)
from webapp.serve import KEEP_ALIVE_S  # noqa: E402

SITE_DB = "ringtutor_vsbench_site"
SITE_REDIS_DB = 3
PASSWORD = "bench-vs-server-pw-1"
MODEL_NAME = "ring-tiny"
# bench_streaming's eight, then 32 more of the same kinds: 40 prompts.
PROMPTS = (
    STATEMENTS
    + [f"Compute {a} + {b}." for a, b in zip(range(12, 100, 11), range(97, 10, -9), strict=False)][
        :8
    ]
    + [f"Compute {a} * {b}." for a, b in zip(range(3, 11), range(13, 21), strict=True)]
    + [
        f"Solve for x: {a}x + {b} = {a * 5 + b}."
        for a, b in zip(range(2, 10), range(1, 9), strict=True)
    ]
    + [f"What is {p}% of {w}?" for p, w in zip(range(10, 90, 10), range(40, 200, 20), strict=True)]
)
REQUEST_TIMEOUT_S = 180


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "ring-tiny"))
    parser.add_argument("--clients", default="1,8,32", help="comma-separated N (default 1,8,32)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each round")
    parser.add_argument("--pairs", type=int, default=2, help="measured pairs of rounds per N")
    parser.add_argument(
        "--warmup-seconds", type=float, default=5.0, help="one unmeasured round per N and side"
    )
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--eager", action="store_true", help="vLLM eager mode on both sides")
    parser.add_argument(
        "--server-logprobs",
        action="store_true",
        help="the server's requests also ask for the sampled tokens' log-probabilities "
        "(`logprobs: 0`), the work the stack's engine does for each answer's confidence "
        "(default: they do not, as issue #18's comparison is defined)",
    )
    parser.add_argument(
        "--stack-workers", type=int, default=1, help="inference workers on the stack's queue"
    )
    parser.add_argument(
        "--stack-engine-cores",
        default="",
        help="the cores each stack worker's engine binds its OpenMP threads to, one CPU list per "
        "worker separated by ';' (e.g. '0;1' for two workers: VLLM_CPU_OMP_THREADS_BIND of each); "
        "empty: vLLM's auto binding. Needs --cpu-layout shared (apart keeps the last core for the "
        "web tier)",
    )
    parser.add_argument(
        "--page-flow",
        choices=[*PAGE_FLOWS, "both"],
        default="inline",
        help="how a stack client gets from the ask POST to the socket (see above; default inline)",
    )
    parser.add_argument(
        "--cpu-layout",
        choices=["apart", "shared"],
        default="apart",
        help="apart (the default; docs/inference-worker.md, 'CPU layout'): on both sides the "
        "engine's processes on the cores its OpenMP threads are bound to, every other process on "
        "the rest; shared: nothing is pinned (every run before 2026-12-06)",
    )
    parser.add_argument("--workdir", default="runs/bench-vs-vllm-server")
    parser.add_argument("--out", default="runs/bench-vs-vllm-server/results.json")
    args = parser.parse_args(argv)
    if args.stack_engine_cores and args.cpu_layout == "apart":
        parser.error("--stack-engine-cores needs --cpu-layout shared")
    return args


# --- pure parts (tests/bench/test_bench_vs_vllm_server.py) ---------------------------------------


@dataclass
class Rebuilt:
    """A generation's text as a page rebuilds it from the events it received, and what was wrong
    with their order (a skipped or repeated delta number, nothing after `done`)."""

    reasoning: str = ""
    answer: str = ""
    seq: int = 0
    done: dict | None = None
    problems: list[str] = field(default_factory=list)


def rebuild(events: list[dict]) -> Rebuilt:
    """Apply the events the way the page does: a snapshot replaces the text, each delta must be
    the next number and is appended to its channel, `done` ends it."""
    state = Rebuilt()
    for event in events:
        kind = event["type"]
        if state.done is not None:
            state.problems.append(f"{kind} after done")
        elif kind == "snapshot":
            if event["seq"] < state.seq:
                state.problems.append(f"older snapshot {event['seq']} after {state.seq}")
            state.seq = event["seq"]
            state.reasoning, state.answer = event["reasoning"], event["answer"]
        elif kind == "delta":
            if event["seq"] != state.seq + 1:
                state.problems.append(f"delta {event['seq']} after {state.seq}")
            state.seq = max(state.seq, event["seq"])
            if event["channel"] == "reasoning":
                state.reasoning += event["text"]
            else:
                state.answer += event["text"]
        elif kind == "done":
            state.done = event
    return state


def first_text_index(events: list[dict]) -> int | None:
    """Index of the first event that puts visible text on the page (a delta, or a snapshot of a
    page that opened after text had been generated)."""
    for index, event in enumerate(events):
        if event["type"] == "delta" and event["text"]:
            return index
        if event["type"] == "snapshot" and (event["reasoning"] or event["answer"]):
            return index
    return None


def commandstats_delta(before: dict, after: dict) -> dict[str, int]:
    """Calls per command between two `INFO commandstats` answers (as redis-py parses them:
    {"cmdstat_get": {"calls": 3, ...}}), without the bench's own INFO calls."""
    delta = {}
    for key, stats in after.items():
        name = key.removeprefix("cmdstat_")
        if name == "info":
            continue
        calls = stats["calls"] - before.get(key, {}).get("calls", 0)
        if calls:
            delta[name] = calls
    return delta


def without_own_reads(calls: dict[str, int], reads: int) -> dict[str, int]:
    """`calls` less the bench's own heartbeat GETs (LoopLagWatch.reads), never below zero; a read
    cancelled at the round's end may not have reached Redis."""
    remaining = dict(calls)
    left = max(0, remaining.get("get", 0) - reads)
    if left:
        remaining["get"] = left
    else:
        remaining.pop("get", None)
    return remaining


def sse_payloads(lines: list[str]) -> list[dict]:
    """The JSON payloads of server-sent-event lines (`data: {...}`), without `[DONE]`."""
    payloads = []
    for line in lines:
        if line.startswith("data:"):
            data = line[len("data:") :].strip()
            if data and data != "[DONE]":
                payloads.append(json.loads(data))
    return payloads


# inline: the POST answers with the attempt page's content (the page with JavaScript, htmx);
# redirect: POST, redirect, GET of the attempt page (the page without JavaScript).
PAGE_FLOWS = ("inline", "redirect")
# The headers htmx sends with the ask form's POST (hx-target="#student-page").
HTMX_ASK_HEADERS = {"HX-Request": "true", "HX-Target": "student-page"}


def page_flow_for(choice: str, client: int, turn: int) -> str:
    """The flow of client `client`'s `turn`-th request: `choice`, or with "both" the two in turn,
    neighbouring clients starting with different ones (at N=1, inline then redirect then ...)."""
    if choice != "both":
        return choice
    return PAGE_FLOWS[(client + turn) % len(PAGE_FLOWS)]


def page_generation(html: str) -> tuple[int, str]:
    """The generation the attempt page (or the ask's inline answer) is about, and its status: the
    stream article still queued or running (the page's script opens a socket for those only), or
    else the newest article, finished before the page was rendered (its text is in the markup)."""
    newest = None
    for article in re.finditer(r"<article [^>]*>", html):
        tag = article.group(0)
        status = re.search(r'data-status="([^"]+)"', tag)
        generation = re.search(r'data-generation-id="(\d+)"', tag)
        if not (status and generation):
            continue
        if status.group(1) in ("queued", "running"):
            return int(generation.group(1)), status.group(1)
        newest = (int(generation.group(1)), status.group(1))
    if newest is None:
        raise ValueError("no generation in the page")
    return newest


def median_or_none(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# --- processes -----------------------------------------------------------------------------------


class Services:
    """The processes the bench starts besides the stack: a redis-server for the site alone and
    vLLM's OpenAI server; both stopped (and the stack) by `stop`."""

    def __init__(self, env: dict, workdir: Path) -> None:
        self.workdir = workdir
        self.redis_port = free_port()
        self.redis = self._spawn(
            [
                "redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no",
            ],
            "redis.log", env,
        )  # fmt: skip
        self.server_port = free_port()
        self.server_url = f"http://127.0.0.1:{self.server_port}"
        self.server: subprocess.Popen | None = None

    def start_server(self, checkpoint: Path, env: dict) -> None:
        """vLLM's server with the engine settings the stack's worker builds from `env` (call
        after django.setup())."""
        engine = env_engine_settings()
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--host", "127.0.0.1", "--port", str(self.server_port),
            "--model", str(checkpoint), "--tokenizer", str(checkpoint),
            "--served-model-name", MODEL_NAME, "--trust-remote-code",
            "--dtype", engine.dtype, "--max-model-len", str(engine.max_model_len),
            "--max-num-seqs", str(engine.max_num_seqs), "--seed", str(engine.seed),
            "--stream-interval", str(engine.stream_interval), "--disable-log-stats",
            "--disable-uvicorn-access-log",
        ]  # fmt: skip
        if engine.enforce_eager:
            command.append("--enforce-eager")
        self.server = self._spawn(
            command,
            "vllm-server.log",
            {
                **env,
                "VLLM_CPU_KVCACHE_SPACE": str(engine.kv_cache_gib),
                "VLLM_HTTP_TIMEOUT_KEEP_ALIVE": str(KEEP_ALIVE_S),  # as the site's
            },
        )

    def _spawn(self, command: list[str], log_name: str, env: dict) -> subprocess.Popen:
        log = open(self.workdir / log_name, "wb")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/{SITE_REDIS_DB}"

    def wait_redis(self) -> None:
        import redis

        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                redis.Redis.from_url(self.redis_url).ping()
                return
            time.sleep(0.1)
        raise RuntimeError(f"the bench's redis-server did not start; see {self.workdir}")

    def wait_server(self, timeout: float = 900) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"vLLM's server exited; see {self.workdir}/vllm-server.log")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.server_url}/v1/models", timeout=2).status_code == 200:
                    return
            time.sleep(1)
        raise RuntimeError("vLLM's server did not start")

    def stop(self) -> None:
        import signal

        processes = [p for p in (self.server, self.redis) if p is not None]
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def env_engine_settings():
    """The engine settings the stack's worker builds from the same environment."""
    from worker.inference.config import config_from_settings

    return config_from_settings().engine


class SideCpu(CpuMeter):
    """CPU per process group of both sides: each side's engine against everything else it runs
    (for the stack: uvicorn, the worker's main process, the site's redis-server and the
    PostgreSQL backends connected to the site's database when sampled)."""

    SERVER_NON_ENGINE = ("server frontend",)
    STACK_NON_ENGINE = ("uvicorn", "worker main", "site redis", "site postgres")

    def __init__(self, stack: Stack, services: Services) -> None:
        self.services = services
        super().__init__(stack)

    def _groups(self) -> dict[str, list]:
        import psutil

        groups = super()._groups()
        server = psutil.Process(self.services.server.pid)
        return {
            "server frontend": [server],
            "server engine": server.children(recursive=True),
            "uvicorn": groups["uvicorn"],
            "worker main": groups["worker main"],
            "stack engine": groups["worker engine"],
            "site redis": [psutil.Process(self.services.redis.pid)],
            "site postgres": [psutil.Process(pid) for pid in site_backend_pids()],
            "bench clients": groups["bench clients"],
        }

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds per group since the meter was made (cores in use over one second)."""
        return self.cores_used(1.0)


def site_backend_pids() -> list[int]:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", [SITE_DB]
        ).fetchall()
    return [pid for (pid,) in rows]


def layout_env(layout: str) -> dict[str, str]:
    """The stack's environment for `layout`: apart pins the web server to the last CPU (the one
    vLLM's `auto` binding leaves free) and has the worker arrange its tree; shared does neither."""
    from inference_contract.cpu_layout import SITE_CPUS_ENV, host_cpus

    if layout == "apart":
        return {SITE_CPUS_ENV: str(max(host_cpus())), "INFERENCE_KEEP_OFF_ENGINE_CPUS": "1"}
    return {SITE_CPUS_ENV: "", "INFERENCE_KEEP_OFF_ENGINE_CPUS": "0"}


def engine_core_envs(spec: str, workers: int) -> list[dict] | None:
    """Each worker's `VLLM_CPU_OMP_THREADS_BIND` from `--stack-engine-cores` ('0;1': the first
    worker's engine on core 0, the second's on core 1); None (vLLM's auto binding) when empty.
    Under `auto` every engine on a host binds the same cores, so two workers would only share one
    engine's core between them."""
    from inference_contract.cpu_layout import format_cpu_list, parse_cpu_list

    if not spec:
        return None
    lists = [format_cpu_list(parse_cpu_list(part)) for part in spec.split(";")]
    if len(lists) != workers:
        raise ValueError(f"--stack-engine-cores names {len(lists)} CPU lists for {workers} workers")
    return [{"VLLM_CPU_OMP_THREADS_BIND": cpus} for cpus in lists]


def arrange_cpus(layout: str, stack: Stack, services: Services) -> tuple[dict, set[int] | None]:
    """(What runs where, the cores the engines leave free: None for `shared`.)

    Apart: the same layout on both sides. The stack's worker has arranged its own tree (its
    heartbeat says how); the bench arranges vLLM's server the same way (its engine scheduler beside
    the engine, its API process on the rest) and moves its own clients, the site's redis-server and
    PostgreSQL backends onto the free cores (the backends again at every round)."""
    import psutil

    from inference_contract.cpu_layout import SITE_CPUS_ENV, EngineCpus, parse_cpu_list, pin

    if layout != "apart":
        return {"layout": layout}, None
    beat = stack.heartbeat() or {}
    if not beat.get("cpus"):
        raise RuntimeError("--cpu-layout apart: the stack's worker reported no CPU layout")
    free = parse_cpu_list(beat["cpus"]["others"])
    site_cpus = os.environ[SITE_CPUS_ENV]
    if not parse_cpu_list(site_cpus) <= free:
        # The web server was pinned before the engine started, to the core vLLM's `auto` binding
        # usually leaves free (layout_env); this engine bound it.
        raise RuntimeError(f"{SITE_CPUS_ENV}={site_cpus} is not among the free {free}")
    server = EngineCpus(services.server.pid)
    server.arrange()
    for pid in (os.getpid(), services.redis.pid):
        pin(psutil.Process(pid), free)
    pin_site_backends(free)
    return {
        "layout": layout,
        "stack": beat["cpus"],
        "server": server.summary(),
    }, free


def pin_site_backends(free: set[int]) -> None:
    import psutil

    from inference_contract.cpu_layout import pin

    for pid in site_backend_pids():
        with contextlib.suppress(psutil.Error):
            pin(psutil.Process(pid), free)


def site_commits() -> int:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        (commits,) = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [SITE_DB]
        ).fetchone()
    return int(commits)


# --- the two sides' clients ----------------------------------------------------------------------


@dataclass
class Outcome:
    """One request, either side: the prompt, tokens, first text (ms from the send or click),
    the text, and why it failed (empty when it did not)."""

    prompt_index: int
    tokens: int = 0
    first_text_ms: float | None = None
    text: tuple[str, str] = ("", "")
    error: str = ""
    stream: StreamClient | None = None
    clicked_at: float = 0.0
    page_flow: str = ""  # the stack's: inline or redirect
    answered_in_page: bool = False  # the stack's answer was finished when its page arrived


async def server_request(
    http, url: str, prompt_index: int, ids: list[int], max_tokens: int, *, logprobs: bool = False
):
    from ringmodel.chat import split_reasoning

    outcome, text, lines = Outcome(prompt_index), "", []
    body = {
        "model": MODEL_NAME, "prompt": ids, "max_tokens": max_tokens, "temperature": 0.0,
        "top_p": 1.0, "stream": True, "stream_options": {"include_usage": True},
    }  # fmt: skip
    if logprobs:  # the sampled token's, as the stack's worker asks for them (--server-logprobs)
        body["logprobs"] = 0
    sent = time.perf_counter()
    try:
        async with http.stream("POST", f"{url}/v1/completions", json=body) as response:
            if response.status_code != 200:
                outcome.error = f"HTTP {response.status_code}"
                return outcome
            async for line in response.aiter_lines():
                lines.append(line)
                for payload in sse_payloads([line]):
                    for choice in payload.get("choices") or []:
                        text += choice.get("text") or ""
                    if payload.get("usage"):
                        outcome.tokens = payload["usage"]["completion_tokens"]
                if outcome.first_text_ms is None and text:
                    split = split_reasoning(text)
                    if split.reasoning or split.answer:
                        outcome.first_text_ms = (time.perf_counter() - sent) * 1000
    except Exception as error:  # noqa: BLE001 - a failed request is counted, not fatal
        outcome.error = f"{type(error).__name__}: {error}"
        return outcome
    if "data: [DONE]" not in lines:
        outcome.error = "no [DONE]"
    split = split_reasoning(text)
    outcome.text = (split.reasoning, split.answer)
    return outcome


class BrowserStudent:
    """A logged-in student's browser: its cookies, its CSRF token, and its pages."""

    def __init__(self, stack: Stack, username: str) -> None:
        import httpx

        self.stack = stack
        self.username = username
        self.http = httpx.AsyncClient(
            base_url=stack.url,
            timeout=REQUEST_TIMEOUT_S,
            limits=httpx.Limits(keepalive_expiry=CLIENT_KEEP_ALIVE_S),
        )

    async def log_in(self) -> None:
        page = await self.http.get("/accounts/login/")
        response = await self.http.post(
            "/accounts/login/",
            data={
                "username": self.username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": self._csrf(page.text),
            },
        )
        if response.status_code != 302:
            raise RuntimeError(f"log-in of {self.username} failed: HTTP {response.status_code}")
        self.home_csrf = self._csrf((await self.http.get("/solve/")).text)

    @staticmethod
    def _csrf(html: str) -> str:
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())

    async def ask(self, prompt_index: int, page_flow: str = "inline") -> Outcome:
        """The click (POST of the ask form), the attempt page (`page_flow`: in the POST's answer,
        or through the redirect and its GET), its socket, until `done`."""
        outcome = Outcome(prompt_index, page_flow=page_flow)
        clicked = outcome.clicked_at = time.perf_counter()
        inline = page_flow == "inline"
        step = "ask"  # which step an exception came from, in the error it is counted under
        try:
            response = await self.http.post(
                "/solve/ask/",
                data={
                    "statement": PROMPTS[prompt_index],
                    "mode": "solve",
                    "csrfmiddlewaretoken": self.home_csrf,
                },
                headers=HTMX_ASK_HEADERS if inline else None,
            )
            if response.status_code != (200 if inline else 302):
                outcome.error = f"ask ({page_flow}): HTTP {response.status_code}"
                return outcome
            if inline:
                page = response
            else:
                step = "attempt page"
                page = await self.http.get(urljoin(self.stack.url, response.headers["location"]))
                if page.status_code != 200:
                    outcome.error = f"attempt page: HTTP {page.status_code}"
                    return outcome
            generation_id, status = page_generation(page.text)
            if status not in ("queued", "running"):
                # Finished before the page was rendered: the whole answer is in the page the
                # student sees (no socket to open), so its first text is the page's arrival.
                return await self._answered_in_page(outcome, generation_id, status)
            stream = outcome.stream = StreamClient(self.stack, generation_id, self.cookie_header)
            stream.page_ms = (time.perf_counter() - clicked) * 1000
            step = "socket"
            await stream.open()
            step = "stream"
            await asyncio.wait_for(stream.done.wait(), REQUEST_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - a failed request is counted, not fatal
            outcome.error = f"{step}: {type(error).__name__}: {error}"
            return outcome
        events = [event for _, event in stream.events]
        index = first_text_index(events)
        if index is not None:
            outcome.first_text_ms = (stream.events[index][0] - clicked) * 1000
        done = stream.done_event()
        if not done or done["status"] != "done":
            outcome.error = f"ended {done and done['status']}"
        else:
            outcome.tokens = done.get("completion_tokens") or 0
        return outcome

    async def _answered_in_page(self, outcome: Outcome, generation_id: int, status: str):
        from asgiref.sync import sync_to_async

        from webapp.tutoring.models import Generation

        outcome.first_text_ms = (time.perf_counter() - outcome.clicked_at) * 1000
        outcome.answered_in_page = True
        if status != "done":
            outcome.error = f"ended {status}"
            return outcome
        tokens = await sync_to_async(
            lambda: Generation.objects.values_list("completion_tokens", flat=True).get(
                pk=generation_id
            )
        )()
        outcome.tokens = tokens or 0
        return outcome


def make_students(count: int) -> list[str]:
    from webapp.accounts.models import Role, User

    names = []
    for index in range(count):
        name = f"vsbench-student-{index}"
        user, _ = User.objects.get_or_create(username=name, defaults={"role": Role.STUDENT})
        user.set_password(PASSWORD)
        user.save()
        names.append(name)
    return names


# --- rounds --------------------------------------------------------------------------------------


async def sustained(n: int, seconds: float, ask) -> tuple[list[Outcome], float]:
    """N clients, each asking its next prompt (the same order on both sides) when its last one
    is done, until `seconds` have passed; (outcomes, seconds until the last one ended)."""
    deadline = time.perf_counter() + seconds
    outcomes: list[Outcome] = []

    async def client(i: int) -> None:
        k = 0
        while time.perf_counter() < deadline:
            outcomes.append(await ask(i, (i + k * n) % len(PROMPTS)))
            k += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(n)))
    return outcomes, time.perf_counter() - started


class Bench:
    def __init__(
        self, args, stack: Stack, services: Services, prompt_ids, students, free_cpus=None
    ) -> None:
        import httpx
        import redis

        from tests.fixtures.process_hold import ProcessHold

        self.args = args
        self.stack = stack
        self.services = services
        self.prompt_ids = prompt_ids
        self.students = students
        self.http = httpx.AsyncClient(
            timeout=REQUEST_TIMEOUT_S,
            limits=httpx.Limits(max_connections=None, keepalive_expiry=CLIENT_KEEP_ALIVE_S),
        )
        self.redis = redis.Redis.from_url(services.redis_url)
        self.server_hold = ProcessHold.descendants_of(services.server.pid)
        self.stack_hold = stack_engines(stack)
        # --cpu-layout apart: the cores the engines leave to everything else.
        self.free_cpus: set[int] | None = free_cpus
        self.turns: dict[int, int] = {}  # per stack client, its requests so far (page flows)
        self.server_texts: dict[int, tuple[str, str]] = {}
        self.stack_texts: dict[int, tuple[str, str]] = {}

    async def round(self, side: str, n: int, seconds: float) -> dict:
        if self.free_cpus:  # backends the site's pool opened since the last round
            pin_site_backends(self.free_cpus)
        meter = SideCpu(self.stack, self.services)
        lag = LoopLagWatch(self.stack) if side == "stack" else None
        commits, redis_before = site_commits(), self.redis.info("commandstats")
        if side == "server":

            async def ask(i: int, p: int) -> Outcome:
                return await server_request(
                    self.http, self.services.server_url, p, self.prompt_ids[p],
                    self.args.max_new_tokens, logprobs=self.args.server_logprobs,
                )  # fmt: skip

            with self.stack_hold.held():
                outcomes, taken = await sustained(n, seconds, ask)
        else:

            async def ask(i: int, p: int) -> Outcome:
                turn = self.turns[i] = self.turns.get(i, -1) + 1
                return await self.students[i].ask(p, page_flow_for(self.args.page_flow, i, turn))

            with self.server_hold.held():
                outcomes, taken = await sustained(n, seconds, ask)
        cpu = meter.cpu_seconds()
        if lag is not None:
            await lag.stop()
        await asyncio.sleep(1.0)  # PostgreSQL publishes a backend's counts when it goes idle
        commits = site_commits() - commits
        redis_calls = commandstats_delta(redis_before, self.redis.info("commandstats"))
        if lag is not None:  # the bench's own heartbeat reads are not the stack's commands
            redis_calls = without_own_reads(redis_calls, lag.reads)
        result = self._summary(side, outcomes, taken, cpu, commits, redis_calls)
        if lag is not None:
            result["in_flight_mean"] = lag.in_flight_mean
            result["loop_lag_ms"] = lag.worst_ms
            finished = [(o.stream, o.clicked_at) for o in outcomes if o.stream and o.stream.events]
            result["phases_ms"] = await request_phases(finished) if finished else {}
            result.update(await self._check_rebuilds(outcomes))
        return result

    def _summary(self, side, outcomes, taken, cpu, commits, redis_calls) -> dict:
        ok = [o for o in outcomes if not o.error]
        engine = cpu[f"{side} engine"]
        names = SideCpu.SERVER_NON_ENGINE if side == "server" else SideCpu.STACK_NON_ENGINE
        non_engine = sum(cpu[name] for name in names)
        tokens = sum(o.tokens for o in ok)
        if side == "server":
            for o in ok:
                self.server_texts[o.prompt_index] = o.text
        return {
            "tokens": tokens,
            "seconds": taken,
            "ttft_ms": [o.first_text_ms for o in ok if o.first_text_ms is not None],
            "ttft_ms_by_flow": ttft_by_flow(ok) if side == "stack" else {},
            "requests": len(outcomes),
            "failed": len(outcomes) - len(ok),
            "answered_in_page": sum(o.answered_in_page for o in ok),
            "errors": sorted({o.error for o in outcomes if o.error})[:5],
            "cpu_cores": {group: round(seconds / taken, 2) for group, seconds in cpu.items()},
            "engine_cpu_ms_per_token": 1000 * engine / tokens if tokens else None,
            "non_engine_cpu_ms_per_token": 1000 * non_engine / tokens if tokens else None,
            "pg_commits_per_generation": commits / len(ok) if ok else None,
            "redis_commands_per_generation": sum(redis_calls.values()) / len(ok) if ok else None,
            "redis_commands": redis_calls,
        }

    async def _check_rebuilds(self, outcomes: list[Outcome]) -> dict:
        """Every stack request: the text rebuilt from what its client received against the
        stored row."""
        from asgiref.sync import sync_to_async

        from webapp.tutoring.models import Generation

        streams = {o.stream.generation_id: o for o in outcomes if o.stream and not o.error}
        rows = await sync_to_async(
            lambda: {
                g.pk: (g.reasoning, g.answer)
                for g in Generation.objects.filter(pk__in=list(streams))
            }
        )()
        failures = []
        for generation_id, outcome in streams.items():
            rebuilt = rebuild([event for _, event in outcome.stream.events])
            stored = rows.get(generation_id)
            self.stack_texts[outcome.prompt_index] = stored
            if rebuilt.problems or (rebuilt.reasoning, rebuilt.answer) != stored:
                failures.append(
                    {
                        "generation": generation_id,
                        "problems": rebuilt.problems,
                        "received_chars": len(rebuilt.reasoning) + len(rebuilt.answer),
                        "stored_chars": sum(len(t) for t in stored or ("", "")),
                    }
                )
        return {"rebuild_checked": len(streams), "rebuild_failures": failures}

    def outputs_compared(self) -> dict:
        common = sorted(set(self.server_texts) & set(self.stack_texts))
        differ = [p for p in common if self.server_texts[p] != self.stack_texts[p]]
        return {"prompts_compared": len(common), "prompts_differing": differ}


def ttft_by_flow(outcomes: list[Outcome]) -> dict[str, list[float]]:
    """The stack's first-text times (ms from the click) per page flow."""
    by_flow: dict[str, list[float]] = {}
    for outcome in outcomes:
        if outcome.first_text_ms is not None:
            by_flow.setdefault(outcome.page_flow, []).append(outcome.first_text_ms)
    return by_flow


def side_summary(rounds: list[dict]) -> dict:
    merged = merge_rounds(rounds)
    flows = {flow for r in rounds for flow in r.get("ttft_ms_by_flow", {})}
    merged["ttft_ms_median_by_flow"] = {
        flow: median_or_none([t for r in rounds for t in r["ttft_ms_by_flow"].get(flow, [])])
        for flow in sorted(flows)
    }
    for key in (
        "engine_cpu_ms_per_token",
        "non_engine_cpu_ms_per_token",
        "pg_commits_per_generation",
        "redis_commands_per_generation",
    ):
        merged[key] = median_or_none([r[key] for r in rounds if r[key] is not None])
    merged["errors"] = sorted({e for r in rounds for e in r["errors"]})[:5]
    merged["redis_commands"] = {}
    for r in rounds:
        for name, calls in r["redis_commands"].items():
            merged["redis_commands"][name] = merged["redis_commands"].get(name, 0) + calls
    merged["answered_in_page"] = sum(r.get("answered_in_page", 0) for r in rounds)
    if "rebuild_checked" in rounds[0]:
        merged["rebuild_checked"] = sum(r["rebuild_checked"] for r in rounds)
        merged["rebuild_failures"] = [f for r in rounds for f in r["rebuild_failures"]]
    return merged


async def run(args, stack: Stack, services: Services, prompt_ids, usernames, free_cpus) -> dict:
    students = [BrowserStudent(stack, name) for name in usernames]
    for student in students:
        await student.log_in()
    bench = Bench(args, stack, services, prompt_ids, students, free_cpus)
    results = {}
    for n in [int(x) for x in args.clients.split(",")]:
        if args.warmup_seconds > 0:
            await bench.round("server", n, args.warmup_seconds)
            await bench.round("stack", n, args.warmup_seconds)
        server_rounds, stack_rounds = await paired_rounds(
            lambda n=n: bench.round("server", n, args.seconds),
            lambda n=n: bench.round("stack", n, args.seconds),
            args.pairs,
        )
        results[n] = {
            "server": side_summary(server_rounds),
            "stack": side_summary(stack_rounds),
            "paired": paired_comparison(server_rounds, stack_rounds),
        }
        print(f"N={n}: {json.dumps(results[n], default=str)[:600]}", flush=True)
    results["outputs"] = bench.outputs_compared()
    await bench.http.aclose()
    for student in students:
        await student.http.aclose()
    return results


def fmt(value, pattern: str = "{:.0f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def table(results: dict) -> str:
    rows = [
        "| N | server tok/s | stack tok/s | stack / server (median of pairs) "
        "| first text p50, server | click → first text p50, stack "
        "| non-engine CPU per token, server / stack | PG commits per generation, server / stack "
        "| Redis commands per generation, server / stack | failed, server / stack "
        "| rebuild failures (stack; answered in the page) |",
        "|" + "---|" * 11,
    ]
    phases_rows: list[str] = []
    flow_rows: list[str] = []
    for n, result in results.items():
        if not isinstance(n, int):
            continue
        server, stack, paired = result["server"], result["stack"], result["paired"]
        rows.append(
            f"| {n} | {server['tokens_per_s']:.0f} | {stack['tokens_per_s']:.0f} "
            f"| {paired['throughput_ratio_median']:.2f} | {server['ttft_ms_median']:.0f} ms "
            f"| {stack['ttft_ms_median']:.0f} ms "
            f"| {fmt(server['non_engine_cpu_ms_per_token'], '{:.2f}')} / "
            f"{fmt(stack['non_engine_cpu_ms_per_token'], '{:.2f}')} ms "
            f"| {fmt(server['pg_commits_per_generation'], '{:.1f}')} / "
            f"{fmt(stack['pg_commits_per_generation'], '{:.1f}')} "
            f"| {fmt(server['redis_commands_per_generation'], '{:.1f}')} / "
            f"{fmt(stack['redis_commands_per_generation'], '{:.1f}')} "
            f"| {server['failed']} / {stack['failed']} "
            f"| {len(stack['rebuild_failures'])} of {stack['rebuild_checked']}; "
            f"{stack.get('answered_in_page', 0)} |"
        )
        by_flow = stack.get("ttft_ms_median_by_flow", {})
        if len(by_flow) > 1:
            flow_rows.append(
                f"| {n} | " + " | ".join(fmt(by_flow.get(flow)) for flow in PAGE_FLOWS) + " |"
            )
        phases = stack.get("phases_ms", {})
        phases_rows.append(
            f"| {n} | "
            + " | ".join(fmt(phases.get(name)) for name in PHASE_NAMES)
            + f" | {stack.get('in_flight_mean', 0):.1f} |"
        )
    outputs = results.get("outputs", {})
    return "\n".join(
        rows
        + [
            "",
            "Stack request phases (median ms; page = click to the attempt page's markup "
            "received (the POST's answer inline, the redirected GET's otherwise), socket = from "
            "asking for the page's socket to its first message (the snapshot), queue = "
            "click to the worker's claim, to first delta = claim to the first delta event at "
            "the client (none when the answer was stored before the socket opened), stream = first text to `done`, finished to done = the row's finished_at to "
            "the client's `done`) and the workers' mean in-flight count (all workers together)",
            "",
            "| N | " + " | ".join(PHASE_NAMES) + " | in flight |",
            "|" + "---|" * (len(PHASE_NAMES) + 2),
            *phases_rows,
            "",
            *(
                [
                    "Click → first text p50 of the stack per page flow (`--page-flow both`: the "
                    "flows alternate within the same rounds), ms",
                    "",
                    "| N | " + " | ".join(PAGE_FLOWS) + " |",
                    "|" + "---|" * (len(PAGE_FLOWS) + 1),
                    *flow_rows,
                    "",
                ]
                if flow_rows
                else []
            ),
            f"Outputs per prompt, server against stack: {outputs.get('prompts_compared', 0)} "
            f"prompts compared, {len(outputs.get('prompts_differing', []))} differing "
            f"{outputs.get('prompts_differing', [])}",
        ]
    )


PHASE_NAMES = ("page", "socket", "queue", "to first delta", "stream", "finished to done")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = ensure_checkpoint(Path(args.checkpoint).resolve(), workdir)
    env = environment(args, checkpoint)
    ensure_database(SITE_DB)
    services = None
    stack = None
    meta = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "checkpoint": str(checkpoint),
        "max_new_tokens": args.max_new_tokens,
        "server_logprobs": args.server_logprobs,
        "seconds": args.seconds,
        "pairs": args.pairs,
        "stack_workers": args.stack_workers,
        "stack_engine_cores": args.stack_engine_cores or "auto",
        "load_before": os.getloadavg(),
    }
    try:
        services = Services(env, workdir)
        env.update(
            {
                "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{SITE_DB}",
                "REDIS_URL": services.redis_url,
                "GENERATION_QUOTA_PER_HOUR": "1000000",
                "GENERATION_QUOTA_PER_DAY": "1000000",
                **layout_env(args.cpu_layout),
            }
        )
        os.environ.update(env)
        services.wait_redis()
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        services.start_server(checkpoint, env)
        usernames = make_students(max(int(x) for x in args.clients.split(",")))
        stack = Stack(
            env,
            workdir,
            workers=args.stack_workers,
            worker_envs=engine_core_envs(args.stack_engine_cores, args.stack_workers),
        )
        stack.start()
        stack.wait_serving()
        services.wait_server()
        meta["cpus"], free_cpus = arrange_cpus(args.cpu_layout, stack, services)
        from transformers import AutoTokenizer

        from ringmodel.chat import build_prompt_ids

        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint), trust_remote_code=True)
        # As the worker renders a typed question (the form strips it, the worker too).
        prompt_ids = [build_prompt_ids(tokenizer, p.strip()) for p in PROMPTS]
        results = asyncio.run(run(args, stack, services, prompt_ids, usernames, free_cpus))
    finally:
        if stack is not None:
            stack.stop()
        if services is not None:
            services.stop()
    meta["load_after"] = os.getloadavg()
    print()
    print(
        f"{meta['command']}  (load average {meta['load_before'][0]:.1f} before, "
        f"{meta['load_after'][0]:.1f} after; CPU layout {meta['cpus']})"
    )
    print(table(results))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2, default=str))
    print(f"\nresults written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
