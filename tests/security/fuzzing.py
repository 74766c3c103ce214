"""What the fuzz tests share: one hypothesis profile, hostile text, and the time rule.

Each property runs a fixed number of examples, derandomized, so the suite takes the same time and
finds the same things on every run. Time is measured as CPU seconds of the thread that serves the
request (the Django test client runs the view in the test's own thread), because a loaded CI
machine stretches wall-clock time but not the CPU time a request costs; a request that waits (on the
answer checker, say) is bounded separately by wall-clock time.
"""

import time
from contextlib import contextmanager

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SERVER_CPU_SECONDS = 1.0
# A request may also wait: on the database, or on the answer checker (1 s limit, and up to 5 s
# when its worker process is still starting). A hang detector, generous for a loaded machine.
SERVER_WALL_SECONDS = 15.0


def fuzz(examples: int):
    """The one hypothesis profile of the fuzz suite, with `examples` examples per property."""
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,  # timed by `server_time` below, in CPU seconds
        database=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # the db and client are shared by the examples
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# Values that broke or could break a naive reader: NUL, digits of other scripts, numbers beyond
# any integer column, SQL and HTML fragments, path tricks, and long runs.
AWKWARD = [
    "\x00", "a\x00b", "²", "٣", "１２", "1²", "-1", "0", "1e3", "1.5", " 7 ", "99999999999999999999",
    "9" * 400, "' OR 1=1 --", "<script>alert(1)</script>", "%00", "../../etc/passwd", "\u202e",
    "\ud7ff", "\U0001f600", "=cmd|' /C calc'!A0", "-" + "|" * 5000, " " * 5000, "\n" * 2000,
]  # fmt: skip
hostile_text = st.one_of(
    st.sampled_from(AWKWARD),
    st.text(max_size=60),
    st.integers().map(str),
    st.text(alphabet="\x00²٣0123456789-.e ", max_size=25),
)


@contextmanager
def server_time():
    """Yields a dict that holds the block's CPU and wall seconds once it has run."""
    spent = {}
    cpu, wall = time.thread_time(), time.monotonic()
    try:
        yield spent
    finally:
        spent["cpu"] = time.thread_time() - cpu
        spent["wall"] = time.monotonic() - wall


def assert_bounded(spent: dict, what) -> None:
    assert spent["cpu"] < SERVER_CPU_SECONDS, (what, spent)
    assert spent["wall"] < SERVER_WALL_SECONDS, (what, spent)
