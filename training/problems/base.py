"""The `Problem` record every generator returns, its normalised key, and the data splits.

A problem carries everything the rest of the pipeline needs: the statement a student (or the
model) sees, the reference answer and how to check it (expression, number with tolerance and
unit, or a choice letter), and a worked step-by-step solution that SFT teaches as the model's
reasoning.

The split is a pure function of a problem's split key, so training streams and evaluation sets
can be built independently and still never share a problem. Three parts by a stable hash of the
key: test (5%), validation (5%) and train (90%); "held out" is test and validation together, the
10% that no training stream ever yields (what the site's registry evaluates on). The split key is
the normalised statement, except where a topic writes one calculation under several surfaces
(a price increased or decreased by the same percentage, the same sum told about different
people, the same motion of a car or of a runner): there it is the calculation itself
(`calculation_key`), so a test problem never shares its numbers' calculation with a training
problem.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Domain = Literal["math", "science"]
AnswerKind = Literal["expression", "number", "choice"]

DOMAINS: tuple[Domain, ...] = ("math", "science")
LEVELS: tuple[int, ...] = (1, 2, 3, 4)
CHOICE_LETTERS = "ABCD"

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")

# One split key in ten is held out: half for the test split (touched once, at the end of an
# experiment), half for validation (every choice: topic, learning rate, β, Φ, step count). Ten
# percent keeps even the smallest level-1 spaces (a few hundred problems) represented in
# evaluation while leaving training almost the whole space.
TEST_PER_MILLE = 50
HELD_OUT_PER_MILLE = 100


@dataclass(frozen=True)
class Problem:
    """One generated problem with its reference answer and worked solution.

    `answer` is the reference: an expression/number string (e.g. "132", "-7", "5/12", "3.5")
    or, for `kind="choice"`, the key letter. `steps` is the reasoning written inside
    `<think>…</think>`; `final` is the short answer sentence containing `\\boxed{answer}`.
    """

    statement: str
    domain: Domain
    topic: str
    level: int
    answer: str
    kind: AnswerKind
    steps: str
    final: str
    tolerance: float | None = None
    unit: str | None = None
    options: tuple[str, ...] | None = None
    # What the split hashes when the topic has no calculation key (`calculation_key`): for
    # multiple choice the stem without options, so reordered options can never leak across.
    split_text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        assert self.domain in DOMAINS, self.domain
        assert self.level in LEVELS, self.level
        assert self.kind in ("expression", "number", "choice"), self.kind
        assert f"\\boxed{{{self.answer}}}" in self.final, (self.final, self.answer)
        if self.kind == "choice":
            assert self.options is not None and len(self.options) == len(CHOICE_LETTERS)
            assert self.answer in CHOICE_LETTERS

    @property
    def key(self) -> str:
        """The normalised statement, for de-duplication."""
        return problem_key(self.statement)

    @property
    def split_key(self) -> str:
        """What the split hashes: the topic's calculation where it has one, else the split text
        (multiple choice: the stem) or the statement, normalised."""
        return problem_key(calculation_key(self) or self.split_text or self.statement)

    @property
    def assistant_text(self) -> str:
        """The assistant turn SFT trains on: reasoning in <think>, then the boxed answer."""
        return f"<think>\n{self.steps}\n</think>\n{self.final}"


_SPACE_RE = re.compile(r"\s+")
_SPACE_AROUND_SYMBOL_RE = re.compile(r"\s*([-+*/=^(),:;?])\s*")


def problem_key(statement: str) -> str:
    """Normalise a statement for de-duplication.

    Unicode NFKC, lower case, whitespace collapsed, spaces around operators and punctuation
    removed, trailing full stops and question marks dropped: "Compute 3 + 4." and
    "compute 3+4" share a key, "Compute 3 + 5." does not.
    """
    text = unicodedata.normalize("NFKC", statement).lower()
    text = text.replace("×", "*").replace("·", "*").replace("÷", "/").replace("−", "-")
    text = _SPACE_RE.sub(" ", text).strip()
    text = _SPACE_AROUND_SYMBOL_RE.sub(r"\1", text)
    return text.rstrip(" .?!")


def held_out_bucket(key: str) -> int:
    """A stable bucket in [0, 1000) from the SHA-256 of a normalised key."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 1000


def is_held_out_key(split_key: str, per_mille: int = HELD_OUT_PER_MILLE) -> bool:
    """The held-out rule, the one every caller uses (the generators' splits, the trainer's
    curation, the site's problem pool): a (normalised) split key whose stable bucket falls in the
    first `per_mille` of 1000 is never trained on."""
    return held_out_bucket(split_key) < per_mille


def split_of_key(split_key: str) -> Split:
    """The split a (normalised) split key belongs to: train unless held out; a held-out key is
    in the test split or the validation split by the same bucket."""
    if not is_held_out_key(split_key):
        return "train"
    return "test" if held_out_bucket(split_key) < TEST_PER_MILLE else "validation"


def split_of(problem: Problem) -> Split:
    return split_of_key(problem.split_key)


def is_held_out(problem: Problem) -> bool:
    """True when the problem is never trained on (the test or the validation split)."""
    return is_held_out_key(problem.split_key)


# --- calculation keys: topics that write one calculation under several surfaces --------------

_PERCENT_OF_RE = re.compile(r"(\d+)% of (\d+) =")
_FIRST_OPERATION_RE = re.compile(r"(\d+)([-+*/])(\d+)")


def _percent_pair(problem: Problem) -> str:
    # Every level's solution starts "p% of n = ...": the (percent, price) pair is the shared
    # sub-calculation whether the price is then increased or decreased.
    match = _PERCENT_OF_RE.match(problem.steps)
    if match is None:
        raise ValueError(f"a percentages solution without its 'p% of n' line: {problem.steps!r}")
    return f"{match[1]}% of {match[2]}"


def _first_operation(problem: Problem) -> str:
    # The names and items change, the first operation on the numbers does not (a level-4 total
    # a*k is level 3's a boxes of k, so they share a key too).
    match = _FIRST_OPERATION_RE.search(problem.steps)
    if match is None:
        raise ValueError(f"a word problem solution without an operation: {problem.steps!r}")
    return "".join(match.groups())


def _worked_solution(problem: Problem) -> str:
    # The solution never names the mover (car, runner, ...): equal solutions, one calculation.
    return problem.steps


def _formula(problem: Problem) -> str:
    # A compound's molar mass is the sub-calculation of every molar-mass question about it.
    return problem.steps.split(":", 1)[0]


def _choice_calculation(problem: Problem) -> str:
    # Multiple choice: the base problem's solution between the copied options and the comparison.
    lines = problem.steps.split("\n")
    assert problem.options is not None
    body = lines[1 + len(problem.options) :]
    end = next(i for i, line in enumerate(body) if line.startswith("compare "))
    return "\n".join(body[:end])


_CALCULATION_KEYS: dict[str, Callable[[Problem], str]] = {
    "percentages": _percent_pair,
    "word_problems": _first_operation,
    "kinematics": _worked_solution,
    "molar_mass": _formula,
    "multiple_choice": _choice_calculation,
}


def calculation_key(problem: Problem) -> str | None:
    """The calculation a topic's problems share across surfaces, or None for a topic whose
    statement is its calculation (the statement is then the split key)."""
    extract = _CALCULATION_KEYS.get(problem.topic)
    return None if extract is None else f"{problem.topic}|{extract(problem)}"
