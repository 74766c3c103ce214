"""The answer-check pool: symbolic checks in worker processes under a hard wall-clock limit.

Real processes throughout (the zygote `python -m training.answer_pool` and its forked workers); the
slow inputs are real ones that pass the cheap guards (`(999*999)!` is a factorial of 998001,
minutes of sympy).
"""

import threading
import time

import pytest

from training.answer_pool import (
    UNCHECKED_REFERENCE,
    AnswerCheckPool,
    bounded_reference_check,
    bounded_verify,
)
from training.answers import SymbolicCheckNeeded, check_reference_parses, verify

SLOW = "(999*999)!"


def _checked_once_started(pool, reference, prediction, **kwargs):
    """The verdict once a (re)starting worker is ready: a check that finds its worker still
    importing sympy is "couldn't check" (None) by design, so a loaded machine may need a retry."""
    deadline = time.monotonic() + 120
    while (verdict := bounded_verify(pool, reference, prediction, **kwargs)) is None:
        assert time.monotonic() < deadline
    return verdict


@pytest.fixture(scope="module")
def pool():
    pool = AnswerCheckPool(workers=2, timeout_s=1.0)
    _checked_once_started(pool, "x^2+1", "1+x^2", kind="expression")  # start one worker
    yield pool
    pool.close()


def test_cheap_answers_never_reach_a_worker():
    assert verify("5/6", "\\frac{5}{6}", kind="expression", symbolic=False)
    assert verify("12", "12 N", kind="number", unit="N", symbolic=False)
    assert verify("B", "(b)", kind="choice", symbolic=False)
    with pytest.raises(SymbolicCheckNeeded):
        verify("x^2+1", "1+x^2", kind="expression", symbolic=False)
    with pytest.raises(SymbolicCheckNeeded):
        check_reference_parses("\\sqrt{2}", "number", symbolic=False)


def test_symbolic_answers_are_checked_in_the_pool(pool):
    assert bounded_verify(pool, "x^2+1", "1+x^2", kind="expression") is True
    assert bounded_verify(pool, "x^2+1", "x^2-1", kind="expression") is False
    assert bounded_verify(pool, "\\sqrt{2}", "1.4142", kind="number", tolerance=1e-3) is True
    assert bounded_reference_check(pool, "\\frac{x}{2}+1", "expression") is None


def _ready_workers(pool):
    """Every worker of the pool, once each has said it is ready (their pids)."""
    deadline = time.monotonic() + 120
    while not pool._all or not all(worker.ready for worker in pool._all):
        assert time.monotonic() < deadline
        _checked_once_started(pool, "x+1", "1+x", kind="expression")
    return {worker.pid for worker in pool._all}


def _parent_pid(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def test_a_check_past_the_limit_is_unchecked_and_its_worker_replaced(pool):
    before = _ready_workers(pool)
    zygote = pool._zygote.process.pid
    start = time.monotonic()
    assert bounded_verify(pool, "5", SLOW, kind="expression") is None
    assert time.monotonic() - start < pool.timeout_s + 0.5
    after = _ready_workers(pool)
    assert len(before - after) == 1 and len(after) == len(before)  # one killed, one forked
    # The replacement is a fork of the same warm zygote: no interpreter re-imported sympy.
    assert pool._zygote.process.pid == zygote
    assert {_parent_pid(pid) for pid in after} == {zygote}


def test_a_pool_kept_busy_by_costly_answers_answers_the_next_check():
    # One worker: the check right after a kill can only be answered by its replacement, forked
    # from the zygote (how much sooner than a fresh interpreter: bench/bench_answer_check_restart).
    single = AnswerCheckPool(workers=1, timeout_s=1.0)
    try:
        _ready_workers(single)
        for _ in range(3):
            assert bounded_verify(single, "5", SLOW, kind="expression") is None
            assert bounded_verify(single, "x+1", "1+x", kind="expression") is True
    finally:
        single.close()


def test_a_reference_check_past_the_limit_is_reported_as_unreadable():
    # A limit far below what parsing takes: the caller gets its answer when the limit is up.
    pool = AnswerCheckPool(workers=1, timeout_s=0.001)
    try:
        assert bounded_reference_check(pool, "\\frac{x}{3}+7", "expression") == UNCHECKED_REFERENCE
    finally:
        pool.close()


def test_hostile_factorials_are_refused_before_any_parsing():
    # The inputs of issue 12: refused by the cheap guard in microseconds, as wrong answers.
    for answer in ("(9!+30000)!", "(10!)!", "1000!", "9^9^9", "2**3**4", "(9^9)!"):
        start = time.perf_counter()
        assert verify("5", answer, kind="expression", symbolic=False) is False
        assert time.perf_counter() - start < 0.05


def test_callers_in_threads_are_each_bounded(pool):
    results = {}

    def check(name, answer):
        results[name] = bounded_verify(pool, "5", answer, kind="expression")

    threads = [threading.Thread(target=check, args=(f"slow{i}", SLOW)) for i in range(3)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Two workers, three slow checks: each caller waits at most the pool's wait for a worker and
    # the limit for its check.
    assert time.monotonic() - start < pool.wait_s + pool.timeout_s + 20  # + a replacement's start
    assert set(results.values()) == {None}
    assert _checked_once_started(pool, "x+1", "1+x", kind="expression") is True


def _gone(pid, within=10.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_workers_and_zygote_exit_when_the_pool_closes():
    pool = AnswerCheckPool(workers=1, timeout_s=1.0)
    (worker,) = _ready_workers(pool)
    zygote = pool._zygote.process
    pool.close()
    assert zygote.poll() is not None
    assert _gone(worker)


def test_a_dead_zygote_is_started_again():
    pool = AnswerCheckPool(workers=1, timeout_s=1.0)
    try:
        _ready_workers(pool)
        first = pool._zygote.process
        first.kill()
        first.wait()
        # The ready worker outlives its zygote; its replacement needs a new zygote.
        assert bounded_verify(pool, "5", SLOW, kind="expression") is None
        assert _checked_once_started(pool, "x+1", "1+x", kind="expression") is True
        assert pool._zygote.process.pid != first.pid
    finally:
        pool.close()


def test_more_callers_than_workers_each_end_within_the_wait_plus_the_limit():
    # Many accounts together (each allowed one check at a time) keep every worker busy: a caller
    # waits its turn for at most the pool's wait, then is "couldn't check" (None), never a wrong
    # verdict and never a request held until the crowd has gone.
    busy = AnswerCheckPool(workers=2, timeout_s=1.0, wait_s=0.5)
    try:
        _ready_workers(busy)
        results = {}

        def check(name, answer):
            start = time.monotonic()
            verdict = bounded_verify(busy, "x^2+2x+1", answer, kind="expression")
            results[name] = (verdict, time.monotonic() - start)

        crowd = [threading.Thread(target=check, args=(f"slow{i}", SLOW)) for i in range(6)]
        for thread in crowd:
            thread.start()
        time.sleep(0.2)  # two slow checks hold both workers, four wait in line
        honest = threading.Thread(target=check, args=("honest", "(x+1)^2"))
        honest.start()
        for thread in [*crowd, honest]:
            thread.join()
        assert {verdict for name, (verdict, _) in results.items() if name != "honest"} == {None}
        # Behind four slow checks (1 s each on two workers), past its 0.5 s wait: couldn't check.
        verdict, took = results["honest"]
        assert verdict is None
        assert took < busy.wait_s + 0.5
        # Every caller: its wait, then at most the limit (and a replacement's fork).
        assert max(took for _, took in results.values()) < busy.wait_s + busy.timeout_s + 1.0
        assert _checked_once_started(busy, "x+1", "1+x", kind="expression") is True
    finally:
        busy.close()
