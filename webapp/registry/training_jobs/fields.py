"""The launch form's hyper-parameters: each knob with its default (the trainer's documented ring-tiny
preset, training.c3po.config), its range and help, and the validation a job's values pass before it
is stored: defaults filled in, types and ranges checked, the trainer's own invariants applied."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

from training.c3po.config import Algorithm, C3POConfig
from webapp.core.errors import ServiceError
from webapp.registry.training_jobs.evaluation import evaluation_options


@dataclass(frozen=True)
class HyperparameterField:
    """One knob of the launch form: its default is the trainer's documented ring-tiny preset."""

    name: str
    label: str
    kind: str  # "int" | "float"
    default: float | int
    help: str
    minimum: float | int | None = None
    maximum: float | int | None = None
    config_field: bool = True  # a C3POConfig field (else a run option: steps, checkpointing)


def _preset() -> C3POConfig:
    return C3POConfig.ring_tiny()


def hyperparameter_fields() -> list[HyperparameterField]:
    """The knobs shown in the launch form, defaults from C3POConfig.ring_tiny() (documented in
    training/c3po/config.py and docs/c3po.md); the paper's Ring-lite value is named in the help."""
    tiny, lite = _preset(), C3POConfig.ring_lite()

    def paper(name: str) -> str:
        return f"Ring-lite paper: {getattr(lite, name)}."

    return [
        HyperparameterField(
            "steps", "Optimiser steps", "int", 20, "Updates per stage.", 1, 100_000, False
        ),
        HyperparameterField(
            "curation_problems",
            "Curation sample",
            "int",
            64,
            "Problems whose solve rate is estimated from K rollouts first; those always or "
            "never solved are dropped (docs/c3po-spec.md §6). 0 trains on every problem.",
            0,
            100_000,
            False,
        ),
        HyperparameterField(
            "checkpoint_every",
            "Checkpoint every",
            "int",
            5,
            "Steps between atomic checkpoints (and a last one at the end).",
            1,
            100_000,
            False,
        ),
        HyperparameterField(
            "budget_tokens",
            "Token budget Φ",
            "int",
            tiny.budget_tokens,
            "Tokens trained per update (C3PO). " + paper("budget_tokens"),
            1,
            10_000_000,
        ),
        HyperparameterField(
            "prompts_per_step",
            "Prompts per rollout (L)",
            "int",
            tiny.prompts_per_step,
            paper("prompts_per_step"),
            1,
            4096,
        ),
        HyperparameterField(
            "group_size",
            "Responses per prompt (K)",
            "int",
            tiny.group_size,
            paper("group_size"),
            2,
            256,
        ),
        HyperparameterField(
            "max_response_tokens",
            "Max response tokens",
            "int",
            tiny.max_response_tokens,
            paper("max_response_tokens"),
            8,
            65_536,
        ),
        HyperparameterField("lr", "Learning rate", "float", tiny.lr, paper("lr"), 1e-9, 1e-2),
        HyperparameterField(
            "warmup_steps",
            "Warm-up steps",
            "int",
            tiny.warmup_steps,
            "Linear lr warm-up.",
            0,
            10_000,
        ),
        HyperparameterField(
            "temperature",
            "Rollout temperature",
            "float",
            tiny.temperature,
            paper("temperature"),
            0.05,
            2.0,
        ),
        HyperparameterField(
            "eps_clip", "Clip ε", "float", tiny.eps_clip, paper("eps_clip"), 0.01, 0.99
        ),
        HyperparameterField(
            "kl_beta",
            "KL β",
            "float",
            tiny.kl_beta,
            "k3 KL to the frozen reference. " + paper("kl_beta"),
            0.0,
            1.0,
        ),
        HyperparameterField(
            "entropy_coef",
            "Entropy bonus α",
            "float",
            tiny.entropy_coef,
            paper("entropy_coef"),
            0.0,
            1.0,
        ),
        HyperparameterField(
            "micro_batch_size",
            "Micro-batch size",
            "int",
            tiny.micro_batch_size,
            "Responses per forward/backward (memory only, never the update).",
            1,
            1024,
        ),
        HyperparameterField(
            "lora_rank",
            "LoRA rank",
            "int",
            0,
            "0 fine-tunes every weight; r > 0 trains rank-r adapters on the attention and expert "
            "projections (the KL reference is the base with adapters off).",
            0,
            512,
            False,
        ),
        HyperparameterField(
            "activation_checkpointing",
            "Recompute activations",
            "int",
            0,
            "1 recomputes each decoder layer in backward (about a third more compute, a "
            "fraction of the activation memory); 0 keeps them.",
            0,
            1,
            False,
        ),
        HyperparameterField(
            "seed", "Seed", "int", 0, "Prompt order and sampling.", 0, 2**31 - 1, False
        ),
        HyperparameterField(
            "eval_max_new_tokens",
            "Eval answer cap (tokens)",
            "int",
            evaluation_options()["max_new_tokens"],
            "Longest held-out answer; longer is unfinished and scores 0 (default: what serving "
            "allows).",
            1,
            65_536,
            False,
        ),
        HyperparameterField(
            "eval_per_level",
            "Eval problems per level",
            "int",
            evaluation_options()["n_per_level"],
            "Held-out problems per domain and level for the evaluation after the job.",
            1,
            1000,
            False,
        ),
    ]


def validate_hyperparameters(
    *, stage: str, algorithm: str, hyperparameters: dict[str, Any]
) -> dict[str, Any]:
    """The full set of values the job will use: defaults filled in, types and ranges checked,
    and the trainer's own invariants (C3POConfig.__post_init__) applied. Unknown keys are refused
    so that a typo cannot be silently ignored."""
    fields = {f.name: f for f in hyperparameter_fields()}
    unknown = set(hyperparameters) - set(fields)
    if unknown:
        raise ServiceError(f"Unknown hyper-parameters: {', '.join(sorted(unknown))}.")
    values: dict[str, Any] = {}
    for name, spec in fields.items():
        raw = hyperparameters.get(name, spec.default)
        try:
            value = int(raw) if spec.kind == "int" else float(raw)
        except (TypeError, ValueError) as exc:
            raise ServiceError(f"{spec.label} must be a number.", code="invalid_value") from exc
        if spec.kind == "int" and isinstance(raw, float) and raw != int(raw):
            raise ServiceError(f"{spec.label} must be a whole number.", code="invalid_value")
        if spec.minimum is not None and value < spec.minimum:
            raise ServiceError(f"{spec.label} must be at least {spec.minimum}.", code="too_small")
        if spec.maximum is not None and value > spec.maximum:
            raise ServiceError(f"{spec.label} must be at most {spec.maximum}.", code="too_large")
        values[name] = value
    try:
        trainer_config(algorithm=algorithm, hyperparameters=values)
    except (AssertionError, TypeError, ValueError) as exc:
        raise ServiceError(
            f"The trainer refuses these hyper-parameters ({exc or 'invariant failed'}).",
            code="invalid_config",
        ) from exc
    return values


def trainer_config(*, algorithm: str, hyperparameters: dict[str, Any]) -> C3POConfig:
    """The C3POConfig of a job: the ring-tiny preset with the job's values."""
    config_names = {f.name for f in hyperparameter_fields() if f.config_field}
    overrides = {k: v for k, v in hyperparameters.items() if k in config_names}
    # validate_hyperparameters and the services have checked `algorithm` against catalog.ALGORITHMS.
    return dataclasses.replace(_preset(), algorithm=cast(Algorithm, algorithm), **overrides)
