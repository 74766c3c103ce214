"""Callers of the answer-check pool wait their turn for a worker, first come first served, each for
at most its wait; a caller that will not wait in line never takes a worker from one who waits.

In-process stand-ins for the worker processes (a check that sleeps, or blocks until released), so
the order and the timings are the pool's own; tests/training/test_answer_pool.py and
tests/security/test_answer_checker_flood.py do the same with real processes.
"""

import threading
import time

import pytest

from training.answer_pool import AnswerCheckPool, CheckerUnavailable, _StillStarting


class _StandInWorker:
    ready = True
    pid = None

    def __init__(self, check):
        self._check = check

    def call(self, request, **_):
        return self._check(request)

    def kill(self):
        pass


class StandInPool(AnswerCheckPool):
    """The pool's waiting line as it is, with workers that run `check(request)` in the caller's
    thread instead of a process."""

    def __init__(self, check, **options):
        self._check = check
        super().__init__(**options)

    def _fork(self):
        return _StandInWorker(self._check)


def _sleep_then_answer(seconds):
    def check(request):
        time.sleep(seconds)
        return request["kwargs"].get("name", True)

    return check


def test_a_caller_gives_up_when_its_wait_is_up_while_every_worker_is_busy():
    release = threading.Event()
    pool = StandInPool(lambda request: release.wait(30), workers=1, timeout_s=1.0, wait_s=0.3)
    holder = threading.Thread(target=pool.call, args=("verify",))
    holder.start()
    time.sleep(0.05)  # the holder has the only worker
    try:
        start = time.monotonic()
        with pytest.raises(CheckerUnavailable):
            pool.call("verify")
        assert 0.25 < time.monotonic() - start < 0.6
        start = time.monotonic()
        with pytest.raises(CheckerUnavailable):
            pool.call("verify", patience_s=0)  # will not wait in line: at once
        assert time.monotonic() - start < 0.1
    finally:
        release.set()
        holder.join()
    assert pool.call("verify", patience_s=0) is True  # the worker is free again


def test_waiting_callers_are_served_in_their_order_of_arrival():
    pool = StandInPool(_sleep_then_answer(0.05), workers=1, timeout_s=1.0, wait_s=5.0)
    served = []
    lock = threading.Lock()

    def caller(name):
        result = pool.call("verify", name=name)
        with lock:
            served.append(result)

    threads = []
    for name in range(8):
        threads.append(threading.Thread(target=caller, args=(name,)))
        threads[-1].start()
        time.sleep(0.01)  # in line before the next one comes
    for thread in threads:
        thread.join()
    assert served == list(range(8))


def test_callers_that_will_not_wait_never_take_a_worker_from_a_waiting_student():
    # Three upload requests read reference answers back to back, each taking a worker only if one
    # is free at once (patience 0). A student who waits (patience 1 s) gets the next worker freed:
    # before, a request that released its worker took it straight back, ahead of the waiting
    # student, and the student's check came back "couldn't check".
    pool = StandInPool(_sleep_then_answer(0.05), workers=2, timeout_s=1.0, wait_s=1.0)
    stop = threading.Event()
    uploads_checked = []

    def upload():
        while not stop.is_set():
            try:
                pool.call("reference", patience_s=0)
                uploads_checked.append(1)
            except CheckerUnavailable:
                time.sleep(0.005)  # the request defers the rest to the background; here: again

    uploads = [threading.Thread(target=upload) for _ in range(3)]
    for thread in uploads:
        thread.start()
    waits = []
    try:
        time.sleep(0.1)
        for _ in range(15):
            start = time.monotonic()
            assert pool.call("verify") is True  # never CheckerUnavailable
            waits.append(time.monotonic() - start)
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in uploads:
            thread.join()
    assert uploads_checked  # the uploads did use the workers nobody waited for
    # At most one upload check (50 ms) ahead of the student, plus its own, plus scheduling.
    assert max(waits) < 0.5, waits


def test_a_worker_still_starting_is_waited_for_even_without_waiting_in_line():
    # A new process's first checks: its workers are idle but still starting. An upload's check
    # (patience 0) waits for that start, up to the pool's wait, rather than being turned away.
    started = threading.Event()

    class StartingWorker(_StandInWorker):
        def call(self, request, *, ready_by, **_):
            if not started.wait(max(0.0, ready_by - time.monotonic())):
                raise _StillStarting()
            return True

    class StartingPool(StandInPool):
        def _fork(self):
            return StartingWorker(None)

    pool = StartingPool(None, workers=1, timeout_s=1.0, wait_s=0.5)
    threading.Timer(0.2, started.set).start()
    start = time.monotonic()
    assert pool.call("reference", patience_s=0) is True
    assert 0.15 < time.monotonic() - start < 0.5
    started.clear()
    start = time.monotonic()
    with pytest.raises(CheckerUnavailable):  # not started within the pool's wait
        StartingPool(None, workers=1, timeout_s=1.0, wait_s=0.3).call("reference", patience_s=0)
    assert 0.25 < time.monotonic() - start < 0.6
