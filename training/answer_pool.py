"""Symbolic answer checks on untrusted text, each in a separate process under a hard time limit.

math-verify's own timeout is `signal.alarm`, which works only in a process's main thread, and
sympy's big-integer arithmetic holds the GIL for as long as one multiplication lasts, so a student's
`(999*999)!` checked inside a web server's thread could neither be interrupted nor let the other
requests run. Here the cheap part of a check (numbers, fractions, choice letters, the guards that
refuse giant powers and factorials) runs in the caller's process through `training.answers` with
`symbolic=False`; only what needs math-verify goes to a small pool of worker processes. A call that runs past the
limit has its worker killed (SIGKILL) and replaced, and the caller gets `None` — "couldn't check" —
instead of a hung page. Callers may be threads of any process (a web server, a Celery worker, the
inference worker); the first call starts all the pool's workers. When more callers come than there
are workers, they wait their turn, first come first served, each for at most its wait
(`AnswerCheckPool`), and a caller whose wait is up gets `None` too: "couldn't check right now".

Workers are forks of a zygote (`python -m training.answer_pool`, one per pool) that imported sympy
and math-verify once, so a replacement is ready in milliseconds instead of a fresh interpreter's
seconds of imports. The protocol is one JSON line per request and per reply on a socket pair
between the caller and its worker. A worker exits when the caller's end closes (its caller is
gone); each check also raises the worker's CPU limit by only a few seconds, so a worker orphaned in
the middle of a check still ends on its own.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
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
# How long a call waits, by default, for a free worker that has finished starting (see
# `AnswerCheckPool`): the site passes `ANSWER_CHECK_WAIT_SECONDS`. Starting the zygote imports sympy
# and math-verify and warms their caches, a second or two (more on a busy machine); a check that
# finds its worker still starting when its wait is up is "couldn't check" while it goes on starting.
DEFAULT_WAIT_S = 2.0
# A worker orphaned mid-check is stopped by the kernel after this many CPU seconds.
_CPU_SECONDS_PER_CHECK = 10
UNCHECKED_REFERENCE = (
    "the answer checker ran out of time reading it (it may be too large to work out)"
)
UNAVAILABLE_REFERENCE = "the answer checker was not available; save the problem again to retry"
# A teacher's reference answer read by a Celery task (the background check of a big upload) waits
# this long for a free, started worker: a wrong "cannot read it" keeps a good problem out of
# training, and a task holds no request. A request waits the pool's own, short wait.
REFERENCE_PATIENCE_S = 60.0


class _WorkerLost(Exception):
    """The worker did not answer in time, or died."""


class _NoReplyInTime(_WorkerLost):
    """The worker is alive but did not answer before the deadline."""


class _StillStarting(Exception):
    """The worker is still importing its libraries; it is kept for a later call."""


class CheckTimedOut(TimeoutError):
    """The check ran past the pool's limit: the input is too costly to work out."""


class CheckerUnavailable(TimeoutError):
    """No worker was free, or started, in time: the checker's state, not the input's fault."""


class CheckFailed(RuntimeError):
    """The checker raised an unexpected error on this input (reported by the worker)."""


class _Zygote:
    """A process that imports sympy and math-verify once, then forks a ready worker per request.

    A worker killed for running past the limit used to be replaced by a fresh interpreter, which
    spent a second or more (several on a busy machine) importing sympy before it could check
    anything: a student sending one costly answer after another kept the whole pool starting.
    A fork of this warm process is ready in milliseconds, and shares the imported libraries'
    memory with it. The caller hands each new worker's end of a socket pair over the control
    socket (SCM_RIGHTS); the fork talks to the caller on it directly, so the zygote never relays
    a check. It exits when the control socket closes (its owner is gone).
    """

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        # One thread per worker: a check is small and the pool's size is the parallelism.
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "training.answer_pool", str(theirs.fileno())],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=None,  # the parent's log: a zygote that cannot start says why there
                stderr=None,
                pass_fds=[theirs.fileno()],
            )
        self._control = ours

    def spawn(self) -> socket.socket:
        """Ask for a worker; returns the caller's end of its socket at once. The worker says it
        is ready on that socket once the zygote has finished starting and has forked it."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with theirs:
            try:
                socket.send_fds(self._control, [b"w"], [theirs.fileno()])
            except OSError:
                ours.close()
                raise
        return ours

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self._control.close()  # the zygote reads end-of-file and exits
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _Worker:
    """The caller's side of one forked worker: one JSON line per request and per reply."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.pid: int | None = None  # from the worker's "ready" line
        self.ready = False
        self._buffer = b""

    def call(self, request: dict, *, timeout: float, ready_by: float) -> Any:
        """Send one request and wait for its reply; `_WorkerLost` when it does not come in time,
        `_StillStarting` when the worker has not said it is ready by the moment `ready_by`."""
        if not self.ready:
            try:
                hello = json.loads(self._read_line(ready_by))
            except _NoReplyInTime as error:
                raise _StillStarting() from error
            self.pid = int(hello["pid"])
            self.ready = True
        try:
            self.channel.sendall(json.dumps(request).encode() + b"\n")
        except OSError as error:
            raise _WorkerLost(f"the worker is gone ({error})") from error
        reply = json.loads(self._read_line(time.monotonic() + timeout))
        if "error" in reply:
            raise CheckFailed(reply["error"])
        return reply["result"]

    def _read_line(self, deadline: float) -> bytes:
        while b"\n" not in self._buffer:
            # A deadline already past still reads what has arrived (a worker's "ready" line).
            remaining = max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self.channel], [], [], remaining)
            if not readable:
                raise _NoReplyInTime("no reply in time")
            chunk = self.channel.recv(65536)
            if not chunk:
                raise _WorkerLost("the worker exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def kill(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)  # reaped by the zygote (SIGCHLD ignored)
            except ProcessLookupError:
                pass
        # A worker not yet forked (or not yet ready) reads end-of-file here and exits.
        self.channel.close()


class AnswerCheckPool:
    """`workers` checker processes, all started by the first call. A call waits at most
    `patience_s` (default: the pool's `wait_s`) for its turn at a free worker, and for that worker
    to finish starting until `wait_s` or its patience is up, whichever is later; then at most
    `timeout_s` for its reply. So a call returns or raises within `max(patience_s, wait_s) +
    timeout_s` (the site: `ANSWER_CHECK_WAIT_SECONDS + ANSWER_CHECK_TIMEOUT_SECONDS` in a request).

    Why a waiting line with a deadline: the pool is shared by every request thread of its server
    process, so many accounts together (each limited to one check at a time) can keep every worker
    busy. A caller then waits its turn, first come first served, and gives up when its wait is
    up (`CheckerUnavailable`, "couldn't check right now"): a request is never held longer than
    the wait plus one check, and a caller that arrives later never takes a freed worker ahead
    of one already waiting. So a caller that will not wait in line (`patience_s=0`, the reference
    answers an upload reads) gets a worker only when one is idle and nobody is waiting for it: it
    never delays a student's check by more than the one check it is running.
    """

    def __init__(
        self,
        *,
        workers: int = DEFAULT_WORKERS,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        wait_s: float = DEFAULT_WAIT_S,
    ):
        if workers < 1 or timeout_s <= 0 or wait_s < 0:
            raise ValueError(
                "an answer-check pool needs one worker or more, a positive limit and a wait of "
                "zero or more"
            )
        self.workers = workers
        self.timeout_s = timeout_s
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._turn = threading.Condition(self._lock)
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._zygote: _Zygote | None = None
        # First in, first out: a replacement still starting goes behind the workers that are ready.
        self._idle: deque[_Worker] = deque()
        self._all: list[_Worker] = []
        # The callers waiting for a worker, in order of arrival (one token each).
        self._waiting: deque[object] = deque()

    def _spawn(self) -> None:
        """Add a new worker to the pool, idle. Called with the lock held."""
        worker = self._fork()
        self._all.append(worker)
        self._idle.append(worker)
        self._turn.notify_all()

    def _fork(self) -> _Worker:
        """A new worker, forked by this process's zygote (started, or started again if it died)."""
        channel = None
        if self._zygote is not None and self._zygote.alive():
            try:
                channel = self._zygote.spawn()
            except OSError:
                logger.warning("the answer checker's zygote is gone; starting another")
        if channel is None:
            if self._zygote is not None:
                self._zygote.close()
            self._zygote = _Zygote()
            channel = self._zygote.spawn()
        return _Worker(channel)

    def call(self, op: str, *, patience_s: float | None = None, **kwargs: Any) -> Any:
        """Run `op` ("verify" or "reference") in a worker. Raises `CheckerUnavailable` when no
        worker was free and started within `patience_s` (default: the pool's `wait_s`),
        `CheckTimedOut` when the check ran past the limit (its worker is killed and replaced)."""
        called_at = time.monotonic()
        patience = self.wait_s if patience_s is None else patience_s
        worker = self._acquire(called_at + patience)
        # A worker still starting (a new process's first checks) delays no one waiting in line:
        # it is waited for up to the pool's wait even by a call that would not wait in line.
        ready_by = called_at + max(patience, self.wait_s)
        request = {"op": op, "kwargs": kwargs}
        try:
            result = worker.call(request, timeout=self.timeout_s, ready_by=ready_by)
        except _StillStarting:
            self._release(worker)
            raise CheckerUnavailable("the answer checker is still starting") from None
        except _WorkerLost as error:
            self._discard(worker)
            raise CheckTimedOut(
                f"answer check stopped after {self.timeout_s:g} s: {error}"
            ) from None
        except BaseException:
            self._release(worker)
            raise
        self._release(worker)
        return result

    def _acquire(self, give_up_at: float) -> _Worker:
        with self._turn:
            if self._pid != os.getpid():
                self._reset()  # a forked child (a Celery pool process): the workers are not ours
            # All at once: the others import sympy while the first call waits for its worker.
            while len(self._all) < self.workers:
                self._spawn()
            token = object()
            self._waiting.append(token)
            try:
                while not (self._idle and self._waiting[0] is token):
                    remaining = give_up_at - time.monotonic()
                    if remaining <= 0:
                        raise CheckerUnavailable("every answer checker is busy")
                    self._turn.wait(remaining)
                return self._idle.popleft()
            finally:
                self._waiting.remove(token)
                self._turn.notify_all()  # the next in line may take the next idle worker

    def _release(self, worker: _Worker) -> None:
        with self._turn:
            if worker in self._all:
                self._idle.append(worker)
                self._turn.notify_all()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._turn:
            if worker in self._all:
                self._all.remove(worker)
            # Fork the replacement now: it is ready (a fork of the warm zygote) before the next
            # check needs it.
            if self._pid == os.getpid() and len(self._all) < self.workers:
                self._spawn()

    def close(self) -> None:
        with self._turn:
            workers, self._all = self._all, []
            zygote, self._zygote = self._zygote, None
            self._idle = deque()
        if self._pid == os.getpid():
            for worker in workers:
                worker.kill()
            if zygote is not None:
                zygote.close()


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
    patience_s: float | None = REFERENCE_PATIENCE_S,
) -> str | None:
    """`training.answers.check_reference_parses` with the symbolic part in the pool; a check that
    runs out of time is reported as a reason the reference cannot be used, and one that found no
    free worker within `patience_s` (None: the pool's wait) as `UNAVAILABLE_REFERENCE`."""
    try:
        return check_reference_parses(reference, kind, options=options, symbolic=False)
    except SymbolicCheckNeeded:
        pass
    try:
        return pool.call(
            "reference",
            patience_s=patience_s,
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


def shared_pool(
    *,
    workers: int = DEFAULT_WORKERS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    wait_s: float = DEFAULT_WAIT_S,
) -> AnswerCheckPool:
    """This process's pool, created on first use with these settings (later calls reuse it)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = AnswerCheckPool(workers=workers, timeout_s=timeout_s, wait_s=wait_s)
            atexit.register(_shared.close)
        return _shared


# --- the zygote and its workers ---------------------------------------------------------------


def _zygote_main(control_fd: int) -> None:
    """Import and warm the checker once, then fork a worker for each socket the owner sends."""
    logging.basicConfig(level=logging.ERROR)
    # Warm math-verify's lazy imports, so no check pays for them; then forget the warm-up's
    # parses, which a busy machine may have cut off with math-verify's own alarm (an empty parse
    # would be cached as the answer for those texts).
    verify("x^2+1", "1+x^2", kind="expression")
    verify("\\sqrt{2}", "1.41421356", kind="number", tolerance=1e-3)
    _parse_cached.cache_clear()
    sys.stdout = sys.stderr  # nothing a library prints reaches a socket
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the workers
    control = socket.socket(fileno=control_fd)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 16, 1)
        except OSError:
            return
        if not message:
            return  # the owner is gone
        for fd in fds:
            if os.fork() == 0:
                code = 1
                try:
                    control.close()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    _serve(socket.socket(fileno=fd))
                    code = 0
                finally:
                    os._exit(code)
            os.close(fd)


def _serve(channel: socket.socket) -> None:
    """A worker: answer checks one JSON line at a time until the caller closes its end."""
    import resource

    operations = {"verify": verify, "reference": check_reference_parses}
    stream = channel.makefile("rwb")
    stream.write(json.dumps({"ready": True, "pid": os.getpid()}).encode() + b"\n")
    stream.flush()
    for line in stream:
        request = json.loads(line)
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(used.ru_utime + used.ru_stime) + _CPU_SECONDS_PER_CHECK
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu if hard < 0 else min(cpu, hard), hard))
        try:
            reply = {"result": operations[request["op"]](**request["kwargs"])}
        except Exception as error:  # noqa: BLE001 - reported to the caller, who logs it
            reply = {"error": f"{type(error).__name__}: {error}"}
        stream.write(json.dumps(reply).encode() + b"\n")
        stream.flush()


if __name__ == "__main__":
    _zygote_main(int(sys.argv[1]))
