"""Seeded generators of math and science problems with verified answers and worked solutions.

The public surface: the `Problem` record, `problem_key` for de-duplication, the registry of
generators by (domain, topic), the endless `training_problems` stream (train split) and the
`eval_set`s (held out: validation and test), which never share a problem or, where a topic
reuses one calculation under several surfaces, a calculation (see `base.split_of`).
"""

from training.problems.base import (
    CHOICE_LETTERS,
    DOMAINS,
    LEVELS,
    AnswerKind,
    Domain,
    Problem,
    Split,
    calculation_key,
    is_held_out,
    is_held_out_key,
    problem_key,
    split_of,
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
    "Split",
    "calculation_key",
    "eval_set",
    "generate_problem",
    "is_held_out",
    "is_held_out_key",
    "problem_key",
    "split_of",
    "topics",
    "training_problems",
    "training_sample",
]
