"""The `Problem` record every generator returns, its normalised key, and the held-out split.

A problem carries everything the rest of the pipeline needs: the statement a student (or the
model) sees, the reference answer and how to check it (expression, number with tolerance and
unit, or a choice letter), and a worked step-by-step solution that SFT teaches as the model's
reasoning. The held-out split is a pure function of the normalised statement (or, for multiple
choice, of the stem without its options), so training streams and evaluation sets can be built
independently and still never share a problem.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

Domain = Literal["math", "science"]
AnswerKind = Literal["expression", "number", "choice"]

DOMAINS: tuple[Domain, ...] = ("math", "science")
LEVELS: tuple[int, ...] = (1, 2, 3, 4)
CHOICE_LETTERS = "ABCD"

# One problem key in ten is held out for evaluation. Ten percent keeps even the smallest
# level-1 spaces (a few hundred problems) represented in evaluation while leaving training
# almost the whole space.
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
    # What the held-out split hashes; for multiple choice this is the stem without options, so
    # the same question can never appear in training with its options merely reordered.
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
        return problem_key(self.split_text or self.statement)

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


def is_held_out(problem: Problem) -> bool:
    """True when the problem belongs to the evaluation side of the split."""
    return held_out_bucket(problem.split_key) < HELD_OUT_PER_MILLE
