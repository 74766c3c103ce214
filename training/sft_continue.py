"""Continued SFT of a shipped checkpoint on an accelerator, under a wall-clock or step budget.

`training.sft` trains on two CPU cores with a few thousand tokens per step; this module continues
a checkpoint on a GPU (or, for tests, the CPU) with batches of a hundred thousand tokens, so the
Python problem generators are the bottleneck unless they run beside the training loop: a pool of
`spawn`ed worker processes draws problems (a `natural_share` of them reworded by
`training.problems.phrasings`, the rest in the generators' wording so that wording is not
forgotten), encodes them, and cuts length-sorted batches that the main process only copies to the
device. The loss is `training.sft`'s (assistant tokens only, plus the MoE balance term); the
learning rate warms up, then follows a cosine over the budget: the fraction of `max_steps` done,
or of `max_minutes` spent when no step count is given. Weights stay float32; `precision="bf16"`
runs the forward pass under bfloat16 autocast (falling back to float32 if the first step fails).
Every epoch (`steps_per_epoch` steps, or `epoch_minutes`, whichever comes first) saves a complete
checkpoint and the held-out loss of a fixed set of problems in both wordings.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import math
import multiprocessing
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ringmodel import BailingMoeForCausalLM, load_checkpoint, save_checkpoint
from ringmodel.chat import build_prompt_ids
from training.problems import DOMAINS, LEVELS, Problem, eval_set
from training.problems.phrasings import phrased_training_problems, unseen_phrasing_set
from training.sft_data import IGNORE_INDEX, SFTBatch, completion_ids

logger = logging.getLogger(__name__)

LOG_NAME = "sft_log.json"


@dataclass
class ContinueConfig:
    """Everything that defines a continuation run; recorded in every checkpoint's manifest."""

    init_checkpoint: str
    output_dir: str
    device: str = "cuda"
    precision: str = "bf16"  # "bf16" (autocast, float32 weights) or "fp32"
    tokens_per_batch: int = 131_072
    learning_rate: float = 1e-3
    min_learning_rate_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    balance_coefficient: float = 0.01
    max_minutes: float | None = 7.0
    max_steps: int | None = None
    steps_per_epoch: int = 500
    epoch_minutes: float | None = 1.5
    natural_share: float = 0.6
    level_weights: tuple[float, ...] = (0.35, 0.25, 0.2, 0.2)
    topic_weights: dict[str, float] = field(default_factory=lambda: {"multiple_choice": 2.0})
    seed: int = 7
    workers: int = 2
    pool_batches: int = 8
    heldout_per_level: int = 32

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- data: worker processes ---------------------------------------------------------------

_worker_tokenizer: Any = None


def _init_worker(checkpoint: str) -> None:
    global _worker_tokenizer
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    _worker_tokenizer = AutoTokenizer.from_pretrained(checkpoint)


def encode_example(tokenizer: Any, problem: Problem) -> tuple[list[int], int]:
    """(ids of prompt + assistant turn + eos, prompt length), as `training.sft_data` encodes."""
    prompt = build_prompt_ids(tokenizer, problem.statement)
    return [*prompt, *completion_ids(tokenizer, problem)], len(prompt)


@dataclass(frozen=True)
class PackedBatch:
    """A right-padded batch as plain arrays (cheap to send between processes)."""

    input_ids: np.ndarray  # int16 [B, T]
    lengths: np.ndarray  # int32 [B]
    prompt_lengths: np.ndarray  # int32 [B]


def pack_batches(
    examples: list[tuple[list[int], int]], *, tokens_per_batch: int, pad_token_id: int
) -> list[PackedBatch]:
    """Sort examples by length and cut them into batches of at most `tokens_per_batch` padded
    tokens (rows x longest row)."""
    examples = sorted(examples, key=lambda e: len(e[0]))
    groups: list[list[tuple[list[int], int]]] = [[]]
    for example in examples:
        current = groups[-1]
        if current and (len(current) + 1) * len(example[0]) > tokens_per_batch:
            groups.append([example])
        else:
            current.append(example)
    batches = []
    for group in groups:
        if not group:
            continue
        width = max(len(ids) for ids, _ in group)
        ids = np.full((len(group), width), pad_token_id, dtype=np.int16)
        for row, (example_ids, _) in enumerate(group):
            ids[row, : len(example_ids)] = example_ids
        batches.append(
            PackedBatch(
                input_ids=ids,
                lengths=np.array([len(e) for e, _ in group], dtype=np.int32),
                prompt_lengths=np.array([p for _, p in group], dtype=np.int32),
            )
        )
    return batches


def _chunk_task(args: tuple[dict[str, Any], int]) -> tuple[list[PackedBatch], int]:
    """One worker task: enough problems for about `pool_batches` batches from the stream seeded
    by (seed, chunk), packed; returns the batches and the number of over-long problems skipped."""
    config, chunk = args
    tokenizer = _worker_tokenizer
    max_length = config["max_length"]
    stream = phrased_training_problems(
        config["seed"] * 1_000_003 + chunk,
        natural_share=config["natural_share"],
        domains=DOMAINS,
        levels=LEVELS,
        level_weights=config["level_weights"],
        topic_weights=config["topic_weights"] or None,
    )
    budget = config["pool_batches"] * config["tokens_per_batch"]
    examples: list[tuple[list[int], int]] = []
    total = skipped = 0
    for problem in stream:
        ids, prompt_length = encode_example(tokenizer, problem)
        if len(ids) > max_length:
            skipped += 1
            continue
        examples.append((ids, prompt_length))
        total += len(ids)
        if total >= budget:
            break
    batches = pack_batches(
        examples, tokens_per_batch=config["tokens_per_batch"], pad_token_id=config["pad_token_id"]
    )
    random.Random(chunk).shuffle(batches)
    return batches, skipped


class BatchStream:
    """Endless packed batches from a pool of worker processes, a bounded number of tasks in
    flight (Pool.imap would queue an endless iterable without bound)."""

    def __init__(self, config: ContinueConfig, *, max_length: int, pad_token_id: int) -> None:
        self._task_config = {
            "seed": config.seed,
            "natural_share": config.natural_share,
            "level_weights": list(config.level_weights),
            "topic_weights": dict(config.topic_weights),
            "pool_batches": config.pool_batches,
            "tokens_per_batch": config.tokens_per_batch,
            "max_length": max_length,
            "pad_token_id": pad_token_id,
        }
        context = multiprocessing.get_context("spawn")
        self._pool = context.Pool(
            config.workers, initializer=_init_worker, initargs=(config.init_checkpoint,)
        )
        self._pending: collections.deque = collections.deque()
        self._next_chunk = 0
        self._ready: collections.deque[PackedBatch] = collections.deque()
        self.skipped = 0
        for _ in range(2 * config.workers):
            self._submit()

    def _submit(self) -> None:
        self._pending.append(
            self._pool.apply_async(_chunk_task, ((self._task_config, self._next_chunk),))
        )
        self._next_chunk += 1

    def __iter__(self) -> Iterator[PackedBatch]:
        return self

    def __next__(self) -> PackedBatch:
        while not self._ready:
            batches, skipped = self._pending.popleft().get()
            self._submit()
            self.skipped += skipped
            self._ready.extend(batches)
        return self._ready.popleft()

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()


# --- training -----------------------------------------------------------------------------


def to_device_batch(packed: PackedBatch, device: torch.device) -> SFTBatch:
    """Tensors on the device: ids, attention mask, and labels on assistant tokens only."""
    ids = torch.from_numpy(packed.input_ids.astype(np.int64))
    lengths = torch.from_numpy(packed.lengths.astype(np.int64))
    prompts = torch.from_numpy(packed.prompt_lengths.astype(np.int64))
    if device.type == "cuda":
        ids, lengths, prompts = (
            t.pin_memory().to(device, non_blocking=True) for t in (ids, lengths, prompts)
        )
    positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
    mask = positions < lengths.unsqueeze(1)
    labels = torch.where(mask & (positions >= prompts.unsqueeze(1)), ids, IGNORE_INDEX)
    return SFTBatch(input_ids=ids, attention_mask=mask.long(), labels=labels)


def learning_rate_at(progress: float, step: int, config: ContinueConfig) -> float:
    """Linear warm-up over `warmup_steps`, then cosine from the peak to `min_learning_rate_ratio`
    of it as `progress` (fraction of the budget spent) goes from 0 to 1."""
    peak = config.learning_rate
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    floor = peak * config.min_learning_rate_ratio
    progress = min(max(progress, 0.0), 1.0)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def heldout_examples(tokenizer: Any, per_level: int) -> dict[str, list[tuple[list[int], int]]]:
    """A fixed set of held-out problems in the generators' wording and in unseen wordings."""
    sets: dict[str, list[tuple[list[int], int]]] = {"generator": [], "unseen": []}
    for domain in DOMAINS:
        for level in LEVELS:
            sets["generator"] += [
                encode_example(tokenizer, p) for p in eval_set(domain, level, per_level, seed=1)
            ]
            sets["unseen"] += [
                encode_example(tokenizer, p)
                for p in unseen_phrasing_set(domain, level, per_level, seed=1)
            ]
    return sets


@torch.no_grad()
def heldout_loss(
    model: BailingMoeForCausalLM,
    examples: list[tuple[list[int], int]],
    *,
    device: torch.device,
    autocast: Callable[[], Any],
    tokens_per_batch: int,
    pad_token_id: int,
) -> float:
    """Mean cross-entropy per assistant token over the examples."""
    model.eval()
    total = count = 0.0
    for packed in pack_batches(
        examples, tokens_per_batch=tokens_per_batch, pad_token_id=pad_token_id
    ):
        batch = to_device_batch(packed, device)
        with autocast():
            logits = model(batch.input_ids, use_cache=False).logits.float()
        targets = batch.labels[:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            targets.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        total += float(losses)
        count += float((targets != IGNORE_INDEX).sum())
    model.train()
    return total / max(count, 1.0)


def _autocast_for(device: torch.device, precision: str) -> Callable[[], Any]:
    if precision == "bf16":
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"precision must be bf16 or fp32, got {precision!r}")
    return lambda: torch.autocast(device_type=device.type, enabled=False)


def continue_sft(
    config: ContinueConfig,
    *,
    on_epoch: Callable[[Path, dict[str, Any]], None] | None = None,
    manifest_extra: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Run the continuation; returns one record per epoch.

    After each epoch the checkpoint `<output_dir>/epoch-<k>` is saved (manifest: the records so
    far under `manifest_extra(records)`, or under `sft`), the log is rewritten, and
    `on_epoch(checkpoint_path, record)` is called (e.g. to export it).
    """
    if config.max_minutes is None and config.max_steps is None:
        raise ValueError("give max_minutes or max_steps: the schedule needs a budget")
    device = torch.device(config.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, tokenizer, _ = load_checkpoint(config.init_checkpoint)
    max_length = model.config.max_position_embeddings
    # The workers start before the model touches the device (spawned processes, no CUDA state).
    stream = BatchStream(config, max_length=max_length, pad_token_id=tokenizer.pad_token_id)
    try:
        return _train(
            config, model, tokenizer, stream, device, output_dir, on_epoch, manifest_extra
        )
    finally:
        stream.close()


def _train(
    config: ContinueConfig,
    model: BailingMoeForCausalLM,
    tokenizer: Any,
    stream: BatchStream,
    device: torch.device,
    output_dir: Path,
    on_epoch: Callable[[Path, dict[str, Any]], None] | None,
    manifest_extra: Callable[[list[dict[str, Any]]], dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    from training.sft import training_loss

    model.to(device)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.learning_rate,
        betas=config.betas,
        weight_decay=config.weight_decay,
        fused=device.type == "cuda",
    )
    precision = config.precision
    autocast = _autocast_for(device, precision)
    heldout = heldout_examples(tokenizer, config.heldout_per_level)

    def measure() -> dict[str, float]:
        return {
            name: round(
                heldout_loss(
                    model,
                    examples,
                    device=device,
                    autocast=autocast,
                    tokens_per_batch=config.tokens_per_batch,
                    pad_token_id=tokenizer.pad_token_id,
                ),
                5,
            )
            for name, examples in heldout.items()
        }

    start_loss = measure()
    logger.info("held-out loss before training: %s", start_loss)
    print(f"held-out loss before: {start_loss}", flush=True)
    budget_s = config.max_minutes * 60 if config.max_minutes is not None else None
    records: list[dict[str, Any]] = []
    step = tokens = target_tokens = 0
    started = time.perf_counter()
    epoch_started = started
    epoch_losses: list[float] = []
    epoch_tokens = 0

    def progress() -> float:
        done = []
        if config.max_steps:
            done.append(step / config.max_steps)
        if budget_s:
            done.append((time.perf_counter() - started) / budget_s)
        return max(done)

    while progress() < 1.0:
        batch = to_device_batch(next(stream), device)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(progress(), step, config)
        try:
            with autocast():
                loss, cross_entropy = training_loss(model, batch, config.balance_coefficient)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        except RuntimeError as error:
            if step > 0 or precision == "fp32":
                raise
            # bf16 autocast is an optimisation: a kernel that refuses it must not cost the run.
            logger.warning("bf16 autocast failed (%s); continuing in float32", error)
            print(f"bf16 autocast failed ({error}); continuing in float32", flush=True)
            precision = "fp32"
            autocast = _autocast_for(device, precision)
            optimizer.zero_grad(set_to_none=True)
            continue
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        num_tokens = batch.num_tokens
        tokens += num_tokens
        epoch_tokens += num_tokens
        target_tokens += batch.num_target_tokens
        epoch_losses.append(cross_entropy)  # a device tensor: no sync per step
        now = time.perf_counter()
        if step % 50 == 0:
            print(
                f"step {step} loss {float(cross_entropy):.4f} lr {optimizer.param_groups[0]['lr']:.2e} "
                f"{tokens / (now - started):.0f} tok/s elapsed {now - started:.0f} s",
                flush=True,
            )
        epoch_done = len(epoch_losses) >= config.steps_per_epoch or (
            config.epoch_minutes is not None and now - epoch_started >= config.epoch_minutes * 60
        )
        if epoch_done or progress() >= 1.0:
            seconds = now - epoch_started
            record = {
                "epoch": len(records) + 1,
                "step": step,
                "steps": len(epoch_losses),
                "train_tokens": epoch_tokens,
                "mean_loss": round(float(torch.stack(epoch_losses).mean()), 5),
                "seconds": round(seconds, 1),
                "tokens_per_second": round(epoch_tokens / max(seconds, 1e-9), 1),
                "heldout_loss": measure(),
                "precision": precision,
                "skipped_too_long": stream.skipped,
            }
            records.append(record)
            checkpoint = output_dir / f"epoch-{record['epoch']}"
            extra = (
                manifest_extra(records)
                if manifest_extra
                else {"sft": {"epochs": records, "config": config.as_dict()}}
            )
            save_checkpoint(model, tokenizer, checkpoint, manifest_extra=extra)
            _write_log(output_dir, config, records, start_loss, step, tokens, target_tokens)
            print(f"epoch {record['epoch']}: {json.dumps(record)}", flush=True)
            if on_epoch:
                on_epoch(checkpoint, record)
            epoch_started = time.perf_counter()
            epoch_losses = []
            epoch_tokens = 0
    return records


def _write_log(
    output_dir: Path,
    config: ContinueConfig,
    records: list[dict[str, Any]],
    start_loss: dict[str, float],
    step: int,
    tokens: int,
    target_tokens: int,
) -> None:
    payload = {
        "config": config.as_dict(),
        "heldout_loss_before": start_loss,
        "steps": step,
        "train_tokens": tokens,
        "target_tokens": target_tokens,
        "epochs": records,
    }
    staging = output_dir / f".{LOG_NAME}.tmp"
    staging.write_text(json.dumps(payload, indent=2) + "\n")
    staging.replace(output_dir / LOG_NAME)
