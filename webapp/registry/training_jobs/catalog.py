"""The site's vocabulary for training jobs: the stages and algorithms an admin may launch, the
domains a stage draws from, how many optimiser steps a job takes, and the job page's charts.
Plain data (no trainer import); the bridge maps a stage to the trainer's stages."""

from __future__ import annotations

from typing import Any

from webapp.problems.models import Domain

# Ring-lite's order (docs/c3po-spec.md §4): RL on math first, then code + science jointly; a job runs one
# stage, or both in order ("staged", each stage `steps` long, the second starting from the
# first's final checkpoint). Long-CoT SFT is not launched from here: training.sft has no
# per-step observer (live metrics, cooperative cancel) yet; it runs from the command line.
STAGES: dict[str, str] = {
    "c3po-math": "C3PO stage 1: math",
    "c3po-code-science": "C3PO stage 2: code + science",
    "c3po-staged": "C3PO staged: math, then code + science",
}
DEFAULT_STAGE = "c3po-math"
# The domains a stage draws from when the admin does not narrow them (this site has no code
# problems yet, so stage 2 trains on science).
STAGE_DOMAINS: dict[str, list[str]] = {
    "c3po-math": ["math"],
    "c3po-code-science": ["science"],
    "c3po-staged": list(Domain.values),
}
ALGORITHMS: dict[str, str] = {"c3po": "C3PO (constant token budget Φ)", "grpo": "GRPO baseline"}
DOMAINS: dict[str, str] = dict(Domain.choices)


def total_steps(*, stage: str, hyperparameters: dict[str, Any]) -> int:
    """Optimiser steps over all of the job's stages (the pipeline counts steps across stages)."""
    per_stage = int(hyperparameters["steps"])
    return per_stage * (2 if stage == "c3po-staged" else 1)


# The job page's curves: each chart plots the metric keys the trainer reports every step
# (training.c3po.trainer.METRIC_KEYS).
METRIC_CHARTS: list[dict[str, Any]] = [
    {
        "id": "reward",
        "title": "Reward",
        "range": [0, 1],
        "series": [{"key": "reward_mean", "label": "mean reward"}],
    },
    {
        "id": "accuracy",
        "title": "Accuracy",
        "range": [0, 1],
        "series": [{"key": "accuracy", "label": "accuracy"}],
    },
    {"id": "entropy", "title": "Entropy", "series": [{"key": "entropy", "label": "token entropy"}]},
    {
        "id": "length",
        "title": "Response length",
        "series": [
            {"key": "response_length_mean", "label": "mean"},
            {"key": "response_length_max", "label": "max"},
        ],
    },
    {
        "id": "tokens",
        "title": "Tokens per step",
        "beginAtZero": True,
        "series": [{"key": "tokens_trained", "label": "trained"}],
    },
    {"id": "grad-norm", "title": "Gradient norm", "series": [{"key": "grad_norm", "label": "|g|"}]},
    {"id": "kl", "title": "KL to reference", "series": [{"key": "kl", "label": "k3 KL"}]},
    {
        "id": "clip",
        "title": "Clip fraction",
        "range": [0, 1],
        "series": [{"key": "clip_fraction", "label": "clipped"}],
    },
    {
        "id": "throughput",
        "title": "Throughput (tokens/s)",
        "beginAtZero": True,
        "series": [{"key": "tokens_per_s", "label": "trained tokens/s"}],
    },
]
