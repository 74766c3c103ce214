"""The train / validation / test split: evaluations never meet the training split.

Where a topic writes one calculation under several surfaces, the split follows the calculation:
the (percent, price) pair of a percentage problem, a word problem's numbers whoever holds the
items, a motion whoever moves. These tests read the numbers back out of the statements, so they
check the split itself and not only `calculation_key`'s own output.
"""

import itertools
import random
import re
from collections import Counter

import pytest

from training.c3po.data import as_rl_problem
from training.evaluate import evaluation_problems
from training.problems import (
    DOMAINS,
    GENERATORS,
    LEVELS,
    eval_set,
    generate_problem,
    split_of,
    training_problems,
)


def _percent_pair(statement: str) -> tuple[int, int]:
    percent = int(re.search(r"(\d+)%", statement)[1])
    others = [int(n) for n in re.findall(r"\d+", statement.replace(f"{percent}%", ""))]
    assert len(others) == 1, statement
    return percent, others[0]


def _training(topic: str, draws: int) -> list:
    return list(itertools.islice(training_problems(5, topic_names=[topic]), draws))


@pytest.fixture(scope="module")
def percentage_sets() -> dict[str, dict[int, list]]:
    """Every validation and test percentage problem of every level (the spaces are small)."""
    return {
        split: {lvl: eval_set("math", lvl, 10_000, 0, ["percentages"], split) for lvl in LEVELS}
        for split in ("validation", "test")
    }


@pytest.mark.parametrize("split", ["test", "validation"])
def test_no_evaluated_percentage_shares_its_percent_and_price_with_a_training_problem(
    split, percentage_sets
):
    evaluated = [p for problems in percentage_sets[split].values() for p in problems]
    assert len(evaluated) > 50
    trained = {_percent_pair(p.statement) for p in _training("percentages", 6000)}
    shared = {_percent_pair(p.statement) for p in evaluated} & trained
    assert not shared


def test_no_evaluated_word_problem_or_motion_shares_its_numbers_with_a_training_problem():
    for domain, topic in (("math", "word_problems"), ("science", "kinematics")):
        evaluated = [p for lvl in LEVELS for p in eval_set(domain, lvl, 40, 0, [topic], "test")]
        trained = _training(topic, 4000)

        def numbers(problem) -> tuple[int, tuple[str, ...]]:
            return problem.level, tuple(re.findall(r"\d+", problem.statement))

        assert evaluated and not {numbers(p) for p in evaluated} & {numbers(p) for p in trained}


@pytest.mark.parametrize("split", ["test", "validation", "held_out"])
def test_an_evaluation_never_meets_the_training_split(split):
    evaluated = evaluation_problems(DOMAINS, LEVELS, 30, seed=0, split=split)
    assert all(split_of(p) != "train" for p in evaluated)
    if split != "held_out":
        assert all(split_of(p) == split for p in evaluated)
    trained = list(itertools.islice(training_problems(0), 6000))
    assert all(split_of(p) == "train" for p in trained)
    assert not {p.split_key for p in evaluated} & {p.split_key for p in trained}
    assert not {p.key for p in evaluated} & {p.key for p in trained}


def test_validation_and_test_are_disjoint(percentage_sets):
    validation, test = percentage_sets["validation"][4], percentage_sets["test"][4]
    assert validation and test
    assert not {p.split_key for p in validation} & {p.split_key for p in test}


def test_eval_set_enumerates_a_small_space_whole(percentage_sets):
    """Level-4 percentages: 8 prices x 89 percents x up/down. The old eval_set gave up after 500
    draws without a new held-out problem and evaluated 137 of the 143 there were."""
    rng = random.Random(11)
    space = {}
    for _ in range(40_000):
        problem = generate_problem("math", "percentages", 4, rng)
        space[problem.key] = problem
    assert len(space) == 8 * 89 * 2
    for split, by_level in percentage_sets.items():
        got = by_level[4]
        assert len(got) == sum(1 for p in space.values() if split_of(p) == split), split
        assert {p.key for p in got} <= space.keys()


def test_the_split_shares_are_five_five_and_ninety_percent():
    counts = Counter(
        split_of(generate_problem("math", "addition", 4, random.Random(i))) for i in range(20_000)
    )
    assert 0.04 < counts["test"] / 20_000 < 0.06
    assert 0.04 < counts["validation"] / 20_000 < 0.06


@pytest.mark.parametrize(("domain", "topic"), sorted(GENERATORS))
def test_the_trainer_record_keeps_the_generators_split_key(domain, topic):
    rng = random.Random(2)
    for level in LEVELS:
        problem = generate_problem(domain, topic, level, rng)
        assert as_rl_problem(problem).split_key == problem.split_key
