import os
import subprocess
import sys
import time

from webapp.registry.liveness import local_process_state, this_host


def test_a_running_process_on_this_host_is_alive():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert local_process_state(this_host(), child.pid) is True
    finally:
        child.kill()
        child.wait()


def test_a_reaped_process_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert local_process_state(this_host(), child.pid) is False


def test_an_unreaped_zombie_is_dead():
    # What a SIGKILLed Celery pool process becomes under a container's PID 1 that never reaps.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{child.pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        assert os.kill(child.pid, 0) is None  # still answers a signal...
        assert local_process_state(this_host(), child.pid) is False  # ...but is not running
    finally:
        child.wait()


def test_another_host_cannot_be_judged_by_pid():
    assert local_process_state("some-other-host", os.getpid()) is None
