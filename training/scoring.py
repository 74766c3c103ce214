"""Scoring a held-out evaluation, in pure Python (no torch, no tokenizer, no engine).

Which problems an evaluation asks (`evaluation_problems`: training.problems' held-out sets), how
completions are scored (`score_completions`: training.answers.reward, an unfinished answer scores
0), the report (`evaluation_report`), the per-domain summary the registry's promotion gate compares
(`domain_results`) and the fingerprint that says two evaluations asked the same questions
(`evaluation_fingerprint`). training.evaluate produces completions with an engine and calls these;
the web side imports this module alone.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from training.answers import extract_final_answer, reward
from training.problems import DOMAINS, LEVELS, Domain, Problem, eval_set, problem_key, topics
from training.problems.registry import EvalSplit


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for z = 1.96)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def evaluation_problems(
    domains: Sequence[Domain],
    levels: Sequence[int],
    n_per_level: int,
    seed: int,
    topic_names: Sequence[str] | None = None,
    split: EvalSplit = "held_out",
) -> list[Problem]:
    """The problems of an evaluation, grouped by domain then level (all topics, or only
    `topic_names`; a domain with none of them contributes nothing), from the held-out side or
    from only its validation or test split (`eval_set`)."""
    return [
        p
        for d in domains
        for lvl in levels
        if topic_names is None or set(topics(d)) & set(topic_names)
        for p in eval_set(d, lvl, n_per_level, seed, topic_names, split)
    ]


def score_completions(
    problems: Sequence[Problem], completions: Sequence[str], finished: Sequence[bool]
) -> list[dict[str, Any]]:
    """Accuracy per (domain, level) with Wilson intervals, unfinished counts and per-topic hits.

    A completion that hit the length limit (`finished` False) scores 0 whatever it contains.
    """
    groups: dict[tuple[str, int], list[tuple[Problem, float, bool]]] = defaultdict(list)
    for problem, text, done in zip(problems, completions, finished, strict=True):
        score = reward(text, problem) if done else 0.0
        groups[(problem.domain, problem.level)].append((problem, score, done))
    results = []
    for (domain, level), rows in groups.items():
        correct = int(sum(score for _, score, _ in rows))
        low, high = wilson_interval(correct, len(rows))
        topics: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for problem, score, _ in rows:
            topics[problem.topic][0] += int(score)
            topics[problem.topic][1] += 1
        results.append(
            {
                "domain": domain,
                "level": level,
                "n": len(rows),
                "correct": correct,
                "accuracy": correct / len(rows),
                "ci95": [round(low, 4), round(high, 4)],
                "unfinished": sum(not done for _, _, done in rows),
                "by_topic": {t: {"correct": c, "n": n} for t, (c, n) in sorted(topics.items())},
            }
        )
    return results


def evaluation_report(
    engine: str,
    problems: Sequence[Problem],
    completions: Sequence[str],
    finished: Sequence[bool],
    *,
    n_per_level: int,
    seed: int,
    seconds: float,
    checkpoint: str | None,
    examples: int = 0,
    max_new_tokens: int | None = None,
) -> dict[str, Any]:
    """The report of one evaluation: rows per (domain, level), the overall accuracy with its
    Wilson interval, and the first `examples` completions; `max_new_tokens` is recorded when the
    answers were capped."""
    results = score_completions(problems, completions, finished)
    correct = sum(r["correct"] for r in results)
    total = sum(r["n"] for r in results)
    low, high = wilson_interval(correct, total)
    report: dict[str, Any] = {
        "engine": engine,
        "checkpoint": checkpoint,
        "decoding": "greedy",
        "n_per_level": n_per_level,
        "seed": seed,
        **({"max_new_tokens": max_new_tokens} if max_new_tokens is not None else {}),
        "seconds": round(seconds, 1),
        "results": results,
        "overall": {
            "n": total,
            "correct": correct,
            "accuracy": correct / max(total, 1),
            "ci95": [round(low, 4), round(high, 4)],
        },
    }
    if examples:
        report["examples"] = [
            {
                "statement": p.statement,
                "reference": p.answer,
                "extracted": extract_final_answer(c),
                "completion": c,
            }
            for p, c in list(zip(problems, completions, strict=True))[:examples]
        ]
    return report


def evaluation_fingerprint(*, n_per_level: int, seed: int, max_new_tokens: int | None) -> str:
    """SHA-256 of the held-out problems' keys (every domain and level) and the answer cap: equal
    fingerprints mean comparable evaluations (a gate compares a candidate with the champion only
    on equal terms)."""
    keys = [
        problem_key(p.statement) for p in evaluation_problems(DOMAINS, LEVELS, n_per_level, seed)
    ]
    keys.append(f"max_new_tokens={max_new_tokens}")
    return hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()


def domain_results(per_level: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`score_completions`' rows per (domain, level) -> one row per domain (what a promotion gate
    compares) with the levels kept under "by_level"; the domain's interval is the Wilson interval
    of the pooled counts."""
    out: dict[str, dict[str, Any]] = {}
    for row in sorted(per_level, key=lambda r: (r["domain"], r["level"])):
        domain = out.setdefault(row["domain"], {"n": 0, "correct": 0, "unfinished": 0})
        domain["n"] += row["n"]
        domain["correct"] += row["correct"]
        domain["unfinished"] += row.get("unfinished", 0)
        domain.setdefault("by_level", {})[str(row["level"])] = {
            "n": row["n"],
            "correct": row["correct"],
            "accuracy": row["accuracy"],
            "ci_low": row["ci95"][0],
            "ci_high": row["ci95"][1],
        }
    for domain in out.values():
        low, high = wilson_interval(domain["correct"], domain["n"])
        domain["accuracy"] = domain["correct"] / domain["n"] if domain["n"] else 0.0
        domain["ci_low"], domain["ci_high"] = round(low, 4), round(high, 4)
    return out
