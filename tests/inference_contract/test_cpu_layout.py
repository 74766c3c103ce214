"""inference_contract/cpu_layout.py: the CPU lists, and moving a process tree off the cores an
engine's threads are bound to, on real processes (a stand-in "engine" that binds its own thread the
way OpenMP does). Every test that pins acts on processes it starts, never on pytest's own."""

import os
import subprocess
import sys
import time

import psutil
import pytest

from inference_contract import cpu_layout
from inference_contract.cpu_layout import format_cpu_list, parse_cpu_list

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_two_cpus = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to keep a process off one"
)

# A "worker" that starts a "scheduler" (vLLM's EngineCore), which starts an "engine" binding its own
# thread to CPU 0 as OpenMP binds vLLM's engine worker; each passes its pid up, then they wait.
ENGINE = (
    "import os, time; os.sched_setaffinity(0, {0}); print(os.getpid(), flush=True); time.sleep(60)"
)
PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[2:]], stdout=subprocess.PIPE,
                         text=True)
print(os.getpid(), child.stdout.readline().strip(), flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("0", {0}), ("0-2,5", {0, 1, 2, 5}), (" 3 , 1 ", {1, 3}), ("2-2", {2})],
)
def test_cpu_lists_parse(text, cpus):
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["", ",", "a", "3-1", "-1", "1-"])
def test_a_cpu_list_that_names_no_cpu_is_refused(text):
    with pytest.raises(ValueError):
        parse_cpu_list(text)


def test_cpu_lists_format_as_ranges_and_read_back():
    for cpus in [{0}, {0, 1, 2, 5}, {1, 3, 4, 5, 9}, set(range(16))]:
        assert parse_cpu_list(format_cpu_list(cpus)) == cpus
    assert format_cpu_list({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"


def _thread_cpus(pid: int) -> list[set[int]]:
    return [os.sched_getaffinity(t.id) for t in psutil.Process(pid).threads()]


@needs_two_cpus
def test_a_tree_moves_off_the_cores_its_engine_is_bound_to():
    everything = cpu_layout.host_cpus()
    worker = subprocess.Popen(
        [sys.executable, "-c", PARENT, PARENT, ENGINE], stdout=subprocess.PIPE, text=True
    )
    try:
        _, scheduler_pid, engine_pid = map(int, worker.stdout.readline().split())
        layout = cpu_layout.EngineCpus(worker.pid)
        assert layout.arrange()
        assert (layout.engine, layout.others) == ({0}, everything - {0})
        assert layout.summary() == {"engine": "0", "others": format_cpu_list(everything - {0})}
        # The worker's every thread is off the engine's core; the engine keeps its binding, and
        # its scheduler joins it there.
        assert all(cpus == everything - {0} for cpus in _thread_cpus(worker.pid))
        assert all(cpus == {0} for cpus in _thread_cpus(engine_pid))
        assert all(cpus == {0} for cpus in _thread_cpus(scheduler_pid))
        # Arranged again (after a blue/green swap's new engine binds the same core), the
        # worker's own mask is not mistaken for an engine's.
        assert layout.arrange()
        assert (layout.engine, layout.others) == ({0}, everything - {0})
    finally:
        worker.kill()
        worker.wait()


def test_a_tree_with_nothing_bound_is_left_alone():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        before = _thread_cpus(sleeper.pid)
        layout = cpu_layout.EngineCpus(sleeper.pid)
        assert not layout.arrange()  # a GPU engine binds no core
        assert layout.summary() is None
        assert _thread_cpus(sleeper.pid) == before
    finally:
        sleeper.kill()
        sleeper.wait()


def _affinity_under(site_cpus: str) -> subprocess.CompletedProcess:
    code = (
        "import os; from inference_contract.cpu_layout import pin_self_from_env; "
        "pin_self_from_env(); print(sorted(os.sched_getaffinity(0)))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "SITE_CPUS": site_cpus},
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_two_cpus
def test_the_site_pins_itself_to_site_cpus():
    last = max(cpu_layout.host_cpus())
    assert _affinity_under(str(last)).stdout.strip() == f"[{last}]"
    # Empty: left alone.
    assert _affinity_under("").stdout.strip() == str(sorted(os.sched_getaffinity(0)))


def test_site_cpus_naming_no_cpu_of_the_machine_is_a_clear_error():
    result = _affinity_under("4096")
    assert result.returncode != 0
    assert "SITE_CPUS='4096' names no CPU of this machine" in result.stderr
