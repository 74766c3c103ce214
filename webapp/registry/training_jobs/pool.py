"""The site's problem pool as a job sees it: the admin's filter (domains, problem sets), the pool
problems as the trainer's plain problem records, de-duplicated by normalised statement and split by
training.problems' held-out rule into the side a job trains on and the side it never sees, with the
provenance of each problem set. The launch form counts it on every change; a job freezes it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from training.problems.base import is_held_out_key, problem_key
from webapp.core.errors import ServiceError
from webapp.problems.selectors import PoolProblem, training_pool_problems
from webapp.registry.training_jobs.catalog import DOMAINS, STAGE_DOMAINS


def normalise_problem_filter(problem_filter: dict[str, Any], *, stage: str) -> dict[str, Any]:
    domains = [d for d in problem_filter.get("domains") or [] if d in DOMAINS]
    unknown = set(problem_filter.get("domains") or []) - set(DOMAINS)
    if unknown:
        raise ServiceError(f"Unknown domains: {', '.join(sorted(unknown))}.")
    return {
        "domains": sorted(domains or STAGE_DOMAINS.get(stage, list(DOMAINS))),
        "problem_set_ids": sorted({int(i) for i in problem_filter.get("problem_set_ids") or []}),
    }


@dataclass(frozen=True)
class PoolSplit:
    """The pool problems a job may use, as trainer records, split by the held-out rule."""

    train: list[dict[str, Any]]
    held_out: list[dict[str, Any]]
    duplicates: int
    sources: dict[str, int]  # provenance: "set title (teacher)" → problems taken from it
    # Per-set provenance, for the launch form and the job's record: one dict per set with
    # problem_set_id, title, teacher, approved_by, approved_at, train, held_out.
    sets: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def sets_used(self) -> list[int]:
        return [entry["problem_set_id"] for entry in self.sets]

    def domain_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.train:
            counts[item["domain"]] = counts.get(item["domain"], 0) + 1
        return dict(sorted(counts.items()))


def problem_record(problem: PoolProblem) -> dict[str, Any]:
    """A pool problem as the trainer's plain problem record (training.c3po.data.as_rl_problem)."""
    return {
        "id": f"site-{problem.problem_id}",
        "statement": problem.statement,
        "answer": problem.reference_answer,
        "kind": problem.answer_kind,
        "domain": problem.domain,
        "level": min(max(int(problem.difficulty or 1), 1), 4),
        "topic": problem.tags[0] if problem.tags else "",
        "tolerance": problem.tolerance,
        "unit": problem.unit or None,
        "options": list(problem.choices) if problem.choices else None,
    }


def pool_split(*, problem_filter: dict[str, Any]) -> PoolSplit:
    """Pool problems matching the filter (domains, problem sets), de-duplicated by normalised
    statement, split into the training side and the held-out side that training never sees."""
    set_ids = set(problem_filter.get("problem_set_ids") or [])
    train: list[dict[str, Any]] = []
    held_out: list[dict[str, Any]] = []
    seen: set[str] = set()
    duplicates = 0
    sources: dict[str, int] = {}
    sets: dict[int | None, dict[str, Any]] = {}
    for problem in training_pool_problems(domains=problem_filter.get("domains") or None):
        if set_ids and problem.problem_set_id not in set_ids:
            continue
        record = problem_record(problem)
        key = problem_key(record["statement"])
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        # training.problems' one held-out rule, on the key the trainer derives from a record.
        side = "held_out" if is_held_out_key(key) else "train"
        (held_out if side == "held_out" else train).append(record)
        source = f"{problem.problem_set_title or 'no set'} ({problem.teacher_username or '?'})"
        sources[source] = sources.get(source, 0) + 1
        entry = sets.setdefault(
            problem.problem_set_id,
            {
                "problem_set_id": problem.problem_set_id,
                "title": problem.problem_set_title,
                "teacher": problem.teacher_username,
                "approved_by": problem.training_approved_by,
                "approved_at": problem.training_approved_at,
                "train": 0,
                "held_out": 0,
            },
        )
        entry[side] += 1
    return PoolSplit(
        train=train,
        held_out=held_out,
        duplicates=duplicates,
        sources=sources,
        sets=sorted(sets.values(), key=lambda e: (-(e["train"] + e["held_out"]), e["title"])),
    )


def pool_counts(*, problem_filter: dict[str, Any], stage: str) -> dict[str, Any]:
    """What the launch form shows: how many pool problems match, train / held out, per domain."""
    try:
        split = pool_split(problem_filter=normalise_problem_filter(problem_filter, stage=stage))
    except ServiceError:
        return {"train": 0, "held_out": 0, "duplicates": 0, "domains": {}, "sets": []}
    return {
        "train": len(split.train),
        "held_out": len(split.held_out),
        "duplicates": split.duplicates,
        "domains": split.domain_counts(),
        # The page formats the approval time; the job's record keeps the ISO text.
        "sets": [
            entry | {"approved_at": datetime.fromisoformat(entry["approved_at"])}
            for entry in split.sets
        ],
    }
