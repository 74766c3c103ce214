"""Symbolic answer checks on untrusted text, each in a separate process under a hard time limit.

math-verify's own timeout is `signal.alarm`, which works only in a process's main thread, and
sympy's big-integer arithmetic holds the GIL for as long as one multiplication lasts, so a student's
`(999*999)!` checked inside a web server's thread could neither be interrupted nor let the other
requests run. Here the cheap part of a check (numbers, fractions, choice letters, the guards that
refuse giant powers and factorials) runs in the caller's process through `training.answers` with
`symbolic=False`; only what needs math-verify goes to a small pool of worker processes
(`python -m training.answer_pool`). A call that runs past the limit has its worker killed (SIGKILL)
and replaced, and the caller gets `None` — "couldn't check" — instead of a hung page. Callers may be
threads of any process (a web server, a Celery worker, the inference worker); the workers are
started lazily, one per concurrent caller up to the pool's size.

The protocol is one JSON line per request and per reply on the worker's stdin and stdout. A worker
exits when its stdin closes (its parent is gone); each check also raises the worker's CPU limit by
only a few seconds, so a worker orphaned in the middle of a check still ends on its own.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from training.answers import (
    SymbolicCheckNeeded,
    _parse_cached,
    check_reference_parses,
    verify,
)

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TIMEOUT_S = 1.0
DEFAULT_WORKERS = 2
# Starting a worker imports sympy and math-verify and warms their caches: a second or two, more
# on a busy machine. A check that finds its worker still starting waits this long at most, then
# is "couldn't check" while the worker goes on starting for the next one.
START_WAIT_S = 5.0
# A worker orphaned mid-check is stopped by the kernel after this many CPU seconds.
_CPU_SECONDS_PER_CHECK = 10
UNCHECKED_REFERENCE = (
    "the answer checker ran out of time reading it (it may be too large to work out)"
)
UNAVAILABLE_REFERENCE = "the answer checker was not available; save the problem again to retry"
# A teacher's reference answer is read once, in an upload or a Celery task, and a wrong "cannot
# read it" keeps a good problem out of training: it waits this long for a free, started worker
# (a student's answer waits the check's own limit).
REFERENCE_PATIENCE_S = 60.0


class _WorkerLost(Exception):
    """The worker did not answer in time, or died."""


class _StillStarting(Exception):
    """The worker is still importing its libraries; it is kept for a later call."""


class CheckTimedOut(TimeoutError):
    """The check ran past the pool's limit: the input is too costly to work out."""


class CheckerUnavailable(TimeoutError):
    """No worker was free, or started, in time: the checker's state, not the input's fault."""


class CheckFailed(RuntimeError):
    """The checker raised an unexpected error on this input (reported by the worker)."""


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        # One thread per worker: a check is small and the pool's size is the parallelism.
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "training.answer_pool"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,  # the parent's log: a worker that cannot start says why there
            close_fds=True,
        )
        self.ready = False
        self._buffer = b""

    def call(self, request: dict, *, timeout: float, start_wait: float) -> Any:
        """Send one request and wait for its reply; `_WorkerLost` when it does not come in time,
        `_StillStarting` when the worker is not ready within `start_wait`."""
        if not self.ready:
            try:
                self._read_line(time.monotonic() + start_wait)
            except _WorkerLost as error:
                if self.process.poll() is None:
                    raise _StillStarting() from error
                raise
            self.ready = True
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise _WorkerLost(f"the worker is gone ({error})") from error
        reply = json.loads(self._read_line(time.monotonic() + timeout))
        if "error" in reply:
            raise CheckFailed(reply["error"])
        return reply["result"]

    def _read_line(self, deadline: float) -> bytes:
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _WorkerLost("no reply in time")
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _WorkerLost(f"the worker exited ({self.process.poll()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


class AnswerCheckPool:
    """`workers` checker processes, all started by the first call. A call waits at most
    `patience_s` (default: `timeout_s`) for a free worker, at most `START_WAIT_S` (or its patience,
    if longer) for that worker to finish starting, and at most `timeout_s` for its reply."""

    def __init__(self, *, workers: int = DEFAULT_WORKERS, timeout_s: float = DEFAULT_TIMEOUT_S):
        if workers < 1 or timeout_s <= 0:
            raise ValueError("an answer-check pool needs one worker or more and a positive limit")
        self.workers = workers
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        # First in, first out: a replacement still starting goes behind the workers that are ready.
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []

    def call(self, op: str, *, patience_s: float | None = None, **kwargs: Any) -> Any:
        """Run `op` ("verify" or "reference") in a worker. Raises `CheckerUnavailable` when no
        worker was free and started in time, `CheckTimedOut` when the check ran past the limit
        (its worker is killed and replaced)."""
        patience = self.timeout_s if patience_s is None else patience_s
        worker = self._acquire(patience)
        request = {"op": op, "kwargs": kwargs}
        try:
            result = worker.call(
                request, timeout=self.timeout_s, start_wait=max(START_WAIT_S, patience)
            )
        except _StillStarting:
            self._idle.put(worker)
            raise CheckerUnavailable("the answer checker is still starting") from None
        except _WorkerLost as error:
            self._discard(worker)
            raise CheckTimedOut(
                f"answer check stopped after {self.timeout_s:g} s: {error}"
            ) from None
        except BaseException:
            self._idle.put(worker)
            raise
        self._idle.put(worker)
        return result

    def _acquire(self, patience: float) -> _Worker:
        with self._lock:
            if self._pid != os.getpid():
                self._reset()  # a forked child (a Celery pool process): the workers are not ours
            # All at once: the others import sympy while the first call waits for its worker.
            while len(self._all) < self.workers:
                worker = _Worker()
                self._all.append(worker)
                self._idle.put(worker)
        try:
            return self._idle.get(timeout=patience)
        except queue.Empty:
            raise CheckerUnavailable("every answer checker is busy") from None

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
            # Start the replacement now, so its imports are done before the next check needs it.
            if self._pid == os.getpid() and len(self._all) < self.workers:
                replacement = _Worker()
                self._all.append(replacement)
                self._idle.put(replacement)

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
            self._idle = queue.Queue()
        if self._pid == os.getpid():
            for worker in workers:
                worker.kill()


def bounded_verify(
    pool: AnswerCheckPool,
    reference: str,
    prediction: str | None,
    **kwargs: Any,
) -> bool | None:
    """`training.answers.verify`, with the symbolic part in the pool: True or False, or None when
    the check could not finish in time ("couldn't check this answer")."""
    try:
        return verify(reference, prediction, symbolic=False, **kwargs)
    except SymbolicCheckNeeded:
        pass
    if kwargs.get("options") is not None:
        kwargs["options"] = list(kwargs["options"])
    try:
        return bool(pool.call("verify", reference=reference, prediction=prediction, **kwargs))
    except TimeoutError as error:
        logger.warning("answer check not finished: %s", error)
    except CheckFailed:
        logger.exception("answer check failed on %r", prediction)
    return None


def bounded_reference_check(
    pool: AnswerCheckPool,
    reference: str,
    kind: str,
    *,
    options: list[str] | tuple[str, ...] | None = None,
) -> str | None:
    """`training.answers.check_reference_parses` with the symbolic part in the pool; a check that
    runs out of time is reported as a reason the reference cannot be used."""
    try:
        return check_reference_parses(reference, kind, options=options, symbolic=False)
    except SymbolicCheckNeeded:
        pass
    try:
        return pool.call(
            "reference",
            patience_s=REFERENCE_PATIENCE_S,
            reference=reference,
            kind=kind,
            options=list(options) if options is not None else None,
        )
    except CheckTimedOut as error:
        logger.warning("reference check not finished: %s", error)
        return UNCHECKED_REFERENCE
    except CheckerUnavailable as error:
        logger.warning("reference check not started: %s", error)
        return UNAVAILABLE_REFERENCE
    except CheckFailed as error:
        logger.exception("reference check failed on %r", reference)
        return f"the answer checker failed on it ({error})"


_shared: AnswerCheckPool | None = None
_shared_lock = threading.Lock()


def shared_pool(*, workers: int = DEFAULT_WORKERS, timeout_s: float = DEFAULT_TIMEOUT_S):
    """This process's pool, created on first use with these settings (later calls reuse it)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = AnswerCheckPool(workers=workers, timeout_s=timeout_s)
            atexit.register(_shared.close)
        return _shared


# --- the worker process ------------------------------------------------------------------------


def _serve() -> None:
    import resource

    logging.basicConfig(level=logging.ERROR)
    # Warm math-verify's lazy imports, so no check pays for them; then forget the warm-up's
    # parses, which a busy machine may have cut off with math-verify's own alarm (an empty parse
    # would be cached as the answer for those texts).
    verify("x^2+1", "1+x^2", kind="expression")
    verify("\\sqrt{2}", "1.41421356", kind="number", tolerance=1e-3)
    _parse_cached.cache_clear()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr  # nothing a library prints can corrupt the replies
    operations = {"verify": verify, "reference": check_reference_parses}
    protocol.write('{"ready": true}\n')
    protocol.flush()
    for line in sys.stdin:
        request = json.loads(line)
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(used.ru_utime + used.ru_stime) + _CPU_SECONDS_PER_CHECK
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu if hard < 0 else min(cpu, hard), hard))
        try:
            reply = {"result": operations[request["op"]](**request["kwargs"])}
        except Exception as error:  # noqa: BLE001 - reported to the caller, who logs it
            reply = {"error": f"{type(error).__name__}: {error}"}
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()


if __name__ == "__main__":
    _serve()
