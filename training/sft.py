"""Long-CoT supervised fine-tuning of a Bailing MoE model on generated worked solutions.

Trains from scratch (a fresh `BailingMoeConfig`, ring-tiny's by default) or continues a saved
checkpoint. The data is an endless seeded stream of training problems (held-out problems never
appear), so an "epoch" is defined as `steps_per_epoch` optimiser steps over a freshly generated
part of the stream; each epoch's stream has its own seed, so a resumed run sees exactly the data
an uninterrupted one would. Loss is next-token cross-entropy on assistant tokens only, plus a
small MoE load-balance term. AdamW with linear warm-up and cosine decay over all epochs. After
every epoch: an atomic checkpoint (`ringmodel.save_checkpoint`) whose manifest records the epoch,
the training loss and the mean per-token entropy on the fixed RL prompts (docs/c3po-spec.md §3), a quick
held-out accuracy through ringmodel sampling, and one more line in `sft_log.json`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ringmodel import (
    BailingMoeConfig,
    BailingMoeForCausalLM,
    build_tokenizer,
    load_balance_loss,
    load_checkpoint,
    save_checkpoint,
)
from training.entropy import mean_token_entropy, rl_prompts
from training.problems import DOMAINS, LEVELS, Problem, training_problems
from training.problems.base import Domain
from training.sft_data import SFTBatch, bucketed_batches, problem_examples

LOG_NAME = "sft_log.json"
STATE_NAME = "trainer_state.pt"


@dataclass
class SFTConfig:
    """Everything that defines an SFT run; recorded in every checkpoint's manifest."""

    output_dir: str
    init_checkpoint: str | None = None  # None: train from scratch with `model_overrides`
    model_overrides: dict[str, Any] = field(default_factory=dict)
    epochs: int = 6
    steps_per_epoch: int = 300
    tokens_per_batch: int = 6144
    learning_rate: float = 3e-3
    min_learning_rate_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    # Switch-style balance weight on E·B (B from ringmodel.load_balance_loss, 1/E at balance).
    balance_coefficient: float = 0.01
    domains: tuple[Domain, ...] = DOMAINS
    level_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    # A curriculum: the first `early_epochs` epochs draw levels by `early_level_weights`, so the
    # short level-1 procedures (copying operands, single-digit facts) are learnt first.
    early_level_weights: tuple[float, ...] | None = None
    early_epochs: int = 0
    # Topic name -> draw weight (1 for the rest): a continuation stage leans on the topics the
    # held-out evaluation shows weak (e.g. {"multiple_choice": 4.0}).
    topic_weights: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    entropy_prompts: int = 64
    entropy_max_new_tokens: int = 400
    eval_problems_per_level: int = 8  # per domain and level after each epoch; 0 disables
    num_threads: int = 2
    progress: bool = True

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    step: int
    train_tokens: int
    target_tokens: int
    mean_loss: float
    seconds: float
    tokens_per_second: float
    entropy: dict[str, float | int]
    eval_accuracy: dict[str, float] | None
    checkpoint: str


def learning_rate_at(step: int, *, total_steps: int, config: SFTConfig) -> float:
    """Linear warm-up to `learning_rate`, then cosine decay to `min_learning_rate_ratio` of it."""
    peak = config.learning_rate
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    span = max(total_steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    floor = peak * config.min_learning_rate_ratio
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _stream_seed(config: SFTConfig, epoch: int) -> int:
    return config.seed * 1000 + epoch


def epoch_problems(config: SFTConfig, epoch: int) -> Iterator[Problem]:
    """The problems of one epoch: a freshly seeded part of the training stream, its levels
    drawn by the curriculum's early weights in the first `early_epochs` epochs."""
    early = config.early_level_weights is not None and epoch <= config.early_epochs
    return training_problems(
        _stream_seed(config, epoch),
        domains=config.domains,
        levels=LEVELS,
        level_weights=config.early_level_weights if early else config.level_weights,
        topic_weights=config.topic_weights or None,
    )


def epoch_batches(
    tokenizer: Any, config: SFTConfig, epoch: int, max_length: int
) -> Iterator[SFTBatch]:
    """The length-bucketed batches of one epoch."""
    return bucketed_batches(
        problem_examples(tokenizer, epoch_problems(config, epoch), max_length=max_length),
        tokens_per_batch=config.tokens_per_batch,
        pad_token_id=tokenizer.pad_token_id,
        seed=_stream_seed(config, epoch),
    )


def training_loss(
    model: BailingMoeForCausalLM, batch: SFTBatch, balance_coefficient: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, cross-entropy) for one batch: mean CE over assistant tokens + E·B balance."""
    want_router = balance_coefficient > 0 and model.config.num_hidden_layers > (
        model.config.first_k_dense_replace
    )
    # No attention mask: with right padding, causal attention already keeps every real token
    # away from the padding after it, and the unmasked path is SDPA's fast causal kernel.
    out = model(
        batch.input_ids,
        labels=batch.labels,
        use_cache=False,
        output_router_logits=want_router,
    )
    loss = out.loss
    if want_router:
        balance = load_balance_loss(
            out.router_logits,
            top_k=model.config.num_experts_per_tok,
            num_experts=model.config.num_experts,
            mask=batch.attention_mask,
        )
        loss = loss + balance_coefficient * model.config.num_experts * balance
    return loss, out.loss.detach()


def _quick_accuracy(model: Any, tokenizer: Any, per_level: int) -> dict[str, float]:
    """Held-out accuracy per domain/level on a few problems (monitoring, not the model card)."""
    from training.evaluate import evaluate_with_ringmodel

    report = evaluate_with_ringmodel(
        model, tokenizer, domains=DOMAINS, levels=LEVELS, n_per_level=per_level
    )
    return {f"{r['domain']}/L{r['level']}": r["accuracy"] for r in report["results"]}


def _build_model(config: SFTConfig) -> tuple[BailingMoeForCausalLM, Any]:
    if config.init_checkpoint:
        model, tokenizer, _ = load_checkpoint(config.init_checkpoint)
        return model, tokenizer
    tokenizer = build_tokenizer()
    model_config = BailingMoeConfig.ring_tiny(**config.model_overrides)
    if model_config.vocab_size < len(tokenizer):
        raise ValueError(f"vocab_size {model_config.vocab_size} < tokenizer size {len(tokenizer)}")
    torch.manual_seed(config.seed)
    return BailingMoeForCausalLM(model_config), tokenizer


def _completed_epochs(output_dir: Path) -> list[dict[str, Any]]:
    log_path = output_dir / LOG_NAME
    if not log_path.is_file():
        return []
    return json.loads(log_path.read_text())["epochs"]


def train_sft(
    config: SFTConfig, *, resume: bool = True, stop_after_epochs: int | None = None
) -> list[EpochRecord | dict[str, Any]]:
    """Run (or resume) SFT; returns one record per epoch, earlier completed epochs included.

    With `resume`, a run whose output_dir already holds finished epochs continues after the
    last one: weights from its checkpoint, optimiser and step from `trainer_state.pt`. The
    schedule always spans `config.epochs`, so a run may be done in slices: `stop_after_epochs`
    returns after that many new epochs (e.g. one slice per job), and the next call resumes.
    """
    torch.set_num_threads(config.num_threads)
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    done = _completed_epochs(output_dir) if resume else []
    state_path = output_dir / STATE_NAME

    if done:
        model, tokenizer, _ = load_checkpoint(done[-1]["checkpoint"])
    else:
        model, tokenizer = _build_model(config)
    model.train()
    max_length = model.config.max_position_embeddings
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.learning_rate,
        betas=config.betas,
        weight_decay=config.weight_decay,
    )
    step = 0
    if done:
        state = torch.load(state_path, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    records: list[EpochRecord | dict[str, Any]] = list(done)
    total_steps = config.epochs * config.steps_per_epoch
    prompts = rl_prompts(config.entropy_prompts)

    last_epoch = config.epochs
    if stop_after_epochs is not None:
        last_epoch = min(last_epoch, len(done) + stop_after_epochs)
    for epoch in range(len(done) + 1, last_epoch + 1):
        batches = epoch_batches(tokenizer, config, epoch, max_length)
        started = time.perf_counter()
        seen_tokens = target_tokens = 0
        loss_sum = 0.0
        bar = tqdm(
            range(config.steps_per_epoch),
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not config.progress,
            dynamic_ncols=True,
        )
        for _ in bar:
            batch = next(batches)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(step, total_steps=total_steps, config=config)
            loss, cross_entropy = training_loss(model, batch, config.balance_coefficient)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            seen_tokens += batch.num_tokens
            target_tokens += batch.num_target_tokens
            loss_sum += float(cross_entropy)
            elapsed = time.perf_counter() - started
            bar.set_postfix(
                loss=f"{float(cross_entropy):.3f}",
                tok_s=f"{seen_tokens / max(elapsed, 1e-9):.0f}",
                lr=f"{optimizer.param_groups[0]['lr']:.1e}",
            )
        train_seconds = time.perf_counter() - started
        entropy = mean_token_entropy(
            model,
            tokenizer,
            prompts,
            max_new_tokens=config.entropy_max_new_tokens,
            seed=config.seed,
        ).as_dict()
        accuracy = (
            _quick_accuracy(model, tokenizer, config.eval_problems_per_level)
            if config.eval_problems_per_level
            else None
        )
        model.train()
        checkpoint_path = output_dir / f"epoch-{epoch}"
        record = EpochRecord(
            epoch=epoch,
            step=step,
            train_tokens=seen_tokens,
            target_tokens=target_tokens,
            mean_loss=loss_sum / config.steps_per_epoch,
            seconds=train_seconds,
            tokens_per_second=seen_tokens / train_seconds,
            entropy=entropy,
            eval_accuracy=accuracy,
            checkpoint=str(checkpoint_path),
        )
        save_checkpoint(
            model,
            tokenizer,
            checkpoint_path,
            manifest_extra={"sft": {**dataclasses.asdict(record), "config": config.as_dict()}},
        )
        # The optimiser state goes beside the checkpoint, written aside then renamed, so a
        # resumed run never pairs epoch k's weights with another epoch's optimiser.
        staging = state_path.with_suffix(".tmp")
        torch.save({"optimizer": optimizer.state_dict(), "step": step}, staging)
        staging.replace(state_path)
        records.append(record)
        _write_log(output_dir, config, records)
        if config.progress:
            tqdm.write(
                f"epoch {epoch}: loss {record.mean_loss:.4f}, entropy "
                f"{entropy['mean_entropy']:.4f}, {record.tokens_per_second:.0f} tok/s"
                + (f", quick accuracy {accuracy}" if accuracy else "")
            )
    return records


def _write_log(output_dir: Path, config: SFTConfig, records: list[Any]) -> None:
    epochs = [r if isinstance(r, dict) else dataclasses.asdict(r) for r in records]
    payload = {"config": config.as_dict(), "epochs": epochs}
    staging = output_dir / f".{LOG_NAME}.tmp"
    staging.write_text(json.dumps(payload, indent=2) + "\n")
    staging.replace(output_dir / LOG_NAME)
