"""Memory and time plan of a C3PO job: will it fit, and what is the smallest setup that would.

Pure Python (no torch): the dashboard's launch form imports it to show the plan and refuse a job
that cannot fit, and `python -m training.plan` prints the same table. Given a model config
(ring-tiny, Ring-lite or any Bailing-MoE config.json), the mode (full fine-tuning or LoRA of a
rank), the world size and each GPU's memory, and C3PO's Φ, L, K and lengths, it prices per GPU:

- weights, gradients and AdamW state (full: FSDP2-sharded over the ranks in bf16-mixed precision,
  fp32 master weights, gradients and states, plus the bf16 reference policy sharded the same way;
  LoRA: the frozen bf16 base on every rank — it is also the KL reference — and fp32 adapters);
- activations of one micro-batch, with and without activation checkpointing, from a per-token
  count of the tensors ringmodel's forward saves for backward (docs/c3po.md, "The plan");
- the rollout engine: its weight copy and the KV cache of this rank's share of the L×K rollouts;
- the serving copy during a blue/green swap (two engines on the serving GPU at once).

Time is a throughput model: 6 (8 with recomputation) × active parameters FLOPs per trained token,
2 per reference/π_old token, and decode at a fraction of peak — assumptions are fields of `Gpu`.
`bench/gpu_check.py` and `bench/bench_plan_memory.py` compare the numbers with measured peaks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from training.c3po.config import C3POConfig

# What the trainer runs unless a job sets it (C3POConfig.head_chunk_tokens).
HEAD_CHUNK_TOKENS = C3POConfig.head_chunk_tokens

GIB = 2**30
CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
PRESETS = {"ring-tiny": CONFIG_DIR / "ring-tiny.json", "ring-lite": CONFIG_DIR / "ring-lite.json"}

Mode = Literal["full", "lora"]
Precision = Literal["bf16-mixed", "bf16", "fp32"]
Head = Literal["c3po", "cross_entropy"]

# Usable share of a GPU's memory (the CUDA context, allocator fragmentation and NCCL buffers
# take the rest); the same margin vLLM's gpu_memory_utilization defaults to.
USABLE_FRACTION = 0.9
# LoRA groups as in training/c3po/lora.py (kept here as strings: this module imports no torch).
LORA_GROUPS = ("attention", "dense_mlp", "experts", "shared_experts")


@dataclass(frozen=True)
class ModelShape:
    """The fields of a Bailing-MoE config.json that size memory and compute."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    num_experts: int
    num_experts_per_tok: int
    num_shared_experts: int
    moe_intermediate_size: int
    first_k_dense_replace: int
    tie_word_embeddings: bool = False
    use_bias: bool = False
    use_qkv_bias: bool = False
    norm_head: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | Any) -> ModelShape:
        """From a config.json dict or any object with the same attributes (BailingMoeConfig)."""

        def get(name: str, default: Any = None) -> Any:
            if isinstance(config, Mapping):
                return config.get(name, default)
            return getattr(config, name, default)

        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = get(f.name, f.default)
            if value is dataclasses.MISSING or value is None:
                if f.name == "head_dim":
                    value = get("hidden_size") // get("num_attention_heads")
                else:
                    raise ValueError(f"model config lacks {f.name!r}")
            values[f.name] = value
        return cls(**values)

    @property
    def moe_layers(self) -> int:
        return self.num_hidden_layers - self.first_k_dense_replace

    @property
    def dense_layers(self) -> int:
        return self.first_k_dense_replace

    def _swiglu(self, width: int) -> int:
        return 3 * self.hidden_size * width + (
            (2 * width + self.hidden_size) if self.use_bias else 0
        )

    def attention_parameters(self) -> int:
        d, hd = self.hidden_size, self.head_dim
        qkv_out = (self.num_attention_heads + 2 * self.num_key_value_heads) * hd
        params = d * qkv_out + self.num_attention_heads * hd * d
        if self.use_qkv_bias or self.use_bias:
            params += qkv_out
        if self.use_bias:
            params += d
        return params

    def layer_parameters(self, moe: bool) -> int:
        """(All) parameters of one decoder layer."""
        norms = 2 * self.hidden_size
        if not moe:
            return self.attention_parameters() + norms + self._swiglu(self.intermediate_size)
        routed = self.num_experts * self._swiglu(self.moe_intermediate_size)
        shared = (
            self._swiglu(self.moe_intermediate_size * self.num_shared_experts)
            if self.num_shared_experts
            else 0
        )
        router = self.num_experts * self.hidden_size
        return self.attention_parameters() + norms + routed + shared + router

    def parameters(self) -> tuple[int, int]:
        """(total, active per token) — the same numbers as ringmodel.count_parameters."""
        embed = self.vocab_size * self.hidden_size
        head = 0 if self.tie_word_embeddings else embed
        dense = self.dense_layers * self.layer_parameters(moe=False)
        moe = self.moe_layers * self.layer_parameters(moe=True)
        inactive = (
            self.moe_layers
            * (self.num_experts - self.num_experts_per_tok)
            * self._swiglu(self.moe_intermediate_size)
        )
        total = embed + head + dense + moe + self.hidden_size
        return total, total - inactive

    def largest_layer_parameters(self) -> int:
        sizes = [self.vocab_size * self.hidden_size]
        if self.dense_layers:
            sizes.append(self.layer_parameters(moe=False))
        if self.moe_layers:
            sizes.append(self.layer_parameters(moe=True))
        return max(sizes)

    def lora_parameters(self, rank: int, groups: tuple[str, ...] = LORA_GROUPS) -> int:
        """Adapter parameters: rank × (in + out) for every adapted projection."""
        d, hd = self.hidden_size, self.head_dim
        per_layer_attention = rank * (
            d + (self.num_attention_heads + 2 * self.num_key_value_heads) * hd
        ) + rank * (self.num_attention_heads * hd + d)

        def swiglu(width: int) -> int:
            return 3 * rank * (d + width)

        total = 0
        if "attention" in groups:
            total += self.num_hidden_layers * per_layer_attention
        if "dense_mlp" in groups:
            total += self.dense_layers * swiglu(self.intermediate_size)
        if "experts" in groups:
            total += self.moe_layers * self.num_experts * swiglu(self.moe_intermediate_size)
        if "shared_experts" in groups and self.num_shared_experts:
            total += self.moe_layers * swiglu(self.moe_intermediate_size * self.num_shared_experts)
        return total

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """K and V of one token in every layer (the rollout engine's cache)."""
        return 2 * self.num_hidden_layers * self.num_key_value_heads * self.head_dim * dtype_bytes

    # -- activations ---------------------------------------------------------------------------

    def layer_activation_bytes(self, *, moe: bool, a: int, mode: Mode, rank: int = 0) -> float:
        """Bytes one decoder layer keeps for backward per token (ringmodel's forward as written).

        a: bytes of the compute dtype. Counted from the tensors autograd saves (measured with a
        saved-tensor hook, docs/c3po.md): both RMSNorms keep an fp32 copy of their input and their
        cast output; attention keeps the fused QKV
        output, the rotated q and k, SDPA's output and log-sum-exp and the re-laid-out input of
        `dense`; a SwiGLU keeps gate, up, silu(gate) and their product; the MoE layer keeps the
        router's fp32 input, the expert-sorted token copies (K per token), each routed expert's
        SwiGLU tensors and the fp32 weighted outputs (two copies of K·D).
        """
        d, hd = self.hidden_size, self.head_dim
        h, g = self.num_attention_heads, self.num_key_value_heads
        k = self.num_experts_per_tok
        norms = 2 * (4 * d + a * d)
        attention = a * ((h + 2 * g) * hd + h * hd + g * hd + 2 * h * hd) + 8 * h
        if moe:
            i = self.moe_intermediate_size
            shared = 4 * a * i * self.num_shared_experts
            mlp = 4 * d + 16 * self.num_experts + 24 * k + a * d * k + 4 * a * i * k + 8 * d * k
            mlp += shared
        else:
            mlp = 4 * a * self.intermediate_size
        lora = 0
        if mode == "lora" and rank:
            # Each adapted projection keeps its rank-r intermediate (and dropout mask if any).
            lora = a * rank * (2 + (3 * k + 3 if moe else 3))
        return norms + attention + mlp + lora

    def activation_bytes(
        self,
        *,
        batch: int,
        seq: int,
        response_tokens: int,
        a: int,
        mode: Mode,
        rank: int = 0,
        activation_checkpointing: bool,
        head: Head = "c3po",
        head_chunk_tokens: int = HEAD_CHUNK_TOKENS,
    ) -> dict[str, float]:
        """Peak activation bytes of one forward+backward of `batch` sequences of `seq` tokens
        (`response_tokens` of them trained per sequence; the C3PO head scores them
        `head_chunk_tokens` at a time, 0 = all at once)."""
        tokens = batch * seq
        per_layer = [
            self.layer_activation_bytes(
                moe=i >= self.first_k_dense_replace, a=a, mode=mode, rank=rank
            )
            for i in range(self.num_hidden_layers)
        ]
        if activation_checkpointing:
            # Each layer keeps its input; one layer at a time is recomputed in backward.
            layers = tokens * (self.num_hidden_layers * a * self.hidden_size + max(per_layer))
        else:
            layers = tokens * sum(per_layer)
        embed = tokens * (
            8 + 2 * a * self.head_dim + 4 * self.hidden_size + 2 * a * self.hidden_size
        )
        v, d = self.vocab_size, self.hidden_size
        # norm_head: the column-normalised output weight is built every forward (fp32 + cast).
        head_weight = (4 + a) * v * d
        if head == "cross_entropy":
            # The logits in the compute dtype, their fp32 copy (none when that is fp32) and
            # the cross-entropy's fp32 log-softmax.
            logits = tokens * v * (a + 4 + (4 if a < 4 else 0))
        elif head_chunk_tokens <= 0:
            # Full-sequence logits (bf16 + fp32) while the response positions are gathered, then
            # per trained position: gathered logits, two log-softmaxes, exp, p·logp and grads.
            logits = tokens * v * (a + (4 if a < 4 else 0)) + batch * response_tokens * v * 24
        else:
            # Chunked and recomputed (ringmodel's score_tokens): the gathered hidden states and
            # the fp32 log-prob and entropy of every trained position stay; the ~24 bytes per
            # vocabulary entry exist for one chunk at a time (its forward, then its recompute).
            trained = batch * response_tokens
            logits = trained * (a * d + 8) + min(head_chunk_tokens, trained) * v * 24
        return {
            "layers": layers,
            "embeddings_and_norm": embed,
            "output_head": head_weight + logits,
            "total": layers + embed + head_weight + logits,
        }


def load_model_shape(name_or_path: str | Path) -> ModelShape:
    """A preset name ("ring-tiny", "ring-lite"), a config.json, or a checkpoint directory."""
    key = str(name_or_path).lower()
    path = PRESETS.get(key, Path(name_or_path))
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ValueError(
            f"no model config at {name_or_path!r} (a preset {sorted(PRESETS)}, a config.json or a "
            "checkpoint directory)"
        )
    return ModelShape.from_config(json.loads(path.read_text()))


@dataclass(frozen=True)
class Gpu:
    """One accelerator: memory and the throughput assumptions of the time estimate."""

    memory_gib: float = 80.0
    peak_tflops: float = 989.0  # bf16 dense, H100/H200 SXM
    train_mfu: float = 0.35
    rollout_mfu: float = 0.05  # decoding is memory-bound


@dataclass(frozen=True)
class TrainingSetup:
    """Everything the plan depends on besides the model."""

    mode: Mode = "full"
    lora_rank: int = 16
    lora_groups: tuple[str, ...] = LORA_GROUPS
    world_size: int = 8
    gpu: Gpu = Gpu()
    budget_tokens: int = 409_600
    prompts_per_step: int = 512
    group_size: int = 16
    max_response_tokens: int = 24_576
    prompt_tokens: int = 512
    micro_batch_size: int = 1
    head_chunk_tokens: int = HEAD_CHUNK_TOKENS
    activation_checkpointing: bool = True
    precision: Precision = "bf16-mixed"
    rollout_engine: Literal["vllm", "policy"] = "vllm"
    rollout_tensor_parallel: int = 1
    kv_dtype_bytes: int = 2
    mean_response_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.mode not in ("full", "lora"):
            raise ValueError(f"mode must be 'full' or 'lora', not {self.mode!r}")
        if self.world_size < 1 or self.micro_batch_size < 1 or self.lora_rank < 1:
            raise ValueError("world size, micro-batch and LoRA rank must be positive")
        if self.precision not in ("bf16-mixed", "bf16", "fp32"):
            raise ValueError(f"unknown precision {self.precision!r}")


@dataclass
class Plan:
    """Per-GPU bytes by item, whether it fits, and the time estimate of one step."""

    model: ModelShape
    setup: TrainingSetup
    items: dict[str, float]
    activations_without_checkpointing: float
    activations_with_checkpointing: float
    rollout_kv_full: float
    serving_swap: float
    parameters: int
    active_parameters: int
    trainable_parameters: int
    step_seconds: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.items.values())

    @property
    def capacity(self) -> float:
        return self.setup.gpu.memory_gib * GIB * USABLE_FRACTION

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": dataclasses.asdict(self.model),
            "setup": {
                **dataclasses.asdict(self.setup),
                "lora_groups": list(self.setup.lora_groups),
            },
            "items_bytes": self.items,
            "total_bytes": self.total,
            "capacity_bytes": self.capacity,
            "fits": self.fits,
            "activations_without_checkpointing_bytes": self.activations_without_checkpointing,
            "activations_with_checkpointing_bytes": self.activations_with_checkpointing,
            "rollout_kv_full_bytes": self.rollout_kv_full,
            "serving_swap_bytes": self.serving_swap,
            "parameters": self.parameters,
            "active_parameters": self.active_parameters,
            "trainable_parameters": self.trainable_parameters,
            "step_seconds": self.step_seconds,
        }


def _precision_bytes(precision: Precision) -> tuple[int, int, int, int]:
    """(compute dtype, stored weight, gradient, optimiser state) bytes per parameter."""
    if precision == "bf16-mixed":
        return 2, 4, 4, 8
    if precision == "bf16":
        return 2, 2, 2, 4
    return 4, 4, 4, 8


def make_plan(model: ModelShape, setup: TrainingSetup) -> Plan:
    """Price one rank of the job described by `setup` (see the module docstring)."""
    total_params, active_params = model.parameters()
    a, weight_b, grad_b, optim_b = _precision_bytes(setup.precision)
    world = setup.world_size
    items: dict[str, float] = {}
    if setup.mode == "full":
        trainable = total_params
        items["weights (sharded)"] = weight_b * total_params / world
        if setup.precision == "bf16-mixed":
            # FSDP2 all-gathers one layer in bf16 while the next is prefetched.
            items["weights (gathered layers)"] = 2 * a * model.largest_layer_parameters()
        items["gradients (sharded)"] = grad_b * total_params / world
        items["AdamW state (sharded)"] = optim_b * total_params / world
        items["reference policy (sharded)"] = a * total_params / world
    else:
        trainable = model.lora_parameters(setup.lora_rank, setup.lora_groups)
        items["base weights (frozen; also the KL reference)"] = a * total_params
        # peft keeps adapters of a bf16 base in fp32; AdamW's two states alike.
        items["adapters + gradients + AdamW state"] = 16 * trainable
    seq = setup.prompt_tokens + setup.max_response_tokens
    activation_kwargs = {
        "batch": setup.micro_batch_size,
        "seq": seq,
        "response_tokens": setup.max_response_tokens,
        "a": a,
        "mode": setup.mode,
        "rank": setup.lora_rank if setup.mode == "lora" else 0,
        "head_chunk_tokens": setup.head_chunk_tokens,
    }
    without_ac = model.activation_bytes(activation_checkpointing=False, **activation_kwargs)
    with_ac = model.activation_bytes(activation_checkpointing=True, **activation_kwargs)
    chosen = with_ac if setup.activation_checkpointing else without_ac
    items["activations (one micro-batch)"] = chosen["total"]
    sequences_per_rank = math.ceil(setup.prompts_per_step * setup.group_size / world)
    kv_per_sequence = model.kv_bytes_per_token(setup.kv_dtype_bytes) * seq
    rollout_kv_full = sequences_per_rank * kv_per_sequence
    if setup.rollout_engine == "vllm":
        items["rollout engine weights"] = 2 * total_params / setup.rollout_tensor_parallel
        # At least one group's K sequences at full length in flight; more runs faster.
        items["rollout KV cache (one group in flight)"] = (
            min(setup.group_size, sequences_per_rank) * kv_per_sequence
        )
    else:
        items["rollout KV cache (one group in flight)"] = (
            min(setup.group_size, sequences_per_rank) * kv_per_sequence
        )
    serving_swap = 2 * (2 * total_params) + 2 * kv_per_sequence
    step_seconds = _step_seconds(model, setup, active_params)
    return Plan(
        model=model,
        setup=setup,
        items=items,
        activations_without_checkpointing=without_ac["total"],
        activations_with_checkpointing=with_ac["total"],
        rollout_kv_full=rollout_kv_full,
        serving_swap=serving_swap,
        parameters=total_params,
        active_parameters=active_params,
        trainable_parameters=trainable,
        step_seconds=step_seconds,
    )


def _step_seconds(model: ModelShape, setup: TrainingSetup, active: int) -> dict[str, float]:
    """Rough seconds per optimiser step on `world_size` GPUs (throughput model, see Gpu)."""
    gpu = setup.gpu
    flops_per_s = setup.world_size * gpu.peak_tflops * 1e12
    sampled = (
        setup.prompts_per_step
        * setup.group_size
        * setup.max_response_tokens
        * setup.mean_response_fraction
    )
    # One rollout batch feeds sampled / Φ updates (overflow="carry"); price a step's share.
    updates_per_batch = max(1.0, sampled / setup.budget_tokens)
    train_factor = 8 if setup.activation_checkpointing else 6
    train = setup.budget_tokens * train_factor * active / (flops_per_s * gpu.train_mfu)
    logprob = (sampled / updates_per_batch) * 2 * 2 * active / (flops_per_s * gpu.train_mfu)
    rollout = (sampled / updates_per_batch) * 2 * active / (flops_per_s * gpu.rollout_mfu)
    return {
        "rollout": rollout,
        "logprobs": logprob,
        "train": train,
        "total": rollout + logprob + train,
    }


def smallest_fitting(
    model: ModelShape, setup: TrainingSetup, *, max_world: int = 64
) -> TrainingSetup | None:
    """The least change to `setup` that fits: first activation checkpointing and micro-batch 1,
    then (full) more ranks or (LoRA) nothing more; None when even that does not fit."""
    candidates = [setup]
    lighter = dataclasses.replace(setup, activation_checkpointing=True, micro_batch_size=1)
    candidates.append(lighter)
    if setup.mode == "full":
        world = setup.world_size
        while world < max_world:
            world *= 2
            candidates.append(dataclasses.replace(lighter, world_size=world))
    else:
        candidates.append(dataclasses.replace(lighter, lora_rank=min(setup.lora_rank, 8)))
    for candidate in candidates:
        if make_plan(model, candidate).fits:
            return candidate
    return None


def measured_step_memory(
    config: Mapping[str, Any] | Any,
    *,
    mode: Mode,
    dtype_bytes: int,
    batch: int,
    seq: int,
    response_tokens: int | None = None,
    lora_rank: int = 16,
    activation_checkpointing: bool = False,
    optimizer_states: bool = False,
    head: Head | None = None,
    head_chunk_tokens: int = HEAD_CHUNK_TOKENS,
) -> dict[str, float]:
    """Predicted peak bytes of one single-process step as bench/gpu_check.py and
    bench/bench_plan_memory.py run it (weights and AdamW state in the model's own dtype, one
    micro-batch); `response_tokens=None` means a next-token loss over the whole sequence."""
    model = ModelShape.from_config(config)
    total_params, _ = model.parameters()
    a = dtype_bytes
    parts: dict[str, float] = {"weights": a * total_params}
    if mode == "full":
        parts["gradients"] = a * total_params
        if optimizer_states:
            parts["AdamW state"] = 2 * a * total_params
    else:
        adapters = model.lora_parameters(lora_rank)
        parts["adapters + gradients"] = 8 * adapters
        if optimizer_states:
            parts["AdamW state"] = 8 * adapters
    chosen_head: Head = head or ("cross_entropy" if response_tokens is None else "c3po")
    activations = model.activation_bytes(
        batch=batch,
        seq=seq,
        response_tokens=response_tokens or seq,
        a=a,
        mode=mode,
        rank=lora_rank if mode == "lora" else 0,
        activation_checkpointing=activation_checkpointing,
        head=chosen_head,
        head_chunk_tokens=head_chunk_tokens,
    )
    parts["activations"] = activations["total"]
    parts["total"] = sum(parts.values())
    return parts


# ---- table and CLI -----------------------------------------------------------------------------


def _gib(value: float) -> str:
    return f"{value / GIB:,.1f}" if value >= 0.05 * GIB else f"{value / 2**20:,.1f} MiB"


def format_plan(plan: Plan) -> str:
    """The plan as a markdown table (what the CLI prints and the launch form shows)."""
    s = plan.setup
    header = (
        f"{s.mode}{f' (LoRA rank {s.lora_rank})' if s.mode == 'lora' else ''} on "
        f"{s.world_size} × {s.gpu.memory_gib:g} GiB; Φ {s.budget_tokens:,}, L {s.prompts_per_step}, "
        f"K {s.group_size}, prompt {s.prompt_tokens} + response {s.max_response_tokens} tokens, "
        f"micro-batch {s.micro_batch_size}, activation checkpointing "
        f"{'on' if s.activation_checkpointing else 'off'}, {s.precision}"
    )
    lines = [
        header,
        "",
        f"parameters {plan.parameters:,} (active {plan.active_parameters:,}), trainable "
        f"{plan.trainable_parameters:,}",
        "",
        "| per GPU | GiB |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_gib(value)} |" for name, value in plan.items.items()]
    lines += [
        f"| **total** | **{_gib(plan.total)}** |",
        f"| usable ({USABLE_FRACTION:.0%} of {s.gpu.memory_gib:g} GiB) | {_gib(plan.capacity)} |",
        "",
        f"fits: {'yes' if plan.fits else 'NO'}",
        f"activations per micro-batch: {_gib(plan.activations_without_checkpointing)} GiB without, "
        f"{_gib(plan.activations_with_checkpointing)} GiB with activation checkpointing",
        f"rollout KV cache for all {math.ceil(s.prompts_per_step * s.group_size / s.world_size)} "
        f"sequences of this rank at full length: {_gib(plan.rollout_kv_full)} GiB",
        f"serving copy during a blue/green swap (two engines): {_gib(plan.serving_swap)} GiB",
        "step time (rough): " + ", ".join(f"{k} {v:,.0f} s" for k, v in plan.step_seconds.items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.plan", description="Memory and time plan of a C3PO job."
    )
    parser.add_argument("model", help="ring-tiny, ring-lite, a config.json or checkpoint dir")
    parser.add_argument("--mode", choices=("full", "lora"), default="full")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--world-size", type=int, default=8)
    parser.add_argument("--gpu-gib", type=float, default=80.0)
    parser.add_argument("--budget", type=int, default=409_600, help="Φ")
    parser.add_argument("--prompts", type=int, default=512, help="L")
    parser.add_argument("--group", type=int, default=16, help="K")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--response-tokens", type=int, default=24_576)
    parser.add_argument("--micro-batch", type=int, default=1)
    parser.add_argument(
        "--head-chunk-tokens",
        type=int,
        default=HEAD_CHUNK_TOKENS,
        help="trained positions per chunk of the output head (0 = the whole micro-batch at once)",
    )
    parser.add_argument("--no-activation-checkpointing", action="store_true")
    parser.add_argument("--precision", choices=("bf16-mixed", "bf16", "fp32"), default="bf16-mixed")
    parser.add_argument("--engine", choices=("vllm", "policy"), default="vllm")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    model = load_model_shape(args.model)
    setup = TrainingSetup(
        mode=args.mode,
        lora_rank=args.lora_rank,
        world_size=args.world_size,
        gpu=Gpu(memory_gib=args.gpu_gib),
        budget_tokens=args.budget,
        prompts_per_step=args.prompts,
        group_size=args.group,
        prompt_tokens=args.prompt_tokens,
        max_response_tokens=args.response_tokens,
        micro_batch_size=args.micro_batch,
        head_chunk_tokens=args.head_chunk_tokens,
        activation_checkpointing=not args.no_activation_checkpointing,
        precision=args.precision,
        rollout_engine=args.engine,
    )
    plan = make_plan(model, setup)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
        return 0
    print(format_plan(plan))
    if not plan.fits:
        smallest = smallest_fitting(model, setup)
        if smallest is None:
            print("\nno configuration within 64 ranks fits")
        else:
            print("\nsmallest configuration that fits:\n")
            print(format_plan(make_plan(model, smallest)))
    return 0 if plan.fits else 1


if __name__ == "__main__":
    raise SystemExit(main())
