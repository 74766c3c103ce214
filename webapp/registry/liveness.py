"""Is the process recorded on a row (a training job's or an evaluation's runner) still alive?

A Celery worker that is SIGKILLed or runs out of memory leaves its row saying "running" and its
message unacknowledged (tasks are acknowledged late), so nothing else would ever pick the work up
again. Rows therefore record the host and pid of their runner: on the same host the pid answers at
once; elsewhere a heartbeat (training jobs) or the age of the run (evaluations) has to.
"""

import os
import socket


def this_host() -> str:
    return socket.gethostname()


def local_process_state(hostname: str, pid: int | None) -> bool | None:
    """True/False when `pid` on this host is known alive/dead; None when the runner is on
    another host (or unknown), where only time can tell."""
    if hostname != this_host() or not pid:
        return None
    if pid == os.getpid():
        # Our own pid on a row we are about to claim: the earlier run in this process ended
        # (a redelivery to the same pool process), so it is not running any more.
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed runner whose parent died too is re-parented to PID 1; in a container PID 1 is often
    not an init that reaps, so the dead runner lingers as a zombie that still answers kill(pid, 0)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read()
    except OSError:
        return False  # no procfs (macOS): kill(pid, 0) is all we can know
    # The state follows the parenthesised command name, which may itself contain spaces or ")".
    state = fields[fields.rfind(")") + 2 :][:1]
    return state in ("Z", "X")
