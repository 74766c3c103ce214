"""The C3PO reinforcement-learning loop (and its GRPO baseline, same code with the budget off).

One `C3POTrainer.train_step` is one optimiser update:

1. Rollouts: when the buffer holds fewer than Φ tokens, draw L prompts and sample K responses each
   through the `RolloutEngine` (all K×L in one batch), score them with the verifier's reward,
   compute GRPO advantages on the complete groups, and recompute the behaviour policy's and the
   frozen reference's log-probs of every response token (teacher-forced). `underfill="carry"`
   repeats this until Φ tokens are queued.
2. Selection: `RolloutBuffer.take` walks the queue group by group and cuts at exactly Φ tokens
   (C3PO) or takes everything (GRPO).
3. Update: micro-batched forward/backward of `core_algos.c3po_loss`; every micro-batch's loss is
   divided by the GLOBAL Φ (or, for GRPO, the update's global valid-token count), so the summed
   gradient equals that of one big batch. Grad clipping, AdamW, warm-up then constant lr.
4. The engine is refreshed with the new weights (and verified, for vLLM), metrics go to the
   observer (training.observer), TensorBoard and metrics.jsonl, and every N steps an atomic checkpoint is written.

Checkpoints live in `<output_dir>/checkpoints/step-NNNNNN/` (ringmodel's HF layout plus
`training_state.pt`: optimiser, RNG, prompt sampler, rollout buffer, step); `latest.json` names
the last complete one and is replaced atomically after the checkpoint is fully on disk, so a
killed job resumes (`C3POTrainer.resume`) from its last checkpoint and never from a torn one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ringmodel import save_checkpoint
from ringmodel.modeling_bailing_moe import BailingMoeForCausalLM
from training.answers import reward as verifier_reward
from training.c3po.config import C3POConfig
from training.c3po.core_algos import (
    group_advantages,
)
from training.c3po.data import RLProblem, prompt_ids_for
from training.c3po.distributed import (
    Communicator,
    GatheredModel,
    SingleProcess,
    full_model_state,
    full_optimizer_state,
    load_full_state,
    shard_model,
    unsharded,
)
from training.c3po.lora import (
    ADAPTER_WEIGHTS_NAME,
    adapter_to_model_keys,
    is_lora,
    lora_spec_of,
    reference_mode,
    save_adapter,
)
from training.c3po.rollout import PolicyRolloutEngine, RewardFn, RolloutEngine, sample_groups
from training.c3po.rollout_buffer import Rollout, RolloutBuffer, SelectedRollout
from training.c3po.update import c3po_update, fill_logprobs, model_device
from training.observer import SilentObserver, TrainingObserver

logger = logging.getLogger(__name__)

TRAINING_STATE_NAME = "training_state.pt"
LATEST_NAME = "latest.json"

# Every metrics dict carries these keys (the dashboard and the tests rely on them).
METRIC_KEYS = (
    "reward_mean",
    "accuracy",
    "response_length_mean",
    "response_length_max",
    "tokens_trained",
    "responses_trained",
    "budget_shortfall",
    "entropy",
    "kl",
    "clip_fraction",
    "grad_norm",
    "lr",
    "loss",
    "policy_loss",
    "load_balance",
    "router_z",
    "step_time_s",
    "rollout_time_s",
    "train_time_s",
    "tokens_per_s",
    "sampled_responses",
    "sampled_tokens",
    "rollout_batches",
    "zero_signal_group_fraction",
    "finished_fraction",
    "buffer_tokens",
)


@dataclass
class TrainResult:
    """How `train` ended: the steps completed (absolute), whether it was stopped, last checkpoint."""

    step: int
    stopped: bool
    last_checkpoint: Path | None
    last_metrics: dict[str, float] = field(default_factory=dict)


class PromptSampler:
    """Draws problem indices in seeded, reshuffled epochs; its state survives a resume."""

    def __init__(self, num_problems: int, seed: int) -> None:
        assert num_problems > 0, "no training problems"
        self.num_problems = num_problems
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(self.num_problems))
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def draw(self, count: int) -> list[int]:
        out = []
        while len(out) < count:
            if self.position >= self.num_problems:
                self.epoch += 1
                self.position = 0
                self._order = self._permutation(self.epoch)
            out.append(self._order[self.position])
            self.position += 1
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "num_problems": self.num_problems}

    def load_state_dict(self, state: dict[str, int]) -> None:
        assert state["num_problems"] == self.num_problems, "problem list changed since checkpoint"
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._permutation(self.epoch)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The last complete checkpoint of a run (what `latest.json` names), or None."""
    pointer = Path(output_dir) / "checkpoints" / LATEST_NAME
    if not pointer.is_file():
        return None
    path = Path(output_dir) / "checkpoints" / json.loads(pointer.read_text())["checkpoint"]
    return path if (path / TRAINING_STATE_NAME).is_file() else None


class C3POTrainer:
    """C3PO (or GRPO-baseline) RL on one problem list; see the module docstring for a step.

    The reference policy (for the KL term) is a frozen copy of the policy as passed in: the
    start checkpoint of this stage. `engine` defaults to `PolicyRolloutEngine` (docs/c3po-spec.md §9).
    `keep_checkpoints` 0 keeps every checkpoint (a registry may point at any of them); N > 0
    keeps the newest N (for models whose checkpoints are too large to keep all).
    """

    def __init__(
        self,
        *,
        policy: BailingMoeForCausalLM,
        tokenizer: Any,
        problems: Sequence[RLProblem],
        config: C3POConfig,
        output_dir: str | Path,
        reference: BailingMoeForCausalLM | None = None,
        engine: RolloutEngine | None = None,
        observer: TrainingObserver | None = None,
        seed: int = 0,
        checkpoint_every: int = 10,
        keep_checkpoints: int = 0,
        samples_per_step: int = 4,
        reward_fn: RewardFn = verifier_reward,
        tensorboard: bool = True,
        manifest_extra: dict[str, Any] | None = None,
        communicator: Communicator | None = None,
        base_checkpoint: str | None = None,
    ) -> None:
        assert problems, "C3PO needs at least one training problem"
        self.policy = policy
        self.tokenizer = tokenizer
        self.problems = list(problems)
        self.config = config
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.observer: TrainingObserver = observer or SilentObserver()
        self.seed = seed
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.samples_per_step = samples_per_step
        self.reward_fn = reward_fn
        self.manifest_extra = dict(manifest_extra or {})
        self.eos_token_id = int(tokenizer.eos_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id or tokenizer.eos_token_id)

        self.comm = communicator or SingleProcess()
        self.base_checkpoint = base_checkpoint
        self.lora = is_lora(policy)
        self.policy.train()
        if self.lora:
            # The KL reference is the base itself, read with the adapters disabled.
            assert reference is None, "a LoRA policy is its own reference (adapters disabled)"
            self.reference: Any = None
        else:
            if reference is None:
                reference = BailingMoeForCausalLM(policy.config).to(model_device(policy))
                reference.load_state_dict(policy.state_dict())
            self.reference = reference.eval().requires_grad_(False)
        if self.comm.world_size > 1:
            device = self.comm.device
            mixed = device.type == "cuda"
            shard_model(self.policy.to(device), mixed_precision=mixed)
            if self.reference is not None:
                shard_model(self.reference.to(device), mixed_precision=mixed)
        self.engine = engine or PolicyRolloutEngine(policy, eos_token_id=self.eos_token_id)
        self.optimizer = torch.optim.AdamW(
            [p for p in policy.parameters() if p.requires_grad],
            lr=config.lr,
            betas=config.adam_betas,
            weight_decay=config.weight_decay,
        )
        self.step = 0
        self.sampler = PromptSampler(len(self.problems), seed)
        self.buffer = RolloutBuffer()
        self._prompt_ids = [prompt_ids_for(tokenizer, p) for p in self.problems]
        self._statements = {p.problem_id: p.statement for p in self.problems}
        self._next_group_id = 0
        self._last_checkpoint_step = -1
        self._writer = None
        if tensorboard and self.comm.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.output_dir / "tensorboard"))
        self.metrics_path = self.output_dir / "metrics.jsonl"

    # ---- public API -------------------------------------------------------------------------

    def train(self, num_steps: int) -> TrainResult:
        """Run until `self.step == num_steps` (an absolute count, so a resumed run continues)
        or until should_stop(); a stop writes a checkpoint of the last completed step."""
        last_metrics: dict[str, float] = {}
        last_checkpoint = latest_checkpoint(self.output_dir)
        stopped = False
        while self.step < num_steps:
            metrics = self.train_step()
            if metrics is None:
                stopped = True
                break
            last_metrics = metrics
            if self.checkpoint_every > 0 and self.step % self.checkpoint_every == 0:
                last_checkpoint = self.save_checkpoint()
        if self.step != self._last_checkpoint_step and self.step > 0:
            last_checkpoint = self.save_checkpoint()
        self._log(f"{'stopped' if stopped else 'finished'} at step {self.step}")
        return TrainResult(self.step, stopped, last_checkpoint, last_metrics)

    def train_step(self) -> dict[str, float] | None:
        """One optimiser update; returns its metrics, or None when should_stop() intervened."""
        started = time.perf_counter()
        if self._stop_requested():
            return None
        # An abandoned step must leave no trace: restore the queue, the prompt sampler and the
        # group counter, so a resumed run draws exactly what an uninterrupted one would.
        snapshot = (list(self.buffer.items), self.sampler.state_dict(), self._next_group_id)
        cfg = self.config
        budget = cfg.budget_tokens if cfg.algorithm == "c3po" else None

        fresh: list[Rollout] = []
        batches = 0
        if budget is None or self.buffer.num_tokens < budget:
            while True:
                fresh.extend(self._rollout_batch(batches))
                batches += 1
                if self._stop_requested():
                    self._restore(snapshot)
                    return None
                if budget is None or cfg.underfill == "accept":
                    break
                if self.buffer.num_tokens >= budget or batches > cfg.max_underfill_batches:
                    break
        rollout_time = time.perf_counter() - started

        if self._stop_requested():
            self._restore(snapshot)
            return None
        selected = self.buffer.take(budget, cfg.overflow)
        self._fill_old_logprobs_of_carried()
        train_started = time.perf_counter()
        stats = self._update(selected)
        self.step += 1
        self.engine.refresh(self.policy, self.tokenizer)
        train_time = time.perf_counter() - train_started
        step_time = time.perf_counter() - started

        metrics = self._step_metrics(selected, fresh, stats, batches, rollout_time, train_time)
        metrics["step_time_s"] = step_time
        metrics["tokens_per_s"] = metrics["tokens_trained"] / max(step_time, 1e-9)
        self._emit(metrics, fresh)
        return metrics

    def save_checkpoint(self) -> Path:
        """Atomic checkpoint of the current step; `latest.json` moves only once it is complete.

        In a data-parallel run every rank must call it (gathering the sharded weights, optimiser
        state and the rollouts' log-probs is collective) and rank 0 alone writes. A LoRA policy
        writes its adapter (plus a manifest naming the base) instead of the full weights.
        """
        checkpoints = self.output_dir / "checkpoints"
        name = f"step-{self.step:06d}"
        path = checkpoints / name
        extra = {
            **self.manifest_extra,
            "c3po": {
                "step": self.step,
                "algorithm": self.config.algorithm,
                "seed": self.seed,
                "world_size": self.comm.world_size,
            },
        }
        sharded = self.comm.world_size > 1
        model_state = full_model_state(self.policy) if sharded else None
        optimizer_state = full_optimizer_state(self.policy, self.optimizer)
        buffer_state = self._gathered_buffer_state()
        if self.comm.is_main:
            if self.lora:
                save_adapter(
                    self.policy,
                    path,
                    base_checkpoint=self.base_checkpoint or "",
                    spec=lora_spec_of(self.policy),
                    manifest_extra=extra,
                    state_dict=model_state,
                )
            else:
                model: Any = self.policy
                if sharded:
                    model = GatheredModel(self.policy.config, model_state or {})
                save_checkpoint(model, self.tokenizer, path, manifest_extra=extra)
            state = {
                "step": self.step,
                "optimizer": optimizer_state,
                "sampler": self.sampler.state_dict(),
                "buffer": buffer_state,
                "next_group_id": self._next_group_id,
                "config": self.config.to_dict(),
                "seed": self.seed,
                "world_size": self.comm.world_size,
                "rng": {
                    "torch": torch.get_rng_state(),
                    "python": list(random.getstate()[1]),
                    "python_version": random.getstate()[0],
                    "python_gauss": random.getstate()[2],
                },
            }
            _atomic_torch_save(state, path / TRAINING_STATE_NAME)
            _atomic_write_text(
                checkpoints / LATEST_NAME,
                json.dumps({"checkpoint": name, "step": self.step}) + "\n",
            )
            self._prune_checkpoints(keep=path)
            self._log(f"checkpoint step {self.step} -> {path}")
            self.observer.checkpoint_written(self.step, str(path), {})
        # No rank runs ahead of a checkpoint that may yet fail on rank 0.
        self.comm.barrier()
        self._last_checkpoint_step = self.step
        return path

    def _gathered_buffer_state(self) -> list[dict[str, Any]]:
        """The queue with every rollout's log-probs, each from the rank that owns it."""
        own = {
            index: (r.old_logp_T, r.ref_logp_T)
            for index, r in enumerate(self.buffer.items)
            if r.owner_rank == self.comm.rank
        }
        merged: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for share in self.comm.all_gather_object(own):
            merged.update(share)
        states = []
        for index, rollout in enumerate(self.buffer.items):
            state = rollout.to_state()
            state["old_logp_T"], state["ref_logp_T"] = merged[index]
            states.append(state)
        return states

    def resume(self) -> bool:
        """Load the run's last complete checkpoint, if any: weights, optimiser, RNG, sampler,
        buffer and step. Returns False when there is none (the model and state are left as
        they are). Either way the metrics file and the observer (`resumed`) forget the steps
        after the one the run goes on from, the loaded checkpoint announced again first.

        Every rank of a data-parallel run loads the same checkpoint; it may have been written
        at another world size (the optimiser state is keyed by parameter name and the queue
        holds every rollout's log-probs, so its responses are re-assigned to this run's ranks).
        """
        path = latest_checkpoint(self.output_dir)
        if path is not None:
            self._load_checkpoint(path)
            self.engine.refresh(self.policy, self.tokenizer)
            self._log(f"resumed from {path} at step {self.step}")
        if self.comm.is_main:
            # What was logged after this step came from a run that died before its next
            # checkpoint (or its first): those steps are trained again.
            self._truncate_metrics(self.step)
            if path is not None:
                # `latest.json` moves before the observer hears of a checkpoint: a run killed
                # in between left its caller one checkpoint behind this one. Announced again,
                # it is recorded (announcing twice is harmless).
                self.observer.checkpoint_written(self.step, str(path), {})
            self.observer.resumed(self.step)
        return path is not None

    def _load_checkpoint(self, path: Path) -> None:
        """Weights (or the adapter), optimiser, sampler, queue, group counter, step and RNG."""
        state = torch.load(path / TRAINING_STATE_NAME, weights_only=True)
        saved = C3POConfig.from_dict(state["config"])
        if saved != self.config:
            self._log(f"resuming with a changed config (saved: {saved.to_dict()})")
        if self.lora:
            adapter = load_file(path / ADAPTER_WEIGHTS_NAME)
            weights = adapter_to_model_keys(self.policy, adapter)
            load_full_state(self.policy, None, weights, None, strict=False)
        else:
            weights = load_file(path / "model.safetensors")
            if self.policy.config.tie_word_embeddings and "lm_head.weight" not in weights:
                weights["lm_head.weight"] = weights["model.word_embeddings.weight"]
            load_full_state(self.policy, None, weights, None)
        load_full_state(self.policy, self.optimizer, None, state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        self.buffer = RolloutBuffer.from_state(state["buffer"])
        if state.get("world_size", 1) != self.comm.world_size:
            for rollout in self.buffer.items:
                rollout.owner_rank %= self.comm.world_size
        self._next_group_id = state["next_group_id"]
        self.step = self._last_checkpoint_step = state["step"]
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(
            (
                state["rng"]["python_version"],
                tuple(state["rng"]["python"]),
                state["rng"]["python_gauss"],
            )
        )

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ---- rollouts ---------------------------------------------------------------------------

    def _rollout_batch(self, batch_index: int) -> list[Rollout]:
        """Sample, score and queue one batch of L prompts × K responses; returns the rollouts."""
        cfg = self.config
        indices = self.sampler.draw(cfg.prompts_per_step)
        problems = [self.problems[i] for i in indices]
        # A seed from (run seed, step, batch): a resumed run samples what the original would.
        seed = (self.seed * 1_000_003 + self.step * 1_009 + batch_index) % (2**63)
        with unsharded(self.policy):
            groups = sample_groups(
                self.engine,
                self.tokenizer,
                problems,
                [self._prompt_ids[i] for i in indices],
                group_size=cfg.group_size,
                max_new_tokens=cfg.max_response_tokens,
                temperature=cfg.temperature,
                seed=seed,
                reward_fn=self.reward_fn,
                communicator=self.comm,
            )
        rollouts: list[Rollout] = []
        rewards, group_ids = [], []
        for group in groups:
            group_id = self._next_group_id
            self._next_group_id += 1
            for s, text, r, owner in zip(
                group.samples, group.texts, group.rewards, group.owners, strict=True
            ):
                rewards.append(r)
                group_ids.append(group_id)
                rollouts.append(
                    Rollout(
                        problem_id=group.problem.problem_id,
                        group_id=group_id,
                        prompt_ids=group.prompt_ids,
                        response_ids=list(s.token_ids),
                        reward=r,
                        advantage=0.0,
                        finished=s.finished,
                        old_logp_T=torch.empty(0),
                        ref_logp_T=torch.empty(0),
                        sampled_at_step=self.step,
                        completion_text=text,
                        owner_rank=owner,
                    )
                )
        # Advantages on the complete groups, before any budget cut (docs/c3po-spec.md §1).
        adv_B = group_advantages(
            torch.tensor(rewards), torch.tensor(group_ids), eps=cfg.adv_eps, std=cfg.adv_std
        ).tolist()
        for rollout, adv in zip(rollouts, adv_B, strict=True):
            rollout.advantage = adv
        own = [r for r in rollouts if r.owner_rank == self.comm.rank]
        if self.lora:
            with reference_mode(self.policy):
                self._fill_logprobs(own, self.policy, "ref_logp_T")
        else:
            self._fill_logprobs(own, self.reference, "ref_logp_T")
        self.buffer.add_groups(rollouts)
        return rollouts

    def _fill_logprobs(self, rollouts: list[Rollout], model: Any, attribute: str) -> None:
        """Teacher-forced log-probs of every response token under `model`, stored on each rollout
        as `attribute` (ref_logp_T with the frozen reference, old_logp_T with the policy)."""
        fill_logprobs(rollouts, model, attribute, self.config, self.pad_token_id, self.comm)

    def _fill_old_logprobs_of_carried(self) -> None:
        """π_old log-probs for the rollouts that wait in the queue past this update.

        A rollout trained in the update right after its sampling needs no separate π_old pass:
        the policy has not moved, so π_old = the training forward's own log-probs, detached (as
        verl and TRL do for on-policy data). Only rollouts carried to a later update must keep
        them, and must get them now, before this update moves the policy.
        """
        pending = [
            r
            for r in self.buffer.items
            if r.owner_rank == self.comm.rank and r.old_logp_T.numel() != r.num_tokens
        ]
        self._fill_logprobs(pending, self.policy, "old_logp_T")

    # ---- update -----------------------------------------------------------------------------

    def _update(self, selected: list[SelectedRollout]) -> dict[str, float]:
        return c3po_update(
            policy=self.policy,
            optimizer=self.optimizer,
            selected=selected,
            config=self.config,
            step=self.step,
            pad_token_id=self.pad_token_id,
            communicator=self.comm,
        )

    # ---- reporting --------------------------------------------------------------------------

    def _step_metrics(
        self,
        selected: list[SelectedRollout],
        fresh: list[Rollout],
        stats: dict[str, float],
        batches: int,
        rollout_time: float,
        train_time: float,
    ) -> dict[str, float]:
        trained = [s.rollout for s in selected]
        lengths = [r.num_tokens for r in trained] or [0]
        group_rewards: dict[int, set[float]] = {}
        for r in fresh:
            group_rewards.setdefault(r.group_id, set()).add(r.reward)
        zero_signal = sum(1 for v in group_rewards.values() if len(v) == 1)
        sampled_tokens = sum(r.num_tokens for r in fresh)
        budget = self.config.budget_tokens if self.config.algorithm == "c3po" else None
        return {
            **stats,
            "step": float(self.step),
            "reward_mean": _mean([r.reward for r in trained]),
            "accuracy": _mean([1.0 if r.reward >= 1.0 else 0.0 for r in trained]),
            "response_length_mean": _mean([float(n) for n in lengths]),
            "response_length_max": float(max(lengths)),
            "responses_trained": float(len(selected)),
            "budget_shortfall": float(budget - stats["tokens_trained"]) if budget else 0.0,
            "rollout_time_s": rollout_time,
            "train_time_s": train_time,
            "sampled_responses": float(len(fresh)),
            "sampled_tokens": float(sampled_tokens),
            "rollout_batches": float(batches),
            "rollout_tokens_per_s": sampled_tokens / rollout_time if fresh else 0.0,
            "zero_signal_group_fraction": zero_signal / len(group_rewards)
            if group_rewards
            else 0.0,
            "finished_fraction": _mean([1.0 if r.finished else 0.0 for r in trained]),
            "buffer_tokens": float(self.buffer.num_tokens),
        }

    def _emit(self, metrics: dict[str, float], fresh: list[Rollout]) -> None:
        if not self.comm.is_main:
            # Every rank holds the same (reduced) metrics; one reports them.
            return
        step = self.step
        self.observer.metrics(step, dict(metrics))
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps({k: _json_number(v) for k, v in metrics.items()}) + "\n")
        if self._writer is not None:
            for key, value in metrics.items():
                if key != "step":
                    self._writer.add_scalar(f"{self.config.algorithm}/{key}", value, step)
        samples = [
            {
                "problem_id": r.problem_id,
                "statement": self._statement(r.problem_id),
                "completion": r.completion_text,
                "reward": r.reward,
                "advantage": r.advantage,
                "finished": r.finished,
                "tokens": r.num_tokens,
            }
            for r in fresh[: self.samples_per_step]
        ]
        if samples:
            self.observer.samples(step, samples)
            if self._writer is not None:
                text = "\n\n".join(
                    f"reward {s['reward']:.0f} | {s['statement']}\n\n    {s['completion']}"
                    for s in samples
                )
                self._writer.add_text("samples", text, step)
        if self._writer is not None:
            self._writer.flush()
        self._log(
            f"step {step}: reward {metrics['reward_mean']:.3f} "
            f"tokens {metrics['tokens_trained']:.0f} len {metrics['response_length_mean']:.0f} "
            f"H {metrics['entropy']:.3f} KL {metrics['kl']:.2e} |g| {metrics['grad_norm']:.3f} "
            f"{metrics['step_time_s']:.1f}s"
        )

    def _restore(self, snapshot: tuple[list[Rollout], dict[str, int], int]) -> None:
        items, sampler_state, next_group_id = snapshot
        self.buffer.items = items
        self.sampler.load_state_dict(sampler_state)
        self._next_group_id = next_group_id

    def _statement(self, problem_id: str) -> str:
        return self._statements.get(problem_id, "")

    def _log(self, line: str) -> None:
        if not self.comm.is_main:
            return
        logger.info(line)
        self.observer.log(line)

    def _stop_requested(self) -> bool:
        """Rank 0 asks should_stop(); every rank gets its answer, so all abandon the same step."""
        wanted = False
        if self.comm.is_main:
            wanted = bool(self.observer.should_stop())
        return bool(self.comm.broadcast_object(wanted))

    def _prune_checkpoints(self, keep: Path) -> None:
        if self.keep_checkpoints <= 0:
            return
        steps = sorted(p for p in (self.output_dir / "checkpoints").glob("step-*") if p.is_dir())
        for old in steps[: max(0, len(steps) - self.keep_checkpoints)]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)

    def _truncate_metrics(self, step: int) -> None:
        """Forget metrics of steps after `step` (a crashed run logged them, then lost them)."""
        if not self.metrics_path.is_file():
            return
        kept = [
            line
            for line in self.metrics_path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        _atomic_write_text(self.metrics_path, "".join(f"{line}\n" for line in kept))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _json_number(value: float) -> float | None:
    return None if isinstance(value, float) and not math.isfinite(value) else value
