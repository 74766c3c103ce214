"""How a training run reports: one observer interface for the trainer, the staged job, the torchrun
supervisor, the site's job recorder and the command-line scripts.

Every method has one meaning wherever it is called (steps are the caller's absolute steps):

    metrics(step, {key: float})         once per completed optimiser step
    log(line)                           a human-readable progress line
    samples(step, [dict])               a few recent completions of that step
    checkpoint_written(step, path, info) after a checkpoint is completely on disk; `info` names
                                        where it sits in the job ({"stage", "stage_step", "step"}
                                        in a staged job, {} from a bare trainer). A resumed run
                                        announces the checkpoint it loaded once more: a run
                                        killed between writing it and announcing it never did
    resumed(step)                       the run goes on after `step` (the checkpoint it loaded;
                                        0 when it found none): what the caller kept of later
                                        steps came from a run that died before checkpointing
                                        them, and they will be trained again
    should_stop() -> bool               cooperative cancel: polled within every step; True ends
                                        the run at the last completed step, with a checkpoint
    rank_heartbeats([RankBeat])         a process group's supervisor (training.c3po.launch): every
                                        rank's last heartbeat, when one changed (a few seconds
                                        apart) and once more, each rank exited, when the group ends;
                                        a single-process run never calls it

Pure Python (no torch, no Django), so the web side can implement it without loading the trainer.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any, Protocol, TextIO, runtime_checkable


@dataclasses.dataclass(frozen=True)
class RankBeat:
    """One rank's last heartbeat as its supervisor read it: `age_seconds` is measured on the
    supervisor's clock when read (the ranks' hosts may disagree about the time); `exited` once the
    process group has ended, so a finished rank is not mistaken for a silent one."""

    rank: int
    host: str
    pid: int
    age_seconds: float
    exited: bool = False


@runtime_checkable
class TrainingObserver(Protocol):
    """What a training run tells its caller, and the one question it asks (should_stop)."""

    def metrics(self, step: int, metrics: dict[str, float]) -> None: ...

    def log(self, line: str) -> None: ...

    def samples(self, step: int, samples: list[dict[str, Any]]) -> None: ...

    def checkpoint_written(self, step: int, path: str, info: dict[str, Any]) -> None: ...

    def resumed(self, step: int) -> None: ...

    def should_stop(self) -> bool: ...

    def rank_heartbeats(self, beats: list[RankBeat]) -> None: ...


class SilentObserver:
    """Hears everything, says nothing, never stops the run: the default, and a base class for an
    observer that cares about a few of the methods."""

    def metrics(self, step: int, metrics: dict[str, float]) -> None:
        return None

    def log(self, line: str) -> None:
        return None

    def samples(self, step: int, samples: list[dict[str, Any]]) -> None:
        return None

    def checkpoint_written(self, step: int, path: str, info: dict[str, Any]) -> None:
        return None

    def resumed(self, step: int) -> None:
        return None

    def should_stop(self) -> bool:
        return False

    def rank_heartbeats(self, beats: list[RankBeat]) -> None:
        return None


class FunctionObserver(SilentObserver):
    """An observer made of plain functions, one per method it wants (tests, benchmarks):
    `FunctionObserver(metrics=lambda step, m: seen.append(m))`."""

    def __init__(
        self,
        *,
        metrics: Callable[[int, dict[str, float]], None] | None = None,
        log: Callable[[str], None] | None = None,
        samples: Callable[[int, list[dict[str, Any]]], None] | None = None,
        checkpoint_written: Callable[[int, str, dict[str, Any]], None] | None = None,
        resumed: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        rank_heartbeats: Callable[[list[RankBeat]], None] | None = None,
    ) -> None:
        self._metrics, self._log, self._samples = metrics, log, samples
        self._checkpoint_written, self._should_stop = checkpoint_written, should_stop
        self._resumed, self._rank_heartbeats = resumed, rank_heartbeats

    def metrics(self, step: int, metrics: dict[str, float]) -> None:
        if self._metrics is not None:
            self._metrics(step, metrics)

    def log(self, line: str) -> None:
        if self._log is not None:
            self._log(line)

    def samples(self, step: int, samples: list[dict[str, Any]]) -> None:
        if self._samples is not None:
            self._samples(step, samples)

    def checkpoint_written(self, step: int, path: str, info: dict[str, Any]) -> None:
        if self._checkpoint_written is not None:
            self._checkpoint_written(step, path, info)

    def resumed(self, step: int) -> None:
        if self._resumed is not None:
            self._resumed(step)

    def should_stop(self) -> bool:
        return self._should_stop is not None and bool(self._should_stop())

    def rank_heartbeats(self, beats: list[RankBeat]) -> None:
        if self._rank_heartbeats is not None:
            self._rank_heartbeats(beats)


class ConsoleObserver(SilentObserver):
    """The command line's observer: every log line on stderr (stdout is left to the script's
    result). The trainer's log already carries each step's headline metrics and each checkpoint,
    so nothing else is printed."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr

    def log(self, line: str) -> None:
        print(line, file=self.stream, flush=True)
