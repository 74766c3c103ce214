"""Staged C3PO jobs: the entry point (`run_job`) that the Celery training task calls.

Ring-lite's recipe (docs/c3po-spec.md §4): after Long-CoT SFT, RL stage 1 trains on math only, then stage 2
on code and science jointly; each stage has its own data, budget and length cap, and starts from
the previous stage's final checkpoint. A job is described by a `JobSpec` (plain data, so the
Django side can build it from a form and a queryset of verified problems) and reports through
a `training.observer.TrainingObserver` (steps counted across stages; metrics carry "stage_index"
and "stage_step", samples their "stage", checkpoints {"stage", "stage_step", "step"}). Every stage writes into its own directory under the job's output directory and
the job records its progress in `job_state.json`, so running the same spec again resumes: finished
stages are skipped and the interrupted one continues from its last checkpoint.

Per stage: problems of the stage's domains are de-duplicated, the held-out split is set aside,
and (optionally) problems the stage's start model always or never solves are dropped after K
rollouts (`data.curate`); then `C3POTrainer` runs the stage's steps. Optionally the job first
picks its start among SFT epoch checkpoints by entropy (`start_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ringmodel import load_checkpoint
from ringmodel.checkpoint import MANIFEST_NAME
from training.c3po.activation_checkpointing import apply_activation_checkpointing
from training.c3po.config import C3POConfig
from training.c3po.data import CurationReport, RLProblem, as_rl_problem, curate
from training.c3po.distributed import Communicator, SingleProcess
from training.c3po.lora import LoraSpec, apply_lora, save_merged_checkpoint
from training.c3po.rollout import PolicyRolloutEngine, RolloutEngine, VllmRolloutEngine
from training.c3po.start_checkpoint import PAPER_BAND, Preference, select_start_checkpoint
from training.c3po.trainer import C3POTrainer, latest_checkpoint
from training.observer import RankBeat, SilentObserver, TrainingObserver

JOB_STATE_NAME = "job_state.json"
EngineName = Literal["policy", "vllm"]


@dataclass
class StageSpec:
    """One RL stage: which domains it trains on, for how many optimiser steps, and its own
    overrides of the job's `C3POConfig` (e.g. budget_tokens, max_response_tokens)."""

    name: str
    domains: tuple[str, ...]
    steps: int
    overrides: dict[str, Any] = field(default_factory=dict)


def default_stages(steps_per_stage: int = 50, **overrides: Any) -> list[StageSpec]:
    """Ring-lite's order: math first, then science and code together (docs/c3po-spec.md §4).

    `overrides` apply to both stages; give a stage its own (e.g. Ring-lite's stage-2
    max_response_tokens=32768) by editing its `overrides`. A stage whose domains have no
    problems (this project has no code problems yet) trains on the domains that do.
    """
    return [
        StageSpec("math", ("math",), steps_per_stage, dict(overrides)),
        StageSpec("science-code", ("science", "code"), steps_per_stage, dict(overrides)),
    ]


@dataclass
class JobSpec:
    """Everything a C3PO job needs; plain data (JSON-able through `to_dict`).

    base_checkpoint: the SFT checkpoint RL starts from (ignored when `start_candidates` is set).
    output_dir: where stages, checkpoints, TensorBoard logs and the job state go.
    problems: the pool (dicts, `training.problems.Problem`s or `RLProblem`s); each stage takes
        the problems of its domains. Held-out problems (hash split) are never trained on.
    stages: `default_stages()` unless given.
    config: the job's `C3POConfig` (stage overrides apply on top); ring-tiny's preset by default.
    keep_checkpoints: 0 keeps every checkpoint; N > 0 only each stage's newest N.
    curate_with_rollouts: drop problems the stage's start model always/never solves, estimated
        from `curation_group_size` rollouts of at most `max_curated_problems` problems.
    start_candidates / entropy_band / entropy_prefer / entropy_prompts: pick the start among SFT
        epoch checkpoints by entropy on the stage-1 prompts (docs/c3po-spec.md §3).
    engine: "policy" (ringmodel sampling; the CPU default) or "vllm" (GPU hosts).
    lora_rank: 0 fine-tunes every weight; r > 0 trains rank-r LoRA adapters (training/c3po/lora.py)
        and every checkpoint is an adapter plus a merged full checkpoint for serving.
    activation_checkpointing: recompute each decoder layer in backward (memory for compute).
    """

    base_checkpoint: str
    output_dir: str
    problems: Sequence[Any]
    stages: list[StageSpec] = field(default_factory=default_stages)
    config: C3POConfig = field(default_factory=C3POConfig.ring_tiny)
    seed: int = 0
    checkpoint_every: int = 10
    keep_checkpoints: int = 0
    curate_with_rollouts: bool = True
    curation_group_size: int = 8
    max_curated_problems: int | None = 64
    start_candidates: list[str] | None = None
    entropy_band: tuple[float, float] = PAPER_BAND
    entropy_prefer: Preference = "least_trained"
    entropy_prompts: int = 32
    engine: EngineName = "policy"
    torch_threads: int | None = None
    lora_rank: int = 0
    activation_checkpointing: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "base_checkpoint": self.base_checkpoint,
            "output_dir": self.output_dir,
            "problems": len(self.problems),
            "stages": [dataclasses.asdict(s) for s in self.stages],
            "config": self.config.to_dict(),
            "seed": self.seed,
            "checkpoint_every": self.checkpoint_every,
            "keep_checkpoints": self.keep_checkpoints,
            "curate_with_rollouts": self.curate_with_rollouts,
            "curation_group_size": self.curation_group_size,
            "max_curated_problems": self.max_curated_problems,
            "start_candidates": self.start_candidates,
            "entropy_band": list(self.entropy_band),
            "entropy_prefer": self.entropy_prefer,
            "engine": self.engine,
            "lora_rank": self.lora_rank,
            "activation_checkpointing": self.activation_checkpointing,
        }


@dataclass
class StageResult:
    name: str
    steps: int
    final_checkpoint: str | None
    train_problems: int
    held_out_problems: int
    skipped: str | None = None


@dataclass
class JobResult:
    """How the job ended. `final_checkpoint` is the last stage's last checkpoint (None if no
    stage trained); `stopped` is True when should_stop() ended it early."""

    final_checkpoint: str | None
    stopped: bool
    stages: list[StageResult]
    start_checkpoint: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _atomic_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def _stage_dir(output_dir: Path, index: int, stage: StageSpec) -> Path:
    return output_dir / f"stage-{index + 1}-{stage.name}"


def _make_engine(name: EngineName, policy: Any, tokenizer: Any, work_dir: Path) -> RolloutEngine:
    eos = int(tokenizer.eos_token_id)
    if name == "vllm":
        return VllmRolloutEngine(policy, tokenizer, eos_token_id=eos, work_dir=work_dir)
    return PolicyRolloutEngine(policy, eos_token_id=eos)


def _merged_path(adapter_checkpoint: Path) -> Path:
    """Where a LoRA checkpoint's merged full copy lives: `<stage>/merged/step-NNNNNN`."""
    return adapter_checkpoint.parent.parent / "merged" / adapter_checkpoint.name


class _StageObserver:
    """The job's observer as one stage's trainer sees it: the stage's steps become the job's
    (offset by the steps of the stages before), metrics and samples name their stage, and a LoRA
    checkpoint is merged into a full copy before it is announced."""

    def __init__(
        self,
        job: TrainingObserver,
        *,
        index: int,
        name: str,
        offset: int,
        start: str,
        merge_lora: bool,
    ) -> None:
        self.job, self.index, self.name, self.offset = job, index, name, offset
        self.start, self.merge_lora = start, merge_lora

    def metrics(self, step: int, metrics: dict[str, float]) -> None:
        enriched = {**metrics, "stage_index": float(self.index), "stage_step": float(step)}
        self.job.metrics(self.offset + step, enriched)

    def log(self, line: str) -> None:
        self.job.log(line)

    def samples(self, step: int, samples: list[dict[str, Any]]) -> None:
        self.job.samples(self.offset + step, [{**s, "stage": self.name} for s in samples])

    def checkpoint_written(self, step: int, path: str, info: dict[str, Any]) -> None:
        if self.merge_lora:
            # The adapter resumes the run; the merged copy is what evaluation, the registry
            # and a serving engine without LoRA support load (docs/c3po.md, "LoRA").
            merged = _merged_path(Path(path))
            # A resumed run announces its checkpoint again; a merged copy is written whole
            # (renamed in) and only ever after its adapter, so one that exists is this one's.
            if not (merged / MANIFEST_NAME).is_file():
                save_merged_checkpoint(
                    base_checkpoint=self.start,
                    adapter_dir=Path(path),
                    path=merged,
                    manifest_extra={"c3po_job": {"stage": self.name, "start": self.start}},
                )
            path = str(merged)
        info = {"stage": self.name, "stage_step": step, "step": self.offset + step}
        self.job.checkpoint_written(self.offset + step, path, info)

    def resumed(self, step: int) -> None:
        self.job.resumed(self.offset + step)

    def should_stop(self) -> bool:
        return self.job.should_stop()

    def rank_heartbeats(self, beats: list[RankBeat]) -> None:
        self.job.rank_heartbeats(beats)


def _stage_problems(
    spec: JobSpec,
    stage: StageSpec,
    pool: list[RLProblem],
    stage_dir: Path,
    policy: Any,
    tokenizer: Any,
    config: C3POConfig,
    log: Callable[[str], None],
) -> CurationReport:
    """The stage's curated training problems; cached in curation.json so a resume reuses them."""
    record_path = stage_dir / "curation.json"
    domain_pool = [p for p in pool if p.domain in stage.domains]
    if record_path.is_file():
        saved = json.loads(record_path.read_text())
        by_id = {p.problem_id: p for p in domain_pool}
        train = [by_id[i] for i in saved["train_ids"] if i in by_id]
        held = [by_id[i] for i in saved["held_out_ids"] if i in by_id]
        log(f"stage {stage.name}: reusing curation ({len(train)} training problems)")
        return CurationReport(train=train, held_out=held)
    engine = None
    if spec.curate_with_rollouts:
        engine = PolicyRolloutEngine(policy, eos_token_id=int(tokenizer.eos_token_id))
    report = curate(
        domain_pool,
        engine=engine,
        tokenizer=tokenizer,
        group_size=spec.curation_group_size,
        max_new_tokens=config.max_response_tokens,
        temperature=config.temperature,
        seed=spec.seed,
        max_estimated=spec.max_curated_problems,
    )
    payload = report.to_dict()
    payload["train_ids"] = [p.problem_id for p in report.train]
    payload["held_out_ids"] = [p.problem_id for p in report.held_out]
    stage_dir.mkdir(parents=True, exist_ok=True)
    _atomic_json(record_path, payload)
    # A pool that was split before the job (the site's) has nothing left to hold out here: a
    # "0 held out" would contradict the count the job was launched with.
    held = f"{len(report.held_out)} held out, " if report.held_out else ""
    log(
        f"stage {stage.name}: {len(domain_pool)} problems, {report.duplicates_dropped} duplicates, "
        f"{held}{len(report.always_solved)} always solved, "
        f"{len(report.never_solved)} never solved -> {len(report.train)} to train on"
    )
    return report


def run_job(
    spec: JobSpec,
    observer: TrainingObserver | None = None,
    communicator: Communicator | None = None,
) -> JobResult:
    """Run (or resume) a staged C3PO job; see the module docstring. Raises on real errors
    (bad checkpoint, engine mismatch); a cancel returns normally with `stopped=True`.

    In a data-parallel run every rank calls this with the same spec and its `communicator`;
    rank 0 alone writes the job's records and reports to `observer`."""
    observer = observer or SilentObserver()
    comm = communicator or SingleProcess()
    output_dir = Path(spec.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if spec.torch_threads:
        torch.set_num_threads(spec.torch_threads)

    def log(line: str) -> None:
        if comm.is_main:
            observer.log(line)

    def write_state(payload: dict[str, Any]) -> None:
        if comm.is_main:
            _atomic_json(state_path, payload)

    state_path = output_dir / JOB_STATE_NAME
    state: dict[str, Any] = (
        json.loads(state_path.read_text()) if state_path.is_file() else {"stages": {}}
    )
    state["spec"] = spec.to_dict()
    pool = [as_rl_problem(p) for p in spec.problems]

    start = state.get("start_checkpoint")
    if start is None:
        start = spec.base_checkpoint
        if spec.start_candidates:
            first_domains = spec.stages[0].domains if spec.stages else ("math",)
            prompts = [p.statement for p in pool if p.domain in first_domains]
            choice = select_start_checkpoint(
                spec.start_candidates,
                prompts[: spec.entropy_prompts],
                band=spec.entropy_band,
                prefer=spec.entropy_prefer,
                record_path=output_dir / "start_checkpoint.json",
                max_new_tokens=spec.config.max_response_tokens,
                seed=spec.seed,
                log=log,
            )
            start = choice.checkpoint
            log(f"start checkpoint: {start} ({choice.reason})")
        state["start_checkpoint"] = start
        write_state(state)

    results: list[StageResult] = []
    current = start
    global_offset = 0
    stopped = False
    for index, stage in enumerate(spec.stages):
        stage_dir = _stage_dir(output_dir, index, stage)
        done = state["stages"].get(stage.name)
        if done and done.get("complete"):
            results.append(StageResult(**done["result"]))
            current = done["result"]["final_checkpoint"] or current
            global_offset += stage.steps
            continue
        config = dataclasses.replace(spec.config, **stage.overrides)
        # The stage's start: the previous stage's end (or the job's start). On resume the
        # trainer reloads its own latest checkpoint on top.
        policy, tokenizer, _ = load_checkpoint(current)
        policy.float()
        # One rank curates (its rollouts are seeded, but one answer must hold for all ranks).
        report = None
        if comm.is_main:
            report = _stage_problems(spec, stage, pool, stage_dir, policy, tokenizer, config, log)
        report = comm.broadcast_object(report)
        if not report.train:
            reason = f"no trainable problems in domains {list(stage.domains)}"
            log(f"stage {stage.name}: skipped, {reason}")
            result = StageResult(stage.name, 0, None, 0, len(report.held_out), skipped=reason)
            results.append(result)
            state["stages"][stage.name] = {"complete": True, "result": dataclasses.asdict(result)}
            write_state(state)
            global_offset += stage.steps
            continue

        stage_observer = _StageObserver(
            observer,
            index=index,
            name=stage.name,
            offset=global_offset,
            start=current,
            merge_lora=bool(spec.lora_rank),
        )
        if spec.lora_rank:
            policy = apply_lora(policy, LoraSpec(rank=spec.lora_rank, alpha=2 * spec.lora_rank))
        if spec.activation_checkpointing:
            apply_activation_checkpointing(policy)
        engine = _make_engine(spec.engine, policy, tokenizer, stage_dir / "engine")
        trainer = C3POTrainer(
            policy=policy,
            tokenizer=tokenizer,
            problems=report.train,
            config=config,
            output_dir=stage_dir,
            engine=engine,
            observer=stage_observer,
            seed=spec.seed + index,
            checkpoint_every=spec.checkpoint_every,
            keep_checkpoints=spec.keep_checkpoints,
            manifest_extra={"c3po_job": {"stage": stage.name, "start": current}},
            communicator=comm,
            base_checkpoint=current,
        )
        try:
            if trainer.resume():
                log(f"stage {stage.name}: resumed at step {trainer.step}")
            else:
                log(f"stage {stage.name}: {stage.steps} steps from {current}")
            outcome = trainer.train(stage.steps)
        finally:
            trainer.close()
            engine.close()
        final = latest_checkpoint(stage_dir)
        if final is not None and spec.lora_rank:
            final = _merged_path(final)
        comm.barrier()
        result = StageResult(
            name=stage.name,
            steps=outcome.step,
            final_checkpoint=str(final) if final else None,
            train_problems=len(report.train),
            held_out_problems=len(report.held_out),
        )
        results.append(result)
        if outcome.stopped:
            stopped = True
            state["stages"][stage.name] = {"complete": False, "result": dataclasses.asdict(result)}
            write_state(state)
            break
        state["stages"][stage.name] = {"complete": True, "result": dataclasses.asdict(result)}
        write_state(state)
        current = result.final_checkpoint or current
        global_offset += stage.steps

    trained = [r.final_checkpoint for r in results if r.final_checkpoint]
    job = JobResult(
        final_checkpoint=trained[-1] if trained else None,
        stopped=stopped,
        stages=results,
        start_checkpoint=start,
    )
    state["result"] = job.to_dict()
    write_state(state)
    log(f"job {'stopped' if stopped else 'finished'}: {job.final_checkpoint}")
    return job
