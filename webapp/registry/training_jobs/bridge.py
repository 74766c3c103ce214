"""The bridge: the one module of the site that runs the trainer (training.c3po, which never imports
Django) and the evaluation engines, so the only one that reaches torch.

It turns a TrainingJob into the trainer's JobSpec (the pool frozen at the first run, the stage's
trainer stages, the C3POConfig of the job's values), runs it in-process or as a torchrun process
group with the job's observer (recorder.JobRecorder, a training.observer.TrainingObserver), gives
each announced checkpoint a permanent home, and evaluates a checkpoint on the held-out sets.
torch, ringmodel's models and the pipeline are imported inside the functions that need them: the
web processes import this module (through the services) without loading them; only the Celery
worker that runs a job or an evaluation does.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from webapp.core.errors import ServiceError
from webapp.registry.liveness import local_process_state, this_host
from webapp.registry.training_jobs.fields import trainer_config
from webapp.registry.training_jobs.pool import pool_split

if TYPE_CHECKING:
    from webapp.registry.models import TrainingJob
    from webapp.registry.training_jobs.recorder import JobRecorder

# stage → (the pipeline's StageSpec name, the domains it trains on)
STAGE_PIPELINE: dict[str, tuple[str, tuple[str, ...]]] = {
    "c3po-math": ("math", ("math",)),
    "c3po-code-science": ("science-code", ("science", "code")),
}


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
    """Run (or resume) `job` with training.c3po.pipeline.run_job, reporting to `recorder` (the
    job's training.observer.TrainingObserver).

    run_job resumes by itself from the job's output directory (finished stages skipped, the
    interrupted one from its last atomic checkpoint). A cancel makes it return early; real errors
    (an unreadable checkpoint, an engine mismatch) propagate and fail the job.
    """
    from training.c3po.pipeline import run_job

    spec, recorded = job_spec(job=job)
    recorder.record_spec(recorded)
    # The launch form counted the pool's held-out problems; the trainer only ever sees the
    # training side, so say here what the form said (the trainer's own split finds none left).
    recorder.log(
        f"pool: {len(recorded.get('problems', []))} problems to train on, "
        f"{len(recorded.get('held_out_ids', []))} held out for evaluation (never trained on), "
        f"{recorded.get('duplicates_dropped', 0)} duplicates dropped"
    )
    nproc = int(settings.TRAINING_NPROC_PER_NODE)
    nnodes = int(settings.TRAINING_NNODES)
    if nproc * nnodes <= 1:
        run_job(spec, recorder)
        return
    # A process group (training/c3po/launch.py): every rank beats a file in <job>/control/; a dead
    # or silent rank raises RankFailure, which fails the job with the rank named; resuming the
    # job runs the same spec again, from the last checkpoint.
    from training.c3po.launch import Rendezvous, run_under_torchrun

    recorder.log(f"starting {nproc * nnodes} ranks ({nnodes} node(s) × {nproc}) under torchrun")
    run_under_torchrun(
        spec,
        recorder,
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
    _remove_abandoned_staging(target)  # this process's own from an earlier try included
    staging = target.parent / f"{_staging_prefix(target)}{this_host()}-{os.getpid()}"
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


def _staging_prefix(target: Path) -> str:
    return f".{target.name}.tmp-"


def _remove_abandoned_staging(target: Path) -> None:
    """A publisher killed while copying leaves its staging directory behind (across file systems,
    a whole model's worth of disk); the run that resumes publishes the same checkpoint again.
    Staging of a process on this host that is gone is removed, and this process's own (a try
    that failed: `local_process_state` counts our pid as not running it any more); another
    host's is left, since this one cannot tell whether it is still copying."""
    prefix = _staging_prefix(target)
    for leftover in target.parent.glob(f"{prefix}*"):
        host, _, pid = leftover.name[len(prefix) :].rpartition("-")
        if pid.isdigit() and local_process_state(host, int(pid)) is False:
            shutil.rmtree(leftover, ignore_errors=True)


def held_out_evaluation(*, model_path: str, options: dict[str, int]) -> dict[str, Any]:
    """Evaluate a checkpoint on training.evaluate's held-out sets (never trained on), greedy,
    answers capped at options["max_new_tokens"]; returns training.evaluate's report.

    The engine is ringmodel's batched sampling in the Celery worker, or vLLM where
    settings.REGISTRY_EVALUATION["ENGINE"] = "vllm" (GPU hosts; it decodes up to the model's
    context).
    """
    from ringmodel import load_checkpoint
    from training.evaluate import evaluate_with_ringmodel, evaluate_with_vllm

    if not Path(model_path).exists():
        raise ServiceError(f"The checkpoint {model_path} is not on this machine.")
    configured = settings.REGISTRY_EVALUATION
    if configured["ENGINE"] == "vllm":
        return evaluate_with_vllm(
            model_path, n_per_level=options["n_per_level"], seed=options["seed"], examples=3
        )
    model, tokenizer, _ = load_checkpoint(model_path)
    return evaluate_with_ringmodel(
        model,
        tokenizer,
        n_per_level=options["n_per_level"],
        seed=options["seed"],
        batch_size=int(configured["BATCH_SIZE"]),
        checkpoint=model_path,
        examples=3,
        max_new_tokens=options["max_new_tokens"],
    )
