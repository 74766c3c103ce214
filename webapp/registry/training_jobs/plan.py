"""A job's memory plan on this site's training hosts (training.plan with settings TRAINING_*): what
the launch form shows, and the refusal of a job that cannot fit, with the smallest setup that would."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings

from training import plan as planning
from webapp.core.errors import ServiceError
from webapp.registry.training_jobs.fields import hyperparameter_fields

# Prompt length the plan assumes: the chat template, the reasoning suffix and a statement of a
# few hundred characters (ring-tiny's tokens are characters).
PLAN_PROMPT_TOKENS = 384


def device_memory_gib() -> float:
    """Each training device's memory: TRAINING_DEVICE_MEMORY_GIB, or this host's RAM."""
    configured = float(settings.TRAINING_DEVICE_MEMORY_GIB)
    if configured > 0:
        return configured
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def job_plan(*, base_model_path: str, hyperparameters: dict[str, Any]) -> Any:
    """training.plan's plan of a job on this site's training hosts (settings TRAINING_*)."""
    hp = {f.name: f.default for f in hyperparameter_fields()} | dict(hyperparameters)
    try:
        model = planning.load_model_shape(base_model_path)
    except (ValueError, OSError) as exc:
        raise ServiceError(f"Cannot read the base model's config: {exc}") from exc
    lora_rank = int(hp["lora_rank"])
    setup = planning.TrainingSetup(
        mode="lora" if lora_rank else "full",
        lora_rank=lora_rank or 16,
        world_size=int(settings.TRAINING_NPROC_PER_NODE) * int(settings.TRAINING_NNODES),
        gpu=planning.Gpu(memory_gib=device_memory_gib()),
        budget_tokens=int(hp["budget_tokens"]),
        prompts_per_step=int(hp["prompts_per_step"]),
        group_size=int(hp["group_size"]),
        max_response_tokens=int(hp["max_response_tokens"]),
        prompt_tokens=PLAN_PROMPT_TOKENS,
        micro_batch_size=int(hp["micro_batch_size"]),
        activation_checkpointing=bool(int(hp["activation_checkpointing"])),
        precision=settings.TRAINING_PRECISION,
        rollout_engine=settings.TRAINING_ROLLOUT_ENGINE,
    )
    return planning.make_plan(model, setup)


def plan_summary(plan: Any) -> dict[str, Any]:
    """The launch form's view of a plan: per-device rows in GiB, the total, whether it fits."""
    gib = 2**30
    return {
        "rows": [(name, value / gib) for name, value in plan.items.items()],
        "total": plan.total / gib,
        "capacity": plan.capacity / gib,
        "fits": plan.fits,
        "world_size": plan.setup.world_size,
        "mode": plan.setup.mode,
    }


def check_plan_fits(*, base_model_path: str, hyperparameters: dict[str, Any]) -> None:
    """Refuse a job whose plan does not fit a device, with the numbers and what would fit."""
    if not (Path(base_model_path) / "config.json").is_file():
        # Nothing to plan from; a checkpoint without its config fails when the job loads it.
        return
    plan = job_plan(base_model_path=base_model_path, hyperparameters=hyperparameters)
    if plan.fits:
        return
    gib = 2**30
    largest = [
        item
        for item in sorted(plan.items.items(), key=lambda item: -item[1])[:3]
        if item[1] >= 0.01 * plan.total
    ]
    parts = ", ".join(f"{name} {value / gib:.1f}" for name, value in largest)
    message = (
        f"This job needs {plan.total / gib:.1f} GiB per device ({parts} GiB) but a device has "
        f"{plan.capacity / gib:.1f} GiB usable."
    )
    smallest = planning.smallest_fitting(plan.model, plan.setup)
    if smallest is None:
        message += " No setup with micro-batch 1, activation recomputation and up to 64 ranks fits."
    else:

        def shown(value: Any) -> str:
            return ("on" if value else "off") if isinstance(value, bool) else str(value)

        changes = [
            f"{label} {shown(getattr(smallest, name))}"
            for name, label in (
                ("micro_batch_size", "micro-batch"),
                ("activation_checkpointing", "activation recomputation"),
                ("world_size", "ranks"),
                ("lora_rank", "LoRA rank"),
            )
            if getattr(smallest, name) != getattr(plan.setup, name)
        ]
        message += f" The smallest setup that fits: {', '.join(changes)}."
    raise ServiceError(message, code="does_not_fit")
