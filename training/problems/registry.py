"""The registry of problem generators by (domain, topic), and the streams built on it.

`training_problems` is the endless seeded stream SFT and RL draw from; it yields only the train
split. `eval_set` builds a deterministic evaluation set from the held-out side (or from only its
validation or test part) for one domain and level, cycling through that domain's topics so every
topic is represented, with no duplicates. Both rely on the split in `training.problems.base`, so
neither needs to know the other's seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Literal

from training.problems import math_topics, science_topics
from training.problems.base import (
    DOMAINS,
    LEVELS,
    Domain,
    Problem,
    is_held_out,
    problem_key,
    split_of,
)

Generator = Callable[[int, random.Random], Problem]
EvalSplit = Literal["held_out", "validation", "test"]

GENERATORS: dict[tuple[Domain, str], Generator] = {
    ("math", "addition"): math_topics.addition,
    ("math", "subtraction"): math_topics.subtraction,
    ("math", "multiplication"): math_topics.multiplication,
    ("math", "order_of_operations"): math_topics.order_of_operations,
    ("math", "fractions"): math_topics.fractions,
    ("math", "percentages"): math_topics.percentages,
    ("math", "linear_equations"): math_topics.linear_equations,
    ("math", "word_problems"): math_topics.word_problems,
    ("science", "unit_conversion"): science_topics.unit_conversion,
    ("science", "kinematics"): science_topics.kinematics,
    ("science", "force"): science_topics.force,
    ("science", "density"): science_topics.density,
    ("science", "molar_mass"): science_topics.molar_mass,
    ("science", "multiple_choice"): science_topics.multiple_choice,
}

# An evaluation set enumerates a small topic space: a topic leaves the rotation once this many
# draws in a row, and at least _EXHAUSTED_FACTOR times the distinct problems it has produced,
# brought no new problem of any split. A problem the generator draws with probability 1/N is
# then missed with probability about e^-20 (uniform spaces); the large spaces never get there.
_MIN_DRAWS_EXHAUSTED = 2_000
_EXHAUSTED_FACTOR = 20


def topics(domain: Domain) -> list[str]:
    """The topics registered for a domain, in registry order."""
    return [t for d, t in GENERATORS if d == domain]


def generate_problem(domain: Domain, topic: str, level: int, rng: random.Random) -> Problem:
    """One problem of the given kind (held-out or not: the split is applied by the streams)."""
    if (domain, topic) not in GENERATORS:
        raise KeyError(f"no generator for domain={domain!r} topic={topic!r}")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level}")
    return GENERATORS[(domain, topic)](level, rng)


def training_problems(
    seed: int,
    *,
    domains: Sequence[Domain] = DOMAINS,
    levels: Sequence[int] = LEVELS,
    level_weights: Sequence[float] | None = None,
    topic_names: Sequence[str] | None = None,
    topic_weights: Mapping[str, float] | None = None,
) -> Iterator[Problem]:
    """An endless, seeded stream of training problems; held-out problems are skipped.

    Each draw picks a (domain, topic) among those selected, uniformly or by `topic_weights`
    (topic name -> weight, 1 for topics it does not name), and a level by `level_weights`
    (uniform by default).
    """
    kinds = [
        (d, t) for d, t in GENERATORS if d in domains and (topic_names is None or t in topic_names)
    ]
    if not kinds:
        raise ValueError(f"no generators for domains={domains} topics={topic_names}")
    unknown = set(topic_weights or ()) - {t for _, t in kinds}
    if unknown:
        raise ValueError(f"topic_weights names no selected topic: {sorted(unknown)}")
    rng = random.Random(seed)
    weights = list(level_weights) if level_weights is not None else None
    kind_weights = [(topic_weights or {}).get(t, 1.0) for _, t in kinds]
    while True:
        # Without topic weights the draw is rng.choice, as before: the streams that trained the
        # shipped stages stay reproducible.
        if topic_weights:
            domain, topic = rng.choices(kinds, weights=kind_weights)[0]
        else:
            domain, topic = rng.choice(kinds)
        level = rng.choices(list(levels), weights=weights)[0]
        problem = GENERATORS[(domain, topic)](level, rng)
        if not is_held_out(problem):
            yield problem


# After this many draws in a row without a new problem, a stream's space is taken to be used up
# (while even 1% of a uniform space is unseen, a new problem turns up about every 100 draws).
MAX_DRAWS_WITHOUT_NEW = 20_000


def training_sample(
    n: int,
    seed: int,
    *,
    domains: Sequence[Domain] = DOMAINS,
    levels: Sequence[int] = LEVELS,
    topic_names: Sequence[str] | None = None,
) -> list[Problem]:
    """The first n distinct problems of a training stream: a fixed prompt set (e.g. the RL
    prompts whose entropy selects the C3PO start checkpoint)."""
    seen: set[str] = set()
    sample: list[Problem] = []
    stream = training_problems(seed, domains=domains, levels=levels, topic_names=topic_names)
    draws_without_new = 0
    for problem in stream:
        if problem.key not in seen:
            seen.add(problem.key)
            sample.append(problem)
            draws_without_new = 0
        else:
            draws_without_new += 1
        if len(sample) == n:
            return sample
        # The stream is endless but a small topic's space is not (molar mass at level 4 has
        # about 500 training problems): stop with the count instead of drawing forever.
        if draws_without_new > MAX_DRAWS_WITHOUT_NEW:
            raise ValueError(
                f"only {len(sample)} distinct training problems found, {n} asked for "
                f"(domains {list(domains)}, levels {list(levels)}, topics {topic_names})"
            )
    raise AssertionError("unreachable: the stream is endless")


def eval_set(
    domain: Domain,
    level: int,
    n: int,
    seed: int = 0,
    topic_names: Sequence[str] | None = None,
    split: EvalSplit = "held_out",
) -> list[Problem]:
    """n distinct problems of one domain and level from the held-out side (`split` "held_out":
    test and validation, what the site's registry evaluates on) or from only its "validation" or
    "test" part, topics taken in turn (all the domain's topics, or those of `topic_names`).

    Deterministic in (domain, level, n, seed, topic_names, split). A topic whose space is used
    up (every problem it can generate has been drawn, `_MIN_DRAWS_EXHAUSTED`) leaves the
    rotation, so a small space is evaluated whole and the set holds fewer than n problems only
    if every topic ran out.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level}")
    if split not in ("held_out", "validation", "test"):
        raise ValueError(f"split must be held_out, validation or test, got {split!r}")
    active = topics(domain)
    if not active:
        raise KeyError(f"unknown domain {domain!r}")
    if topic_names is not None:
        active = [t for t in active if t in topic_names]
    rng = random.Random(f"eval:{domain}:{level}:{seed}")
    seen: set[str] = set()
    drawn: dict[str, set[str]] = {t: set() for t in active}
    problems: list[Problem] = []
    turn = 0
    while len(problems) < n and active:
        topic = active[turn % len(active)]
        since_new = 0
        while True:
            problem = GENERATORS[(domain, topic)](level, rng)
            if problem.key in drawn[topic]:
                since_new += 1
                limit = max(_MIN_DRAWS_EXHAUSTED, _EXHAUSTED_FACTOR * len(drawn[topic]))
                if since_new > limit:
                    active.remove(topic)
                    break
                continue
            drawn[topic].add(problem.key)
            since_new = 0
            # Distinct questions: a multiple-choice stem counts once whatever its options' order.
            distinct = problem_key(problem.split_text or problem.statement)
            if _in_split(problem, split) and distinct not in seen:
                seen.add(distinct)
                problems.append(problem)
                turn += 1
                break
    return problems


def _in_split(problem: Problem, split: EvalSplit) -> bool:
    return is_held_out(problem) if split == "held_out" else split_of(problem) == split
