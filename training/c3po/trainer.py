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
   callback, TensorBoard and metrics.jsonl, and every N steps an atomic checkpoint is written.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from ringmodel import expert_counts, load_balance_loss, router_z_loss, save_checkpoint
from ringmodel.modeling_bailing_moe import BailingMoeForCausalLM
from training.answers import reward as verifier_reward
from training.c3po.config import C3POConfig
from training.c3po.core_algos import (
    c3po_loss,
    group_advantages,
    token_entropy,
    warmup_constant_lr,
)
from training.c3po.data import RLProblem, prompt_ids_for
from training.c3po.rollout import PolicyRolloutEngine, RewardFn, RolloutEngine, sample_groups
from training.c3po.rollout_buffer import Rollout, RolloutBuffer, SelectedRollout

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
class TrainerCallbacks:
    """Hooks the caller (the Celery task, a script, a test) passes in; every one optional.

    metrics(step, {key: float}): once per completed optimiser step (keys: METRIC_KEYS).
    log(line): human-readable progress lines.
    samples(step, [ {problem_id, statement, completion, reward, advantage, finished, tokens} ]):
        a few recent completions per step.
    should_stop() -> bool: polled at the start of a step, after every rollout batch and before
        the update; True abandons the current step (its rollouts are discarded), so a cancel
        takes effect within one step and leaves the state of the last completed step.
    checkpoint_written(step, path): after a checkpoint is completely on disk.
    """

    metrics: Callable[[int, dict[str, float]], None] | None = None
    log: Callable[[str], None] | None = None
    samples: Callable[[int, list[dict[str, Any]]], None] | None = None
    should_stop: Callable[[], bool] | None = None
    checkpoint_written: Callable[[int, Path], None] | None = None


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


@dataclass
class _Packed:
    """A micro-batch of prompt+response sequences, right-padded.

    input_ids_BS / attention_mask_BS: the model input. positions_BT: index into S of the logits
    that predict response token t. tokens_BT / mask_BT: response tokens and their validity.
    """

    input_ids_BS: torch.Tensor
    attention_mask_BS: torch.Tensor
    positions_BT: torch.Tensor
    tokens_BT: torch.Tensor
    mask_BT: torch.Tensor


def _pack(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    pad_id: int,
    device: torch.device | str = "cpu",
) -> _Packed:
    lengths = [len(p) + len(r) for p, r in pairs]
    width = max(lengths)
    response_width = max(1, max(len(r) for _, r in pairs))
    batch = len(pairs)
    input_ids_BS = torch.full((batch, width), pad_id, dtype=torch.long)
    attention_mask_BS = torch.zeros((batch, width), dtype=torch.long)
    positions_BT = torch.zeros((batch, response_width), dtype=torch.long)
    tokens_BT = torch.full((batch, response_width), pad_id, dtype=torch.long)
    mask_BT = torch.zeros((batch, response_width), dtype=torch.float32)
    for b, (prompt, response) in enumerate(pairs):
        seq = [*prompt, *response]
        input_ids_BS[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention_mask_BS[b, : len(seq)] = 1
        n = len(response)
        if n:
            # Position P-1+t predicts response token t.
            positions_BT[b, :n] = torch.arange(len(prompt) - 1, len(prompt) - 1 + n)
            tokens_BT[b, :n] = torch.tensor(list(response), dtype=torch.long)
            mask_BT[b, :n] = 1.0
    # Built on the CPU row by row, then moved in one transfer per tensor (a no-op on CPU).
    return _Packed(
        *(t.to(device) for t in (input_ids_BS, attention_mask_BS, positions_BT, tokens_BT, mask_BT))
    )


def _response_forward(
    model: BailingMoeForCausalLM, packed: _Packed, temperature: float, *, router: bool
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """(logits_BTV at the response positions / temperature, logp_BT of the tokens, router logits)."""
    out = model(
        packed.input_ids_BS,
        attention_mask=packed.attention_mask_BS,
        use_cache=False,
        output_router_logits=router,
    )
    logits_BSV = out.logits
    vocab = logits_BSV.shape[-1]
    index_BTV = packed.positions_BT.unsqueeze(-1).expand(-1, -1, vocab)
    logits_BTV = logits_BSV.gather(1, index_BTV).float()
    if temperature != 1.0:
        # The behaviour policy sampled from softmax(z / T); its ratio must use the same.
        logits_BTV = logits_BTV / temperature
    logp_BT = F.log_softmax(logits_BTV, dim=-1).gather(-1, packed.tokens_BT.unsqueeze(-1))
    return logits_BTV, logp_BT.squeeze(-1), out.router_logits


def _pad_rows(
    rows: Sequence[torch.Tensor], width: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    out = torch.zeros((len(rows), width), dtype=torch.float32, device=device)
    for b, row in enumerate(rows):
        out[b, : row.numel()] = row
    return out


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
        callbacks: TrainerCallbacks | None = None,
        seed: int = 0,
        checkpoint_every: int = 10,
        keep_checkpoints: int = 0,
        samples_per_step: int = 4,
        reward_fn: RewardFn = verifier_reward,
        tensorboard: bool = True,
        manifest_extra: dict[str, Any] | None = None,
    ) -> None:
        assert problems, "C3PO needs at least one training problem"
        self.policy = policy
        self.tokenizer = tokenizer
        self.problems = list(problems)
        self.config = config
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.callbacks = callbacks or TrainerCallbacks()
        self.seed = seed
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.samples_per_step = samples_per_step
        self.reward_fn = reward_fn
        self.manifest_extra = dict(manifest_extra or {})
        self.eos_token_id = int(tokenizer.eos_token_id)
        self.pad_token_id = int(tokenizer.pad_token_id or tokenizer.eos_token_id)

        # Every tensor of an update is made where the policy lives (CPU, or an accelerator).
        self.device = next(policy.parameters()).device
        self.policy.train()
        if reference is None:
            reference = BailingMoeForCausalLM(policy.config).to(self.device)
            reference.load_state_dict(policy.state_dict())
        self.reference = reference.eval().requires_grad_(False)
        self.engine = engine or PolicyRolloutEngine(policy, eos_token_id=self.eos_token_id)
        self.optimizer = torch.optim.AdamW(
            policy.parameters(),
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
        if tensorboard:
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
        """Atomic checkpoint of the current step; `latest.json` moves only once it is complete."""
        checkpoints = self.output_dir / "checkpoints"
        name = f"step-{self.step:06d}"
        path = checkpoints / name
        extra = {
            **self.manifest_extra,
            "c3po": {"step": self.step, "algorithm": self.config.algorithm, "seed": self.seed},
        }
        save_checkpoint(self.policy, self.tokenizer, path, manifest_extra=extra)
        state = {
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "buffer": self.buffer.to_state(),
            "next_group_id": self._next_group_id,
            "config": self.config.to_dict(),
            "seed": self.seed,
            "rng": {
                "torch": torch.get_rng_state(),
                "python": list(random.getstate()[1]),
                "python_version": random.getstate()[0],
                "python_gauss": random.getstate()[2],
            },
        }
        _atomic_torch_save(state, path / TRAINING_STATE_NAME)
        _atomic_write_text(
            checkpoints / LATEST_NAME, json.dumps({"checkpoint": name, "step": self.step}) + "\n"
        )
        self._last_checkpoint_step = self.step
        self._prune_checkpoints(keep=path)
        self._log(f"checkpoint step {self.step} -> {path}")
        if self.callbacks.checkpoint_written is not None:
            self.callbacks.checkpoint_written(self.step, path)
        return path

    def resume(self) -> bool:
        """Load the run's last complete checkpoint, if any: weights, optimiser, RNG, sampler,
        buffer and step. Returns False (and changes nothing) when there is none."""
        path = latest_checkpoint(self.output_dir)
        if path is None:
            return False
        state = torch.load(path / TRAINING_STATE_NAME, weights_only=True)
        saved = C3POConfig.from_dict(state["config"])
        if saved != self.config:
            self._log(f"resuming with a changed config (saved: {saved.to_dict()})")
        weights = load_file(path / "model.safetensors")
        if self.policy.config.tie_word_embeddings and "lm_head.weight" not in weights:
            weights["lm_head.weight"] = weights["model.word_embeddings.weight"]
        with torch.no_grad():
            self.policy.load_state_dict(weights, strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict(state["sampler"])
        self.buffer = RolloutBuffer.from_state(state["buffer"])
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
        self._truncate_metrics(self.step)
        self.engine.refresh(self.policy, self.tokenizer)
        self._log(f"resumed from {path} at step {self.step}")
        return True

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
        )
        rollouts: list[Rollout] = []
        rewards, group_ids = [], []
        for group in groups:
            group_id = self._next_group_id
            self._next_group_id += 1
            for s, text, r in zip(group.samples, group.texts, group.rewards, strict=True):
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
                    )
                )
        # Advantages on the complete groups, before any budget cut (docs/c3po-spec.md §1).
        adv_B = group_advantages(
            torch.tensor(rewards), torch.tensor(group_ids), eps=cfg.adv_eps, std=cfg.adv_std
        ).tolist()
        for rollout, adv in zip(rollouts, adv_B, strict=True):
            rollout.advantage = adv
        self._fill_logprobs(rollouts, self.reference, "ref_logp_T")
        self.buffer.add_groups(rollouts)
        return rollouts

    @torch.no_grad()
    def _fill_logprobs(self, rollouts: list[Rollout], model: Any, attribute: str) -> None:
        """Teacher-forced log-probs of every response token under `model`, stored on each rollout
        as `attribute` (ref_logp_T with the frozen reference, old_logp_T with the policy)."""
        size = self.config.micro_batch_size
        for start in range(0, len(rollouts), size):
            chunk = [r for r in rollouts[start : start + size] if r.num_tokens > 0]
            if not chunk:
                continue
            packed = _pack(
                [(r.prompt_ids, r.response_ids) for r in chunk], self.pad_token_id, self.device
            )
            _, logp_BT, _ = _response_forward(model, packed, self.config.temperature, router=False)
            for b, rollout in enumerate(chunk):
                setattr(rollout, attribute, logp_BT[b, : rollout.num_tokens].clone())

    def _fill_old_logprobs_of_carried(self) -> None:
        """π_old log-probs for the rollouts that wait in the queue past this update.

        A rollout trained in the update right after its sampling needs no separate π_old pass:
        the policy has not moved, so π_old = the training forward's own log-probs, detached (as
        verl and TRL do for on-policy data). Only rollouts carried to a later update must keep
        them, and must get them now, before this update moves the policy.
        """
        pending = [r for r in self.buffer.items if r.old_logp_T.numel() != r.num_tokens]
        self._fill_logprobs(pending, self.policy, "old_logp_T")

    # ---- update -----------------------------------------------------------------------------

    def _update(self, selected: list[SelectedRollout]) -> dict[str, float]:
        cfg = self.config
        total_tokens = sum(s.selected_tokens for s in selected)
        mode = "budget" if cfg.algorithm == "c3po" else "token-mean"
        lr = warmup_constant_lr(self.step, base_lr=cfg.lr, warmup_steps=cfg.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        sums = dict.fromkeys(
            ("loss", "policy_loss", "load_balance", "router_z", "clip", "kl", "entropy"), 0.0
        )
        self.policy.train()
        aux_tokens, expert_fraction_LE = self._aux_loss_plan(selected)
        for start in range(0, len(selected), cfg.micro_batch_size):
            micro = selected[start : start + cfg.micro_batch_size]
            pairs = [
                (s.rollout.prompt_ids, s.rollout.response_ids[: s.selected_tokens]) for s in micro
            ]
            packed = _pack(pairs, self.pad_token_id, self.device)
            logits_BTV, logp_BT, router_logits = _response_forward(
                self.policy, packed, cfg.temperature, router=True
            )
            width = packed.mask_BT.shape[1]
            old_BT = _pad_rows(
                [s.rollout.old_logp_T[: s.selected_tokens] for s in micro], width, self.device
            )
            fresh_B = torch.tensor(
                [s.rollout.old_logp_T.numel() == 0 for s in micro], device=self.device
            )
            if bool(fresh_B.any()):
                # Sampled by the policy as it is now (see _fill_old_logprobs_of_carried).
                assert all(
                    s.rollout.sampled_at_step == self.step
                    for s, f in zip(micro, fresh_B, strict=True)
                    if f
                ), "a rollout from an earlier step lacks its behaviour-policy log-probs"
                old_BT = torch.where(fresh_B.unsqueeze(1), logp_BT.detach(), old_BT)
            ref_BT = _pad_rows(
                [s.rollout.ref_logp_T[: s.selected_tokens] for s in micro], width, self.device
            )
            adv_B = torch.tensor(
                [s.rollout.advantage for s in micro], dtype=torch.float32, device=self.device
            )
            top_k = self.policy.config.num_experts_per_tok
            n_experts = self.policy.config.num_experts
            mask_BS = packed.attention_mask_BS
            balance = load_balance_loss(
                router_logits, top_k, n_experts, mask=mask_BS, expert_fraction_LE=expert_fraction_LE
            )
            z_loss = router_z_loss(router_logits, mask=mask_BS)
            # B and Z average over every token forwarded (prompt and response), so this
            # micro-batch's weight is its share of those tokens (C3POConfig.aux_loss_scope).
            aux_share = int(mask_BS.sum().item()) / max(aux_tokens, 1)
            terms = c3po_loss(
                logp_BT=logp_BT,
                old_logp_BT=old_BT,
                ref_logp_BT=ref_BT,
                adv_B=adv_B,
                mask_BT=packed.mask_BT,
                entropy_BT=token_entropy(logits_BTV),
                load_balance=balance,
                router_z=z_loss,
                config=cfg,
                mode=mode,
                global_token_count=total_tokens,
                aux_weight=aux_share,
            )
            terms.loss.backward()
            sums["loss"] += terms.loss.item()
            sums["policy_loss"] += terms.policy_loss.item()
            sums["load_balance"] += aux_share * terms.load_balance.item()
            sums["router_z"] += aux_share * terms.router_z.item()
            sums["clip"] += terms.clip_fraction_sum.item()
            sums["kl"] += terms.kl_sum.item()
            sums["entropy"] += terms.entropy_sum.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grad_clip)
        if selected:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        denom = max(total_tokens, 1)
        return {
            "loss": sums["loss"],
            "policy_loss": sums["policy_loss"],
            "load_balance": sums["load_balance"],
            "router_z": sums["router_z"],
            "clip_fraction": sums["clip"] / denom,
            "kl": sums["kl"] / denom,
            "entropy": sums["entropy"] / denom,
            "grad_norm": float(grad_norm),
            "lr": lr,
            "tokens_trained": float(total_tokens),
        }

    def _aux_loss_plan(self, selected: list[SelectedRollout]) -> tuple[int, torch.Tensor | None]:
        """(tokens the MoE auxiliary losses average over, the update's expert fractions F or None).

        With aux_loss_scope="update" and several micro-batches, F is counted over the whole
        update by a routing pass without gradient, so that B's gradient does not depend on the
        split; otherwise (None) each micro-batch measures F on its own tokens.
        """
        cfg = self.config
        size = cfg.micro_batch_size
        aux_tokens = sum(len(s.rollout.prompt_ids) + s.selected_tokens for s in selected)
        if cfg.aux_loss_scope != "update" or cfg.load_balance_coef == 0 or len(selected) <= size:
            return aux_tokens, None
        top_k = self.policy.config.num_experts_per_tok
        n_experts = self.policy.config.num_experts
        counts_LE = None
        with torch.no_grad():
            for start in range(0, len(selected), size):
                micro = selected[start : start + size]
                pairs = [
                    (s.rollout.prompt_ids, s.rollout.response_ids[: s.selected_tokens])
                    for s in micro
                ]
                packed = _pack(pairs, self.pad_token_id, self.device)
                _, _, router_logits = _response_forward(self.policy, packed, 1.0, router=True)
                counts = expert_counts(router_logits, top_k, n_experts, packed.attention_mask_BS)
                counts_LE = counts if counts_LE is None else counts_LE + counts
        assert counts_LE is not None
        return aux_tokens, counts_LE.float() / counts_LE.sum(dim=-1, keepdim=True).clamp(min=1)

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
        step = self.step
        if self.callbacks.metrics is not None:
            self.callbacks.metrics(step, dict(metrics))
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
            if self.callbacks.samples is not None:
                self.callbacks.samples(step, samples)
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
        logger.info(line)
        if self.callbacks.log is not None:
            self.callbacks.log(line)

    def _stop_requested(self) -> bool:
        return self.callbacks.should_stop is not None and bool(self.callbacks.should_stop())

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
