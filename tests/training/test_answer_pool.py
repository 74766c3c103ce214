"""The answer-check pool: symbolic checks in worker processes under a hard wall-clock limit.

Real worker processes throughout (`python -m training.answer_pool`); the slow inputs are real
ones that pass the cheap guards (`(999*999)!` is a factorial of 998001, minutes of sympy).
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


def test_a_check_past_the_limit_is_unchecked_and_its_worker_replaced(pool):
    before = {worker.process.pid for worker in pool._all}
    start = time.monotonic()
    assert bounded_verify(pool, "5", SLOW, kind="expression") is None
    assert time.monotonic() - start < pool.timeout_s + 0.5
    killed = before - {worker.process.pid for worker in pool._all}
    assert len(killed) == 1
    assert len(pool._all) == len(before)  # a replacement is starting
    # The next checks are answered (by a ready worker or the replacement once started).
    assert _checked_once_started(pool, "x+1", "1+x", kind="expression") is True


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
    # Two workers, three slow checks: each caller waits at most the limit for a worker and the
    # limit for its check.
    assert time.monotonic() - start < 2 * pool.timeout_s + 20  # + a replacement's start-up
    assert set(results.values()) == {None}
    assert _checked_once_started(pool, "x+1", "1+x", kind="expression") is True


def test_workers_exit_when_the_pool_closes():
    pool = AnswerCheckPool(workers=1, timeout_s=1.0)
    assert _checked_once_started(pool, "x+1", "1+x", kind="expression") is True
    process = pool._all[0].process
    pool.close()
    assert process.poll() is not None
