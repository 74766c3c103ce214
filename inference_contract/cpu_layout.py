"""On a CPU host: which cores the vLLM engine computes on, and keeping every other process off them.

vLLM's CPU backend binds its engine worker's OpenMP threads to cores (`VLLM_CPU_OMP_THREADS_BIND`,
`auto` by default: every core but the last, which it leaves to "other processes", though it does
not move them there) and keeps them busy, spinning on `sched_yield` between steps. A process the
kernel wakes on such a core can wait there a long time: on this 2-core machine, with ring-tiny
answering one student, a process that sleeps 1 ms was late by more than 50 ms 14 to 22 times in
25 s on the engine's core (up to 0.5 s) and never on the other one. With the engine's processes on
its core and everything else on the other, a class of 32 got its first text in 572 ms instead of
2,498 and 1.7x the tokens per second (docs/inference-worker.md, "CPU layout").

So the worker, once its engine is up, puts the engine's scheduler process (`EngineCore`) on the
engine's own cores and itself on the ones the engine leaves free (`EngineCpus.arrange`), and widens
its starting thread again before it starts another engine (`EngineCpus.allow_all`), so a new
engine's binding sees the whole host. The web server pins itself to `SITE_CPUS` when that is set
(`pin_self_from_env`). Both are off unless asked for (INFERENCE_KEEP_OFF_ENGINE_CPUS, SITE_CPUS):
the engine's cores become a place no other process may be woken on, which PostgreSQL and Redis,
the host's services, must then be kept off too. Nothing happens on a GPU host, whose engine binds
no core.
"""

from __future__ import annotations

import contextlib
import logging
import os

import psutil

logger = logging.getLogger(__name__)

SITE_CPUS_ENV = "SITE_CPUS"


def parse_cpu_list(text: str) -> set[int]:
    """`"0-2,5"` -> {0, 1, 2, 5}. Raises ValueError on anything else."""
    cpus: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        first, dash, last = part.partition("-")
        start, end = int(first), int(last if dash else first)
        if start < 0 or end < start:
            raise ValueError(f"not a CPU range: {part!r}")
        cpus.update(range(start, end + 1))
    if not cpus:
        raise ValueError(f"no CPUs in {text!r}")
    return cpus


def format_cpu_list(cpus: set[int]) -> str:
    """{0, 1, 2, 5} -> `"0-2,5"`."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and runs[-1][1] == cpu - 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def host_cpus() -> set[int]:
    """The CPUs this process may run on."""
    return os.sched_getaffinity(0)


def _threads(process: psutil.Process) -> list[int]:
    with contextlib.suppress(psutil.Error):
        return [thread.id for thread in process.threads()]
    return []


def _thread_cpus(tid: int) -> set[int] | None:
    with contextlib.suppress(OSError):
        return os.sched_getaffinity(tid)
    return None


def pin(process: psutil.Process, cpus: set[int]) -> None:
    """Every thread of `process` onto `cpus` (threads it starts later inherit the mask)."""
    for tid in _threads(process):
        with contextlib.suppress(OSError):  # a thread that has just ended
            os.sched_setaffinity(tid, cpus)


class EngineCpus:
    """Keeps a process tree (a worker and its engines, or vLLM's own server) off the cores its
    engines' OpenMP threads are bound to.

    Made before anything in the tree is pinned: the CPUs the root may use then are the host's. A
    thread is an engine's when its mask is narrower than that and is not the one this object gave
    the rest (so a tree can be arranged again after a new engine starts beside the old one)."""

    def __init__(self, root_pid: int | None = None) -> None:
        self.root = psutil.Process(root_pid or os.getpid())
        self.everything = set(self.root.cpu_affinity())
        self.engine: set[int] = set()
        self.others: set[int] = set()

    def _bound(self, process: psutil.Process) -> set[int]:
        bound: set[int] = set()
        for tid in _threads(process):
            cpus = _thread_cpus(tid)
            if cpus is not None and cpus < self.everything and cpus != self.others:
                bound |= cpus
        return bound

    def arrange(self) -> bool:
        """Put the engines' processes (the bound ones, and the scheduler processes between them
        and the root) wholly on the bound cores, and every other process of the tree on the rest.
        False (nothing moved) when nothing is bound (a GPU engine) or the engines hold every
        CPU."""
        tree = [self.root, *self.root.children(recursive=True)]
        bound_by = {process.pid: self._bound(process) for process in tree}
        engine = set().union(*bound_by.values())
        if not engine or not self.everything - engine:
            return False
        self.engine, self.others = engine, self.everything - engine
        engine_side = self._engine_side(tree, bound_by)
        for process in tree:
            if process.pid not in engine_side:
                pin(process, self.others)
            elif not bound_by[process.pid]:
                # The engine's scheduler: it and the bound threads take turns (one schedules a
                # step, the other computes it), so it shares their cores rather than the rest's.
                pin(process, engine)
        return True

    def _engine_side(self, tree: list[psutil.Process], bound_by: dict[int, set[int]]) -> set[int]:
        """The bound processes and their ancestors below the root."""
        side: set[int] = set()
        for process in tree:
            if bound_by[process.pid]:
                with contextlib.suppress(psutil.Error):
                    for ancestor in [process, *process.parents()]:
                        if ancestor.pid == self.root.pid:
                            break
                        side.add(ancestor.pid)
        return side

    def allow_all(self) -> None:
        """Let the calling thread run anywhere again: a process it starts now (a new engine)
        inherits the whole host, so the engine's own binding chooses among all of it."""
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, self.everything)

    def summary(self) -> dict[str, str] | None:
        """{"engine": "0", "others": "1"} once arranged, else None."""
        if not self.engine:
            return None
        return {"engine": format_cpu_list(self.engine), "others": format_cpu_list(self.others)}


def pin_self_from_env(env_var: str = SITE_CPUS_ENV) -> set[int] | None:
    """Pin this process to the CPUs in `env_var` (unset or empty: leave it alone). A value that
    names no CPU of this machine is refused with a clear error rather than ignored."""
    text = os.environ.get(env_var, "").strip()
    if not text:
        return None
    available = host_cpus()
    cpus = parse_cpu_list(text) & available
    if not cpus:
        raise ValueError(
            f"{env_var}={text!r} names no CPU of this machine ({format_cpu_list(available)})"
        )
    pin(psutil.Process(), cpus)
    logger.info("pinned to CPUs %s (%s)", format_cpu_list(cpus), env_var)
    return cpus
