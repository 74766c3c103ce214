"""The one bridge between the site and the trainer (training.c3po, which never imports Django).

It knows the trainer's vocabulary so the rest of the app does not: the stages and algorithms an admin
may launch, the hyper-parameters with their documented defaults (from training.c3po.config, shown in
the launch form and validated here), how the site's pool of verified problems becomes the trainer's
problem records and held-out split, which metrics the job page plots, and how a job is run
(`run_training`: spec → training.c3po.pipeline.run_job with the JobRecorder's callbacks).

Counting the pool (the launch form, on every change) uses only the light, pure-Python split of
training.problems.base; torch is imported only where a job really runs, in the Celery worker.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from training.c3po.config import C3POConfig
from training.problems.base import problem_key, split_of_key
from webapp.core.errors import ServiceError
from webapp.problems.models import Domain
from webapp.problems.selectors import PoolProblem, training_pool_problems

if TYPE_CHECKING:
    from webapp.registry.models import TrainingJob
    from webapp.registry.training_services import JobRecorder

# Ring-lite's order (docs/c3po-spec.md §4): RL on math first, then code + science jointly; a job runs one
# stage, or both in order ("staged", each stage `steps` long, the second starting from the
# first's final checkpoint). Long-CoT SFT is not launched from here: training.sft has no
# per-step callbacks (live metrics, cooperative cancel) yet; it runs from the command line.
STAGES: dict[str, str] = {
    "c3po-math": "C3PO stage 1: math",
    "c3po-code-science": "C3PO stage 2: code + science",
    "c3po-staged": "C3PO staged: math, then code + science",
}
DEFAULT_STAGE = "c3po-math"
# stage → (the pipeline's StageSpec name, the domains it trains on)
STAGE_PIPELINE: dict[str, tuple[str, tuple[str, ...]]] = {
    "c3po-math": ("math", ("math",)),
    "c3po-code-science": ("science-code", ("science", "code")),
}
# The domains a stage draws from when the admin does not narrow them (this site has no code
# problems yet, so stage 2 trains on science).
STAGE_DOMAINS: dict[str, list[str]] = {
    "c3po-math": ["math"],
    "c3po-code-science": ["science"],
    "c3po-staged": list(Domain.values),
}
ALGORITHMS: dict[str, str] = {"c3po": "C3PO (constant token budget Φ)", "grpo": "GRPO baseline"}
DOMAINS: dict[str, str] = dict(Domain.choices)


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
    return dataclasses.replace(_preset(), algorithm=algorithm, **overrides)


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
    from training import plan as planning

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
    from training import plan as planning

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


def total_steps(*, stage: str, hyperparameters: dict[str, Any]) -> int:
    """Optimiser steps over all of the job's stages (the pipeline counts steps across stages)."""
    per_stage = int(hyperparameters["steps"])
    return per_stage * (2 if stage == "c3po-staged" else 1)


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


def _is_held_out(record: dict[str, Any]) -> bool:
    # training.problems' split on the pool's statement key (no torch): validation and test.
    return split_of_key(problem_key(record["statement"])) != "train"


def pool_split(*, problem_filter: dict[str, Any]) -> PoolSplit:
    """Pool problems matching the filter (domains, problem sets), de-duplicated by normalised
    statement, split into the training side and the held-out side that training never sees."""
    set_ids = set(problem_filter.get("problem_set_ids") or [])
    train, held_out, seen, duplicates = [], [], set(), 0
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
        side = "held_out" if _is_held_out(record) else "train"
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


def publish_checkpoint(*, source: Path, target: Path) -> Path:
    """Give a checkpoint a permanent home (`<job output dir>/versions/step-N/`).

    The trainer keeps only its last few checkpoints (and its training state) and prunes the
    rest, so a registered version must not point at them. Files are hard-linked (instant, no
    extra space; copied across file systems), leaving out the optimiser state that serving never
    needs. Written aside and renamed, so a version directory is either complete or absent; an
    existing one (the same checkpoint announced again after a resume) is kept.
    """
    from training.c3po.trainer import TRAINING_STATE_NAME

    if target.is_dir():
        return target
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    for item in Path(source).iterdir():
        if item.name == TRAINING_STATE_NAME:
            continue
        if item.is_dir():
            shutil.copytree(item, staging / item.name, copy_function=link_or_copy)
        else:
            link_or_copy(str(item), str(staging / item.name))
    os.replace(staging, target)
    return target


def _stages(stage: str, hyperparameters: dict[str, Any]) -> list[Any]:
    from training.c3po.pipeline import StageSpec, default_stages

    steps = int(hyperparameters["steps"])
    if stage == "c3po-staged":
        return default_stages(steps)
    name, domains = STAGE_PIPELINE[stage]
    return [StageSpec(name, domains, steps)]


def job_spec(*, job: TrainingJob) -> tuple[Any, dict[str, Any]]:
    """The trainer's JobSpec for a job, and what to record on the job (TrainingJob.spec).

    The problem records are frozen at the first run (recorded on the job), so that a resumed run
    trains on exactly the same list even if teachers changed the pool in between.
    """
    from training.c3po.pipeline import JobSpec

    recorded = job.spec or {}
    if recorded.get("problems"):
        problems = recorded["problems"]
    else:
        split = pool_split(problem_filter=job.problem_filter)
        problems = split.train
        recorded = {
            "problems": problems,
            "held_out_ids": [r["id"] for r in split.held_out],
            "sources": split.sources,
            "set_provenance": split.sets,
            "duplicates_dropped": split.duplicates,
        }
    if not problems:
        raise ServiceError("No problem in the training pool matches this job's filter.")
    hp = job.hyperparameters
    spec = JobSpec(
        base_checkpoint=job.base_model.path,
        output_dir=job.output_dir,
        problems=problems,
        stages=_stages(job.stage, hp),
        config=trainer_config(algorithm=job.algorithm, hyperparameters=hp),
        seed=int(hp["seed"]),
        checkpoint_every=int(hp["checkpoint_every"]),
        curate_with_rollouts=int(hp["curation_problems"]) > 0,
        max_curated_problems=int(hp["curation_problems"]) or None,
        engine=settings.TRAINING_ROLLOUT_ENGINE,
        lora_rank=int(hp.get("lora_rank", 0)),
        activation_checkpointing=bool(int(hp.get("activation_checkpointing", 0))),
    )
    recorded["job_spec"] = spec.to_dict()
    return spec, recorded


def run_training(*, job: TrainingJob, recorder: JobRecorder) -> None:
    """Run (or resume) `job` with training.c3po.pipeline.run_job, reporting through `recorder`.

    run_job resumes by itself from the job's output directory (finished stages skipped, the
    interrupted one from its last atomic checkpoint). A cancel makes it return early; real errors
    (an unreadable checkpoint, an engine mismatch) propagate and fail the job.
    """
    from training.c3po.pipeline import JobCallbacks, run_job

    spec, recorded = job_spec(job=job)
    recorder.record_spec(recorded)
    # The launch form counted the pool's held-out problems; the trainer only ever sees the
    # training side, so say here what the form said (the trainer's own split finds none left).
    recorder.log(
        f"pool: {len(recorded.get('problems', []))} problems to train on, "
        f"{len(recorded.get('held_out_ids', []))} held out for evaluation (never trained on), "
        f"{recorded.get('duplicates_dropped', 0)} duplicates dropped"
    )

    def checkpoint_written(path: str, info: dict[str, Any]) -> None:
        step = int(info["step"])
        published = publish_checkpoint(
            source=Path(path), target=Path(job.output_dir) / "versions" / f"step-{step:06d}"
        )
        manifest_path = published / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        manifest = {
            "step": step,
            "stage": info.get("stage"),
            "stage_step": info.get("stage_step"),
            "run_checkpoint": str(path),
            **{k: manifest[k] for k in ("c3po", "c3po_job", "created_at") if k in manifest},
        }
        recorder.checkpoint_written(step, str(published), manifest)

    callbacks = JobCallbacks(
        metrics=recorder.step_finished,
        log=recorder.log,
        sample=recorder.samples_taken,
        should_stop=recorder.should_stop,
        checkpoint_written=checkpoint_written,
    )
    nproc = int(settings.TRAINING_NPROC_PER_NODE)
    nnodes = int(settings.TRAINING_NNODES)
    if nproc * nnodes <= 1:
        run_job(spec, callbacks)
        return
    # A process group (training/c3po/launch.py): every rank beats a file in <job>/control/; a dead
    # or silent rank raises RankFailure, which fails the job with the rank named; resuming the
    # job runs the same spec again, from the last checkpoint.
    from training.c3po.launch import Rendezvous, run_under_torchrun

    recorder.log(f"starting {nproc * nnodes} ranks ({nnodes} node(s) × {nproc}) under torchrun")
    run_under_torchrun(
        spec,
        callbacks,
        nproc_per_node=nproc,
        control_dir=Path(job.output_dir) / "control",
        rendezvous=Rendezvous(
            nnodes=nnodes,
            node_rank=int(settings.TRAINING_NODE_RANK),
            endpoint=settings.TRAINING_RDZV_ENDPOINT,
            rdzv_id=settings.TRAINING_RDZV_ID,
        ),
        stale_after_seconds=float(settings.TRAINING_STALE_SECONDS),
    )


def evaluation_options(
    *, n_per_level: int | None = None, max_new_tokens: int | None = None, seed: int | None = None
) -> dict[str, int]:
    """The protocol of an evaluation: training.evaluate's generated held-out sets (every domain
    and level, `n_per_level` problems each) and the longest answer allowed, by default what
    serving allows (settings.INFERENCE["MAX_NEW_TOKENS"]): a longer answer is unfinished and
    scores 0. Defaults may be overridden by settings.REGISTRY_EVALUATION."""
    configured = settings.REGISTRY_EVALUATION
    serving_cap = settings.INFERENCE["MAX_NEW_TOKENS"]
    return {
        "n_per_level": int(n_per_level or configured["N_PER_LEVEL"]),
        "max_new_tokens": int(max_new_tokens or configured.get("MAX_NEW_TOKENS", serving_cap)),
        "seed": int(seed if seed is not None else configured["SEED"]),
    }


def _evaluation_problems(options: dict[str, int]) -> list[Any]:
    from training.problems import DOMAINS, LEVELS, eval_set

    # training.evaluate.evaluation_problems, inlined: importing training.evaluate pulls in torch,
    # which the web process (where evaluations are requested) should not load.
    n, seed = options["n_per_level"], options["seed"]
    return [p for d in DOMAINS for lvl in LEVELS for p in eval_set(d, lvl, n, seed)]


def evaluation_fingerprint(options: dict[str, int]) -> str:
    """SHA-256 of the held-out problems' keys and the answer cap: equal fingerprints mean
    comparable evaluations (the gate compares a candidate with the champion on equal terms)."""
    import hashlib

    keys = [problem_key(p.statement) for p in _evaluation_problems(options)]
    keys.append(f"max_new_tokens={options.get('max_new_tokens')}")
    return hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()


def domain_results(per_level: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """training.evaluate's rows per (domain, level) → one row per domain (what the gate compares)
    with the levels kept under "by_level"; the domain's interval is the Wilson interval of the
    pooled counts."""
    from training.evaluate import wilson_interval

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


def held_out_evaluation(*, model_path: str, options: dict[str, int]) -> dict[str, Any]:
    """Evaluate a checkpoint on training.evaluate's held-out sets (never trained on: the split of
    training.problems.base), greedy, answers capped at options["max_new_tokens"]; returns a report
    shaped like training.evaluate's.

    The engine is ringmodel's batched sampling in the Celery worker (settings
    REGISTRY_EVALUATION["ENGINE"] = "vllm" on GPU hosts, where training.evaluate starts an engine;
    it decodes up to the model's context). The ringmodel loop is training.evaluate's with the cap
    added (evaluate_with_ringmodel always decodes to the full context, which for a model that
    rarely stops costs minutes per problem batch on a CPU).
    """
    import time

    from ringmodel import load_checkpoint
    from ringmodel.chat import build_prompt_ids
    from ringmodel.generation import sample
    from training.evaluate import evaluate_with_vllm, score_completions, wilson_interval

    if not Path(model_path).exists():
        raise ServiceError(f"The checkpoint {model_path} is not on this machine.")
    configured = settings.REGISTRY_EVALUATION
    if configured["ENGINE"] == "vllm":
        return evaluate_with_vllm(
            model_path, n_per_level=options["n_per_level"], seed=options["seed"], examples=3
        )
    started = time.perf_counter()
    model, tokenizer, _ = load_checkpoint(model_path)
    problems = _evaluation_problems(options)
    batch_size = int(configured["BATCH_SIZE"])
    context = model.config.max_position_embeddings
    # Sorting by prompt length keeps padding small inside each batch.
    order = sorted(range(len(problems)), key=lambda i: len(problems[i].statement))
    outputs: dict[int, tuple[str, bool]] = {}
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        prompts = [build_prompt_ids(tokenizer, problems[i].statement) for i in indices]
        room = context - max(len(p) for p in prompts)
        samples = sample(
            model,
            prompts,
            max_new_tokens=max(1, min(options["max_new_tokens"], room)),
            temperature=0.0,
            eos_token_id=tokenizer.eos_token_id,
        )
        for i, out in zip(indices, samples, strict=True):
            outputs[i] = (tokenizer.decode(out.token_ids, skip_special_tokens=True), out.finished)
    completions = [outputs[i][0] for i in range(len(problems))]
    finished = [outputs[i][1] for i in range(len(problems))]
    results = score_completions(problems, completions, finished)
    correct = sum(r["correct"] for r in results)
    total = sum(r["n"] for r in results)
    low, high = wilson_interval(correct, total)
    return {
        "engine": "ringmodel",
        "checkpoint": model_path,
        "decoding": "greedy",
        **options,
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
        "overall": {
            "n": total,
            "correct": correct,
            "accuracy": correct / max(total, 1),
            "ci95": [round(low, 4), round(high, 4)],
        },
        "examples": [
            {"statement": p.statement, "reference": p.answer, "completion": c}
            for p, c in list(zip(problems, completions, strict=True))[:3]
        ],
    }
