"""RL prompt curation: plain problem records, de-duplication, the held-out split, and the filter that
drops problems the start model always or never solves (docs/c3po-spec.md §6).

Problems arrive as plain dicts (the Django side passes its pool of verified problems), as
`training.problems.Problem`s, or as `RLProblem`s; `as_rl_problem` turns any of them into the one
record the trainer uses. Nothing here imports Django. A problem whose K sampled responses are all
right or all wrong has zero reward variance, so its GRPO advantages are all 0 and it teaches
nothing but costs rollout time and (under C3PO) budget tokens: `curate` estimates each problem's
solve rate from K rollouts of the start model and keeps only the informative ones.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ringmodel import build_prompt_ids
from training.answers import reward as verifier_reward
from training.c3po.rollout import RewardFn, RolloutEngine, sample_groups
from training.problems.base import HELD_OUT_PER_MILLE, is_held_out_key, problem_key


@dataclass(frozen=True)
class RLProblem:
    """One RL prompt with its verified reference; the attributes `training.answers.reward` reads.

    `split_key` decides the held-out split (see `training.problems.base.is_held_out`); for multiple
    choice it should be the stem without options, so reordered options cannot leak across.
    """

    problem_id: str
    statement: str
    answer: str
    kind: str = "expression"
    domain: str = "math"
    level: int = 1
    topic: str = ""
    tolerance: float | None = None
    unit: str | None = None
    options: tuple[str, ...] | None = None
    split_key: str = ""

    def __post_init__(self) -> None:
        assert self.statement.strip(), "empty statement"
        assert self.kind in ("expression", "number", "choice"), self.kind
        if not self.split_key:
            object.__setattr__(self, "split_key", problem_key(self.statement))
        if self.options is not None and not isinstance(self.options, tuple):
            object.__setattr__(self, "options", tuple(self.options))

    @property
    def key(self) -> str:
        return problem_key(self.statement)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["options"] = list(self.options) if self.options is not None else None
        return out


def _derived_id(statement: str) -> str:
    return "p-" + hashlib.sha256(problem_key(statement).encode("utf-8")).hexdigest()[:12]


def as_rl_problem(item: Any) -> RLProblem:
    """An `RLProblem` from a dict, a `training.problems.Problem`, or an `RLProblem`.

    Dict keys: statement (or text), answer (or reference); optional id/problem_id, kind, domain,
    level, topic, tolerance, unit, options, split_key (or split_text). Without an id, one is
    derived from the normalised statement, so the same problem always gets the same id.
    """
    if isinstance(item, RLProblem):
        return item
    if isinstance(item, Mapping):
        fields = dict(item)
    else:
        names = (
            *("problem_id", "id", "statement", "answer", "kind", "domain", "level", "topic"),
            *("tolerance", "unit", "options", "split_key", "split_text"),
        )
        fields = {n: getattr(item, n) for n in names if hasattr(item, n)}
        # training.problems.Problem exposes split_key as the normalised split text already.
    statement = fields.get("statement", fields.get("text"))
    answer = fields.get("answer", fields.get("reference"))
    if not statement or answer is None or str(answer).strip() == "":
        raise ValueError(f"problem lacks a statement or an answer: {item!r}")
    problem_id = fields.get("problem_id", fields.get("id"))
    split_text = fields.get("split_key") or fields.get("split_text") or ""
    options = fields.get("options")
    return RLProblem(
        problem_id=str(problem_id) if problem_id is not None else _derived_id(str(statement)),
        statement=str(statement),
        answer=str(answer),
        kind=str(fields.get("kind") or "expression"),
        domain=str(fields.get("domain") or "math"),
        level=int(fields.get("level") or 1),
        topic=str(fields.get("topic") or ""),
        tolerance=fields.get("tolerance"),
        unit=fields.get("unit"),
        options=tuple(options) if options is not None else None,
        split_key=problem_key(str(split_text)) if split_text else "",
    )


def deduplicate(problems: Iterable[RLProblem]) -> tuple[list[RLProblem], int]:
    """Keep the first problem of each normalised statement; returns (kept, number dropped)."""
    kept: list[RLProblem] = []
    seen: set[str] = set()
    dropped = 0
    for p in problems:
        if p.key in seen:
            dropped += 1
            continue
        seen.add(p.key)
        kept.append(p)
    return kept, dropped


def is_held_out(problem: RLProblem, per_mille: int = HELD_OUT_PER_MILLE) -> bool:
    """The evaluation side of the split (never trained on): training.problems' rule on the
    problem's split key."""
    return is_held_out_key(problem.split_key, per_mille)


def split_held_out(
    problems: Sequence[RLProblem], per_mille: int = HELD_OUT_PER_MILLE
) -> tuple[list[RLProblem], list[RLProblem]]:
    """(train, held_out) by `is_held_out`; the same rule as training.problems' generators."""
    train = [p for p in problems if not is_held_out(p, per_mille)]
    held_out = [p for p in problems if is_held_out(p, per_mille)]
    return train, held_out


def prompt_ids_for(tokenizer: Any, problem: RLProblem) -> list[int]:
    """The prompt the policy sees: the statement in the checkpoint's chat template + §5 suffix."""
    return build_prompt_ids(tokenizer, problem.statement)


@dataclass
class SolveRate:
    """How often the start model solved a problem in `attempts` sampled responses."""

    attempts: int
    solved: int

    @property
    def rate(self) -> float:
        return self.solved / self.attempts if self.attempts else math.nan


def estimate_solve_rates(
    problems: Sequence[RLProblem],
    *,
    engine: RolloutEngine,
    tokenizer: Any,
    group_size: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    seed: int = 0,
    reward_fn: RewardFn = verifier_reward,
    problems_per_batch: int = 8,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, SolveRate]:
    """Sample `group_size` responses per problem (batched) and count the verified ones."""
    rates: dict[str, SolveRate] = {}
    for start in range(0, len(problems), problems_per_batch):
        if should_stop is not None and should_stop():
            break
        batch = list(problems[start : start + problems_per_batch])
        groups = sample_groups(
            engine,
            tokenizer,
            batch,
            [prompt_ids_for(tokenizer, p) for p in batch],
            group_size=group_size,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed + start,
            reward_fn=reward_fn,
        )
        for problem, group in zip(batch, groups, strict=True):
            solved = sum(1 for r in group.rewards if r >= 1.0)
            rates[problem.problem_id] = SolveRate(attempts=len(group.rewards), solved=solved)
    return rates


@dataclass
class CurationReport:
    """What `curate` kept and why the rest went; JSON-ready via `to_dict`."""

    train: list[RLProblem]
    held_out: list[RLProblem]
    duplicates_dropped: int = 0
    always_solved: list[str] = field(default_factory=list)
    never_solved: list[str] = field(default_factory=list)
    not_estimated: int = 0
    solve_rates: dict[str, SolveRate] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "train": len(self.train),
            "held_out": len(self.held_out),
            "duplicates_dropped": self.duplicates_dropped,
            "always_solved": self.always_solved,
            "never_solved": self.never_solved,
            "not_estimated": self.not_estimated,
            "solve_rates": {k: asdict(v) for k, v in self.solve_rates.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def curate(
    problems: Iterable[Any],
    *,
    engine: RolloutEngine | None = None,
    tokenizer: Any = None,
    group_size: int = 8,
    max_new_tokens: int = 384,
    temperature: float = 1.0,
    seed: int = 0,
    reward_fn: RewardFn = verifier_reward,
    drop_always_solved: bool = True,
    drop_never_solved: bool = True,
    max_estimated: int | None = None,
    held_out_per_mille: int = HELD_OUT_PER_MILLE,
    should_stop: Callable[[], bool] | None = None,
) -> CurationReport:
    """De-duplicate, split off the held-out problems, and drop uninformative training problems.

    With an `engine` (the start model), each training problem's solve rate is estimated from
    `group_size` rollouts; problems solved in every rollout or in none are dropped (docs/c3po-spec.md §6).
    `max_estimated` caps the estimation cost: only the first that many training problems (in
    input order) are estimated and considered, the rest are set aside (`not_estimated`).
    Without an engine nothing is filtered by difficulty.
    """
    records = [as_rl_problem(p) for p in problems]
    unique, duplicates = deduplicate(records)
    train, held_out = split_held_out(unique, held_out_per_mille)
    report = CurationReport(train=train, held_out=held_out, duplicates_dropped=duplicates)
    if engine is None:
        return report
    assert tokenizer is not None, "estimating solve rates needs the tokenizer"
    candidates = train if max_estimated is None else train[:max_estimated]
    report.not_estimated = len(train) - len(candidates)
    rates = estimate_solve_rates(
        candidates,
        engine=engine,
        tokenizer=tokenizer,
        group_size=group_size,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        reward_fn=reward_fn,
        should_stop=should_stop,
    )
    report.solve_rates = rates
    kept = []
    for p in candidates:
        rate = rates.get(p.problem_id)
        if rate is None:
            continue  # stopped before it was estimated
        if drop_always_solved and rate.solved == rate.attempts:
            report.always_solved.append(p.problem_id)
        elif drop_never_solved and rate.solved == 0:
            report.never_solved.append(p.problem_id)
        else:
            kept.append(p)
    report.train = kept
    return report
