"""Seeded generators of math and science problems with verified answers and worked solutions.

The public surface: the `Problem` record, `problem_key` for de-duplication, the registry of
generators by (domain, topic), the endless `training_problems` stream and the held-out
`eval_set`, which never share a problem (see `base.is_held_out`).
"""

from training.problems.base import (
    CHOICE_LETTERS,
    DOMAINS,
    LEVELS,
    AnswerKind,
    Domain,
    Problem,
    is_held_out,
    problem_key,
)
from training.problems.registry import (
    GENERATORS,
    eval_set,
    generate_problem,
    topics,
    training_problems,
    training_sample,
)

__all__ = [
    "CHOICE_LETTERS",
    "DOMAINS",
    "GENERATORS",
    "LEVELS",
    "AnswerKind",
    "Domain",
    "Problem",
    "eval_set",
    "generate_problem",
    "is_held_out",
    "problem_key",
    "topics",
    "training_problems",
    "training_sample",
]
