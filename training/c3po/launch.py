"""A C3PO job as a torchrun process group: the rank side and the supervisor that watches it.

`run_under_torchrun(spec, observer, nproc_per_node=N, control_dir=...)` (the supervisor, run by
the Celery training task) writes the spec as JSON and starts

    torchrun --nproc-per-node N [rendezvous] -m training.c3po.launch --spec ... --control ...

Every rank runs `main()`: it joins the process group (`init_from_environment`), beats a file
`heartbeat-<rank>.json` in the control directory every few seconds (pid, time, host), and runs
`pipeline.run_job` with its communicator; rank 0 appends what the job reports (metrics, logs,
samples, checkpoints) to `events.jsonl` and polls for a `STOP` file as its `should_stop`. The
supervisor tails the events into the caller's observer (training.observer), turns its should_stop()
into the STOP file (so a cancel ends the group within one step, with a checkpoint), and watches
every rank's heartbeat: a rank that stops beating, or a process group that exits non-zero, kills
the group and raises `RankFailure` naming the rank (unless every rank had already written its
`finished-<rank>` mark past the job's last barrier: a crash while shutting down is logged, and the
finished job's result stands). It also tells the observer every rank's last
beat (`rank_heartbeats`: when a rank appears, then every `beat_report_seconds`, and once more,
each rank exited, when the group ends), which the site shows per rank on the job page. Running the same spec again resumes from the
last checkpoint (run_job resumes by itself), at any world size.

Several nodes: the caller passes a `Rendezvous` (the site builds it from its settings
TRAINING_NNODES, TRAINING_NODE_RANK, TRAINING_RDZV_ENDPOINT and TRAINING_RDZV_ID, set in the
environment of every node's training worker; docs/c3po.md); one node uses torchrun's `--standalone`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.c3po.config import C3POConfig
from training.c3po.pipeline import JobResult, JobSpec, StageResult, StageSpec
from training.observer import RankBeat, SilentObserver, TrainingObserver

EVENTS_NAME = "events.jsonl"
STOP_NAME = "STOP"
RESULT_NAME = "result.json"
SPEC_NAME = "spec.json"
LOG_NAME = "torchrun.log"
FINISHED_PREFIX = "finished-"  # + rank: written by each rank once the job's last barrier passed


class RankFailure(RuntimeError):
    """A rank of the process group died or stopped beating; the message names it."""


@dataclasses.dataclass(frozen=True)
class Rendezvous:
    """A process group over several nodes: torchrun's c10d rendezvous, the same on every node but
    for `node_rank`. An empty `rdzv_id` means the job's control directory name."""

    nnodes: int
    node_rank: int
    endpoint: str
    rdzv_id: str = ""


# ---- the spec as JSON -------------------------------------------------------------------------


def spec_to_json(spec: JobSpec) -> dict[str, Any]:
    """The whole spec, problems included (JobSpec.to_dict summarises them), as JSON data."""
    out = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    out["problems"] = [p if isinstance(p, dict) else dataclasses.asdict(p) for p in spec.problems]
    out["stages"] = [dataclasses.asdict(s) for s in spec.stages]
    out["config"] = spec.config.to_dict()
    out["entropy_band"] = list(spec.entropy_band)
    return out


def spec_from_json(data: dict[str, Any]) -> JobSpec:
    values = dict(data)
    values["stages"] = [
        StageSpec(s["name"], tuple(s["domains"]), int(s["steps"]), dict(s.get("overrides") or {}))
        for s in data["stages"]
    ]
    values["config"] = C3POConfig.from_dict(data["config"])
    values["entropy_band"] = tuple(data["entropy_band"])
    return JobSpec(**values)


# ---- the rank side ----------------------------------------------------------------------------


class _Beat(threading.Thread):
    """Writes this rank's heartbeat file every `period` seconds while the rank lives."""

    def __init__(self, path: Path, rank: int, period: float) -> None:
        super().__init__(name=f"rank-{rank}-heartbeat", daemon=True)
        self.path, self.rank, self.period = path, rank, period
        self.stopped = threading.Event()

    def beat(self) -> None:
        payload = {
            "rank": self.rank,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "time": time.time(),
        }
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, self.path)

    def run(self) -> None:
        while True:
            self.beat()
            if self.stopped.wait(self.period):
                return


def _append_event(path: Path, event: dict[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(event, default=str) + "\n")
        handle.flush()


class _EventFileObserver:
    """Rank 0's observer: every report appended to the events file for the supervisor to relay
    (`_dispatch` reads it back), and a STOP file the supervisor touches as should_stop."""

    def __init__(self, events: Path, stop_file: Path) -> None:
        self.events, self.stop_file = events, stop_file

    def metrics(self, step: int, metrics: dict[str, float]) -> None:
        _append_event(self.events, {"type": "metrics", "step": step, "metrics": metrics})

    def log(self, line: str) -> None:
        _append_event(self.events, {"type": "log", "line": line})

    def samples(self, step: int, samples: list[dict[str, Any]]) -> None:
        _append_event(self.events, {"type": "samples", "step": step, "samples": samples})

    def checkpoint_written(self, step: int, path: str, info: dict[str, Any]) -> None:
        event = {"type": "checkpoint", "step": step, "path": path, "info": info}
        _append_event(self.events, event)

    def resumed(self, step: int) -> None:
        _append_event(self.events, {"type": "resumed", "step": step})

    def should_stop(self) -> bool:
        return self.stop_file.exists()

    def rank_heartbeats(self, beats: list[RankBeat]) -> None:
        # The ranks' beats reach the supervisor as files, not through rank 0's events.
        return None


def main(argv: list[str] | None = None) -> int:
    """One rank of the job (torchrun starts one process per rank)."""
    from training.c3po.distributed import init_from_environment
    from training.c3po.pipeline import run_job

    parser = argparse.ArgumentParser(prog="python -m training.c3po.launch")
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--heartbeat-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    comm = init_from_environment()
    beat = _Beat(args.control / f"heartbeat-{comm.rank}.json", comm.rank, args.heartbeat_seconds)
    beat.beat()
    beat.start()
    events = args.control / EVENTS_NAME
    stop_file = args.control / STOP_NAME
    spec = spec_from_json(json.loads(args.spec.read_text()))
    observer: TrainingObserver = (
        _EventFileObserver(events, stop_file) if comm.is_main else SilentObserver()
    )
    try:
        result = run_job(spec, observer, comm)
        if comm.is_main:
            tmp = args.control / f".{RESULT_NAME}.tmp"
            tmp.write_text(json.dumps(result.to_dict()))
            os.replace(tmp, args.control / RESULT_NAME)
        comm.barrier()
        # Past the barrier every rank has done its share and rank 0 has stored the result.
        (args.control / f"{FINISHED_PREFIX}{comm.rank}").touch()
        comm.close()
    finally:
        beat.stopped.set()
    return 0


# ---- the supervisor ---------------------------------------------------------------------------


def torchrun_command(
    *, nproc_per_node: int, spec_path: Path, control: Path, rendezvous: Rendezvous | None = None
) -> list[str]:
    """torchrun's command line: standalone on one node, `rendezvous` on many."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}"]
    if rendezvous is not None and rendezvous.nnodes > 1:
        if not rendezvous.endpoint:
            raise ValueError("TRAINING_NNODES > 1 needs TRAINING_RDZV_ENDPOINT (host:port)")
        command += [
            f"--nnodes={rendezvous.nnodes}",
            f"--node-rank={rendezvous.node_rank}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rendezvous.endpoint}",
            f"--rdzv-id={rendezvous.rdzv_id or control.name}",
        ]
    else:
        command.append("--standalone")
    return command + [
        "-m",
        "training.c3po.launch",
        "--spec",
        str(spec_path),
        "--control",
        str(control),
    ]


def _dispatch(event: dict[str, Any], observer: TrainingObserver) -> None:
    """One line of rank 0's events file, told to the supervisor's caller."""
    kind = event.get("type")
    if kind == "metrics":
        observer.metrics(int(event["step"]), event["metrics"])
    elif kind == "log":
        observer.log(event["line"])
    elif kind == "samples":
        observer.samples(int(event["step"]), event["samples"])
    elif kind == "checkpoint":
        observer.checkpoint_written(int(event["step"]), event["path"], event["info"])
    elif kind == "resumed":
        observer.resumed(int(event["step"]))


def read_rank_beats(control: Path, *, exited: bool = False) -> dict[int, RankBeat]:
    """rank → its last heartbeat (host, pid, age on this clock) from the control directory's
    files; a file being replaced or torn is skipped until the next read."""
    now = time.time()
    beats: dict[int, RankBeat] = {}
    for path in control.glob("heartbeat-*.json"):
        try:
            beat = json.loads(path.read_text())
            rank = int(beat["rank"])
            beats[rank] = RankBeat(
                rank=rank,
                host=str(beat.get("host", "")),
                pid=int(beat.get("pid", 0)),
                age_seconds=max(0.0, now - float(beat["time"])),
                exited=exited,
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return beats


def rank_heartbeats(control: Path) -> dict[int, float]:
    """rank → seconds since its last beat (what the supervisor watches)."""
    return {rank: beat.age_seconds for rank, beat in read_rank_beats(control).items()}


class _BeatReporter:
    """Tells the observer the ranks' beats: at once when a rank appears or restarts (a new pid or
    host), else at most every `period` seconds (each report is a database write on the site)."""

    def __init__(self, observer: TrainingObserver, period: float) -> None:
        self.observer, self.period = observer, period
        self.known: dict[int, tuple[str, int]] = {}
        self.last_sent = float("-inf")

    def tick(self, beats: dict[int, RankBeat]) -> None:
        who = {rank: (b.host, b.pid) for rank, b in beats.items()}
        if not beats or (who == self.known and time.monotonic() - self.last_sent < self.period):
            return
        self.send(beats)

    def send(self, beats: dict[int, RankBeat]) -> None:
        self.known = {rank: (b.host, b.pid) for rank, b in beats.items()}
        self.last_sent = time.monotonic()
        self.observer.rank_heartbeats([beats[rank] for rank in sorted(beats)])


def run_under_torchrun(
    spec: JobSpec,
    observer: TrainingObserver | None = None,
    *,
    nproc_per_node: int,
    control_dir: str | Path,
    rendezvous: Rendezvous | None = None,
    stale_after_seconds: float = 60.0,
    poll_seconds: float = 0.5,
    on_heartbeats: Callable[[dict[int, float]], None] | None = None,
    beat_report_seconds: float = 5.0,
) -> JobResult:
    """Run (or resume) `spec` as a torchrun process group and relay what it reports.

    Raises `RankFailure` when a rank dies or stops beating for `stale_after_seconds` (the group
    is killed first); a cancel (observer.should_stop) ends the group cleanly at a checkpoint and
    returns the result with `stopped=True`. The ranks' beats go to observer.rank_heartbeats
    (`_BeatReporter`), and a last time, every rank exited, however the group ends.
    """
    observer = observer or SilentObserver()
    control = Path(control_dir)
    control.mkdir(parents=True, exist_ok=True)
    for stale in (
        EVENTS_NAME,
        STOP_NAME,
        RESULT_NAME,
        *[p.name for p in control.glob("heartbeat-*.json")],
        *[p.name for p in control.glob(f"{FINISHED_PREFIX}*")],
    ):
        (control / stale).unlink(missing_ok=True)
    spec_path = control / SPEC_NAME
    spec_path.write_text(json.dumps(spec_to_json(spec)))
    (control / EVENTS_NAME).touch()
    command = torchrun_command(
        nproc_per_node=nproc_per_node, spec_path=spec_path, control=control, rendezvous=rendezvous
    )
    repo_root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (repo_root, os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    started = time.time()
    with open(control / LOG_NAME, "ab") as log_handle:
        process = subprocess.Popen(
            command,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            cwd=repo_root,
        )
        offset = 0
        reporter = _BeatReporter(observer, beat_report_seconds)
        try:
            while True:
                offset = _relay_events(control / EVENTS_NAME, offset, observer)
                code = process.poll()
                if code is not None:
                    offset = _relay_events(control / EVENTS_NAME, offset, observer)
                    break
                if observer.should_stop():
                    (control / STOP_NAME).touch()
                rank_beats = read_rank_beats(control)
                reporter.tick(rank_beats)
                beats = {rank: beat.age_seconds for rank, beat in rank_beats.items()}
                if on_heartbeats is not None and beats:
                    on_heartbeats(beats)
                late = {r: age for r, age in beats.items() if age > stale_after_seconds}
                if late or (not beats and time.time() - started > stale_after_seconds):
                    _kill_group(process)
                    named = (
                        ", ".join(
                            f"rank {r} silent for {age:.0f} s" for r, age in sorted(late.items())
                        )
                        or "no rank ever started"
                    )
                    raise RankFailure(f"training process group stopped beating ({named})")
                time.sleep(poll_seconds)
        except BaseException:
            _kill_group(process)
            # Already failing: a failed last report must not hide why.
            with contextlib.suppress(Exception):
                _report_exited(control, reporter)
            raise
    _report_exited(control, reporter)
    if code != 0:
        if not _every_rank_finished(control):
            raise RankFailure(_failure_message(control / LOG_NAME, code))
        # A rank that crashed while exiting, after the job's work and its result were done, must
        # not fail a finished job (a gloo rank can abort in C++ teardown); it is told, not hidden.
        observer.log(
            "every rank finished, then the process group exited with "
            f"{code} while shutting down; the job's result stands"
        )
    result = json.loads((control / RESULT_NAME).read_text())
    result["stages"] = [StageResult(**s) for s in result["stages"]]
    return JobResult(**result)


def _report_exited(control: Path, reporter: _BeatReporter) -> None:
    """The group is gone: every rank's last beat, marked exited (so none reads as silent)."""
    beats = read_rank_beats(control, exited=True)
    if beats:
        reporter.send(beats)


def _every_rank_finished(control: Path) -> bool:
    """Whether every rank that ever beat got past the job's last barrier, with the result
    stored."""
    started = set(read_rank_beats(control))
    marks = (p.name.removeprefix(FINISHED_PREFIX) for p in control.glob(f"{FINISHED_PREFIX}*"))
    finished = {int(rank) for rank in marks if rank.isdigit()}
    return bool(started) and started <= finished and (control / RESULT_NAME).is_file()


def _relay_events(path: Path, offset: int, observer: TrainingObserver) -> int:
    with open(path) as handle:
        handle.seek(offset)
        while True:
            line = handle.readline()
            if not line.endswith("\n"):
                return offset  # a line still being written is read next time
            offset += len(line.encode())
            _dispatch(json.loads(line), observer)


def _kill_group(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _failure_message(log_path: Path, code: int) -> str:
    """torchrun's own account of which rank failed, else the log's last lines."""
    text = log_path.read_text(errors="replace") if log_path.is_file() else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    failed = [line for line in lines if line.startswith(("rank", "exitcode", "error_file"))]
    detail = "; ".join(failed[:4]) or " | ".join(lines[-3:])
    return f"training process group exited with {code}: {detail}"[:1000]


if __name__ == "__main__":
    raise SystemExit(main())
