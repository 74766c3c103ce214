"""GPU check: ringmodel at Ring-lite's real width on one CUDA device, in a few minutes.

Builds BailingMoeForCausalLM with inclusionAI/Ring-lite's config (RING_LITE_CONFIG: hidden 2048,
16/4 heads, 64 experts top-6 + 2 shared of width 1408, vocabulary 126,464) cut to `--layers`
decoder layers, in bf16 with random weights (nothing is downloaded), and measures

  1. forward and forward+backward tokens/s and peak memory (with and without activation
     checkpointing), and one AdamW step's peak;
  2. one MoE layer's routed experts as ringmodel's per-expert loop against a grouped GEMM
     (`torch._grouped_mm`, or a padded `torch.bmm` where that is missing or refuses), forward and
     forward+backward, with the max |difference| of outputs and input gradients;
  3. one LoRA C3PO update (peft adapters on attention, experts and shared experts; the KL
     reference = the same model with adapters disabled) on synthetic rollouts of mixed length,
     through the trainer's own loss code;
  4. training/plan.py's predicted peak memory for each measured configuration against the
     measured peak.

Every section runs on its own; a failure is recorded (with its traceback) and the next section
still runs. Results are rewritten after every section as `<out>/gpu_check.json` and
`<out>/gpu_check.md`, so a run cut short still leaves what it measured.

Run on a CUDA host:   python bench/gpu_check.py --out "$OUT"
Smoke test on a CPU:  .venv/bin/python bench/gpu_check.py --quick --out runs/gpu-check
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import ringmodel as rm  # noqa: E402
from ringmodel.moe import routed_experts_forward  # noqa: E402

# --quick: Ring-lite's structure (GQA, 64→8 experts top-k, shared experts, norm_head) at a width a
# CPU runs in seconds; only for checking that the script works before a GPU is lent.
QUICK_OVERRIDES: dict[str, Any] = {
    "vocab_size": 512,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "num_shared_experts": 2,
    "moe_intermediate_size": 64,
    "max_position_embeddings": 1024,
}


# ---- small helpers -----------------------------------------------------------------------------


class Clock:
    """Wall time of a callable on the device (synchronised), median over repeats after warm-up."""

    def __init__(self, device: torch.device, repeats: int) -> None:
        self.device = device
        self.repeats = repeats

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def median_s(self, fn: Callable[[], Any], warmup: int = 1) -> float:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(self.repeats):
            self.sync()
            started = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - started)
        return statistics.median(times)


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_bytes(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def allocated_bytes(device: torch.device) -> int | None:
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else None


def gib(value: float | None) -> str:
    return "—" if value is None else f"{value / 2**30:.2f}"


def build_model(config: rm.BailingMoeConfig, device: torch.device, dtype: torch.dtype):
    """Random-weight model built directly on the device in `dtype` (no CPU copy, no download)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            model = rm.BailingMoeForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.to(device=device, dtype=dtype)


def model_config(args: argparse.Namespace) -> rm.BailingMoeConfig:
    overrides: dict[str, Any] = {"num_hidden_layers": args.layers}
    if args.quick:
        overrides.update(QUICK_OVERRIDES)
    return rm.BailingMoeConfig.ring_lite(**overrides)


def plan_module():
    """training.plan when it is importable (it is pure Python), else None."""
    try:
        from training import plan
    except ImportError:
        return None
    return plan


# ---- sections ----------------------------------------------------------------------------------


def section_forward_backward(args, device, dtype, clock) -> dict[str, Any]:
    from training.c3po.activation_checkpointing import apply_activation_checkpointing

    config = model_config(args)
    reset_peak(device)
    model = build_model(config, device, dtype)
    weights_bytes = allocated_bytes(device)
    params = sum(p.numel() for p in model.parameters())
    batch, seq = args.batch, args.seq
    tokens = batch * seq
    generator = torch.Generator(device="cpu").manual_seed(1)
    ids = torch.randint(0, config.vocab_size, (batch, seq), generator=generator).to(device)
    out: dict[str, Any] = {
        "layers": config.num_hidden_layers,
        "parameters": params,
        "batch": batch,
        "seq": seq,
        "tokens": tokens,
        "weights_bytes": weights_bytes,
    }

    model.eval()

    def forward() -> None:
        with torch.no_grad():
            model(ids, use_cache=False)

    reset_peak(device)
    out["forward_s"] = clock.median_s(forward)
    out["forward_tokens_per_s"] = tokens / out["forward_s"]
    out["forward_peak_bytes"] = peak_bytes(device)

    model.train()

    def forward_backward() -> None:
        result = model(ids, labels=ids, use_cache=False)
        result.loss.backward()
        model.zero_grad(set_to_none=True)

    reset_peak(device)
    out["train_s"] = clock.median_s(forward_backward)
    out["train_tokens_per_s"] = tokens / out["train_s"]
    out["train_peak_bytes"] = peak_bytes(device)

    # AdamW (states in the parameters' dtype, as torch keeps them) in steady state: the first
    # step creates the states, the second — forward, backward, step — is measured.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    for _ in range(2):
        reset_peak(device)
        model(ids, labels=ids, use_cache=False).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.sync()
    out["adamw_step_peak_bytes"] = peak_bytes(device)
    del optimizer

    apply_activation_checkpointing(model)
    reset_peak(device)
    out["train_ac_s"] = clock.median_s(forward_backward)
    out["train_ac_tokens_per_s"] = tokens / out["train_ac_s"]
    out["train_ac_peak_bytes"] = peak_bytes(device)
    return out


def stacked_expert_weights(experts) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """[E, out, in] leaf copies of the experts' gate/up/down weights (torchtitan's layout)."""
    with torch.no_grad():
        gate = torch.stack([e.gate_proj.weight for e in experts])
        up = torch.stack([e.up_proj.weight for e in experts])
        down = torch.stack([e.down_proj.weight for e in experts])
    return tuple(w.clone().requires_grad_(True) for w in (gate, up, down))


def grouped_mm_experts(x_ND, counts_E, gate_EID, up_EID, down_EDI) -> torch.Tensor:
    """SwiGLU of every expert on its contiguous slice, three `torch._grouped_mm` calls."""
    offsets_E = counts_E.cumsum(0).to(torch.int32)
    h_NI = F.silu(
        torch._grouped_mm(x_ND, gate_EID.transpose(-2, -1), offs=offsets_E)
    ) * torch._grouped_mm(x_ND, up_EID.transpose(-2, -1), offs=offsets_E)
    return torch._grouped_mm(h_NI, down_EDI.transpose(-2, -1), offs=offsets_E)


def padded_bmm_experts(x_ND, counts_E, gate_EID, up_EID, down_EDI) -> torch.Tensor:
    """The same as one padded batched matmul: every expert's slice padded to the largest."""
    num_experts = counts_E.numel()
    capacity = int(counts_E.max().item())
    starts_E = torch.cumsum(counts_E, 0) - counts_E
    rank_N = torch.arange(x_ND.shape[0], device=x_ND.device) - torch.repeat_interleave(
        starts_E, counts_E
    )
    expert_N = torch.repeat_interleave(torch.arange(num_experts, device=x_ND.device), counts_E)
    x_ECD = x_ND.new_zeros(num_experts, capacity, x_ND.shape[1])
    x_ECD = x_ECD.index_put((expert_N, rank_N), x_ND)
    h_ECI = F.silu(torch.bmm(x_ECD, gate_EID.transpose(1, 2))) * torch.bmm(
        x_ECD, up_EID.transpose(1, 2)
    )
    y_ECD = torch.bmm(h_ECI, down_EDI.transpose(1, 2))
    return y_ECD[expert_N, rank_N]


def section_moe_kernels(args, device, dtype, clock) -> dict[str, Any]:
    config = model_config(args)
    torch.manual_seed(2)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            block = rm.BailingMoeSparseBlock(
                hidden_size=config.hidden_size,
                moe_intermediate_size=config.moe_intermediate_size,
                num_experts=config.num_experts,
                num_experts_per_tok=config.num_experts_per_tok,
                num_shared_experts=0,
                norm_topk_prob=config.norm_topk_prob,
            )
    finally:
        torch.set_default_dtype(previous)
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.normal_(0.0, 0.02)
    tokens = args.batch * args.seq
    x_TD = torch.randn(tokens, config.hidden_size, device=device, dtype=dtype)
    with torch.no_grad():
        topk_weights_TK, topk_ids_TK, _ = block.gate(x_TD)
    experts = list(block.experts)
    gate_w, up_w, down_w = stacked_expert_weights(experts)
    top_k = topk_ids_TK.shape[1]
    flat_ids_N = topk_ids_TK.reshape(-1)
    order_N = torch.argsort(flat_ids_N, stable=True)
    token_of_N = order_N // top_k
    counts_E = torch.bincount(flat_ids_N, minlength=config.num_experts)
    weights_N1 = topk_weights_TK.reshape(-1)[order_N].unsqueeze(-1)

    def combine(y_ND: torch.Tensor) -> torch.Tensor:
        out_TD = torch.zeros(tokens, config.hidden_size, dtype=torch.float32, device=device)
        out_TD.index_add_(0, token_of_N, y_ND.float() * weights_N1)
        return out_TD.to(dtype)

    def loop(x: torch.Tensor) -> torch.Tensor:
        return routed_experts_forward(experts, x, topk_ids_TK, topk_weights_TK)

    kernels: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"loop": loop}
    notes: list[str] = []
    grouped_ok = hasattr(torch, "_grouped_mm")
    if grouped_ok:
        try:
            probe = grouped_mm_experts(
                x_TD[token_of_N][:0].contiguous(), counts_E * 0, gate_w, up_w, down_w
            )
            del probe
        except Exception as error:  # the kernel's dtype/arch/alignment rules vary by build
            notes.append(f"torch._grouped_mm refused an empty probe: {error}")
    if grouped_ok:
        kernels["grouped_mm"] = lambda x: combine(
            grouped_mm_experts(x[token_of_N], counts_E, gate_w, up_w, down_w)
        )
    else:
        notes.append("torch._grouped_mm is missing from this torch build")
    kernels["padded_bmm"] = lambda x: combine(
        padded_bmm_experts(x[token_of_N], counts_E, gate_w, up_w, down_w)
    )

    out: dict[str, Any] = {
        "tokens": tokens,
        "experts": config.num_experts,
        "top_k": config.num_experts_per_tok,
        "hidden": config.hidden_size,
        "moe_intermediate": config.moe_intermediate_size,
        "tokens_per_expert_min_max": [int(counts_E.min()), int(counts_E.max())],
        "kernels": {},
        "notes": notes,
    }
    x_ref = x_TD.detach().clone().requires_grad_(True)
    reference_y = loop(x_ref)
    reference_y.float().square().mean().backward()
    reference_grad = x_ref.grad.detach().clone()
    reference_y = reference_y.detach()
    scale = float(reference_y.float().abs().max())
    for name, kernel in kernels.items():
        row: dict[str, Any] = {}
        try:
            x_in = x_TD.detach().clone().requires_grad_(True)
            y = kernel(x_in)
            y.float().square().mean().backward()
            row["max_abs_diff"] = float((y.detach().float() - reference_y.float()).abs().max())
            row["max_abs_diff_grad_x"] = float(
                (x_in.grad.float() - reference_grad.float()).abs().max()
            )
            row["output_max_abs"] = scale

            def forward_only(kernel=kernel) -> None:
                with torch.no_grad():
                    kernel(x_TD)

            def forward_backward(kernel=kernel) -> None:
                x_step = x_TD.detach().clone().requires_grad_(True)
                kernel(x_step).float().square().mean().backward()

            row["forward_s"] = clock.median_s(forward_only)
            row["train_s"] = clock.median_s(forward_backward)
            row["forward_tokens_per_s"] = tokens / row["forward_s"]
            row["train_tokens_per_s"] = tokens / row["train_s"]
        except Exception as error:
            row["error"] = f"{type(error).__name__}: {error}"
        out["kernels"][name] = row
        for w in (gate_w, up_w, down_w):
            w.grad = None
        block.zero_grad(set_to_none=True)
    loop_row = out["kernels"]["loop"]
    for row in out["kernels"].values():
        if "train_s" in row and "train_s" in loop_row:
            row["train_speedup_vs_loop"] = loop_row["train_s"] / row["train_s"]
            row["forward_speedup_vs_loop"] = loop_row["forward_s"] / row["forward_s"]
    return out


def synthetic_rollouts(args, config, generator):
    """Rollouts of mixed length (a right-padded batch, as the trainer packs them)."""
    from training.c3po.rollout_buffer import Rollout

    rollouts = []
    group_size = 4
    for index in range(args.lora_responses):
        prompt_len = args.lora_prompt
        # Lengths from half to the full response length: the batch needs padding.
        response_len = args.lora_response // 2 + int(
            torch.randint(0, args.lora_response // 2 + 1, (1,), generator=generator)
        )
        rollouts.append(
            Rollout(
                problem_id=str(index // group_size),
                group_id=index // group_size,
                prompt_ids=torch.randint(
                    1, config.vocab_size, (prompt_len,), generator=generator
                ).tolist(),
                response_ids=torch.randint(
                    1, config.vocab_size, (response_len,), generator=generator
                ).tolist(),
                reward=float(index % 2),
                advantage=1.0 if index % 2 else -1.0,
                finished=True,
                old_logp_T=torch.empty(0),
                ref_logp_T=torch.empty(0),
                sampled_at_step=0,
            )
        )
    return rollouts


def section_lora_step(args, device, dtype, clock) -> dict[str, Any]:
    from training.c3po.config import C3POConfig
    from training.c3po.lora import LoraSpec, apply_lora, reference_mode
    from training.c3po.rollout_buffer import SelectedRollout
    from training.c3po.update import c3po_update, fill_logprobs

    config = model_config(args)
    reset_peak(device)
    base = build_model(config, device, dtype)
    spec = LoraSpec(rank=args.lora_rank, alpha=2 * args.lora_rank)
    started = time.perf_counter()
    policy = apply_lora(base, spec)
    wrap_s = time.perf_counter() - started
    trainable = [p for p in policy.parameters() if p.requires_grad]
    generator = torch.Generator(device="cpu").manual_seed(3)
    rollouts = synthetic_rollouts(args, config, generator)
    total_tokens = sum(r.num_tokens for r in rollouts)
    budget = (total_tokens * 3) // 4  # the cut falls inside a response
    c3po = C3POConfig.ring_lite(budget_tokens=budget, micro_batch_size=args.lora_micro_batch)
    pad_id = 0
    out: dict[str, Any] = {
        "lora": spec.to_dict(),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "base_parameters": sum(p.numel() for p in base.parameters() if not p.requires_grad),
        "peft_wrap_s": wrap_s,
        "responses": len(rollouts),
        "response_tokens": total_tokens,
        "budget_tokens": budget,
        "micro_batch": args.lora_micro_batch,
        "prompt_tokens": args.lora_prompt,
        "max_response_tokens": args.lora_response,
    }
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, betas=c3po.adam_betas)
    # A few adapter tensors suffice to see the step move them (and keep the measured peak clean).
    lora_b = [(n, p) for n, p in policy.named_parameters() if "lora_B" in n][:4]
    before = {n: p.detach().clone() for n, p in lora_b}
    frozen_name, frozen = next((n, p) for n, p in policy.named_parameters() if not p.requires_grad)
    frozen_before = frozen.detach().clone()
    policy.eval()
    reset_peak(device)
    started = time.perf_counter()
    with reference_mode(policy):
        fill_logprobs(rollouts, policy, "ref_logp_T", c3po, pad_id)
    clock.sync()
    out["reference_logprobs_s"] = time.perf_counter() - started
    out["reference_logprobs_peak_bytes"] = peak_bytes(device)
    # Sampled by this policy: π_old is the training forward's own (detached) log-probs.
    from training.c3po.rollout_buffer import RolloutBuffer

    buffer = RolloutBuffer()
    buffer.add_groups(rollouts)
    selected: list[SelectedRollout] = buffer.take(budget, "carry")
    policy.train()
    # The first update creates AdamW's states; the second (steady state) is the one measured.
    for _ in range(2):
        reset_peak(device)
        started = time.perf_counter()
        stats = c3po_update(
            policy=policy,
            optimizer=optimizer,
            selected=selected,
            config=c3po,
            step=0,
            pad_token_id=pad_id,
        )
        clock.sync()
    out["update_s"] = time.perf_counter() - started
    out["update_peak_bytes"] = peak_bytes(device)
    out["update_tokens_per_s"] = stats["tokens_trained"] / out["update_s"]
    out["tokens_trained"] = stats["tokens_trained"]
    out["loss"] = stats["loss"]
    out["kl"] = stats["kl"]
    out["grad_norm"] = stats["grad_norm"]
    out["loss_finite"] = math.isfinite(stats["loss"])
    out["adapters_moved"] = any(
        not torch.equal(before[n], p.detach()) for n, p in policy.named_parameters() if n in before
    )
    out["base_unchanged"] = bool(torch.equal(frozen_before, frozen.detach()))
    out["base_checked"] = frozen_name
    del policy, base, optimizer
    return out


def section_plan(args, results) -> dict[str, Any]:
    plan = plan_module()
    if plan is None:
        return {"skipped": "training.plan is not importable in this checkout"}
    config = model_config(args)
    rows = []
    fb = results["sections"].get("forward_backward", {})
    lora = results["sections"].get("lora_step", {})
    dtype_bytes = 4 if args.dtype == "float32" else 2
    for key, ac, optimizer in (
        ("train_peak_bytes", False, False),
        ("train_ac_peak_bytes", True, False),
        ("adamw_step_peak_bytes", False, True),
    ):
        if key not in fb:
            continue
        predicted = plan.measured_step_memory(
            config,
            mode="full",
            dtype_bytes=dtype_bytes,
            batch=args.batch,
            seq=args.seq,
            activation_checkpointing=ac,
            optimizer_states=optimizer,
        )
        rows.append(
            _plan_row(
                f"full fwd+bwd{' +AC' if ac else ''}{' +AdamW' if optimizer else ''}",
                predicted,
                fb[key],
            )
        )
    if "update_peak_bytes" in lora:
        predicted = plan.measured_step_memory(
            config,
            mode="lora",
            lora_rank=args.lora_rank,
            dtype_bytes=dtype_bytes,
            batch=args.lora_micro_batch,
            seq=args.lora_prompt + args.lora_response,
            response_tokens=args.lora_response,
            activation_checkpointing=False,
            optimizer_states=True,
            # The update ran with the trainer's default chunked head (C3POConfig).
            head_chunk_tokens=plan.HEAD_CHUNK_TOKENS,
        )
        rows.append(_plan_row("LoRA C3PO update", predicted, lora["update_peak_bytes"]))
    return {"rows": rows}


def _plan_row(name: str, predicted: dict[str, float], measured: int | None) -> dict[str, Any]:
    total = predicted["total"]
    return {
        "case": name,
        "predicted_bytes": total,
        "measured_bytes": measured,
        "ratio": total / measured if measured else None,
        "predicted_parts": predicted,
    }


# ---- report ------------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [
        f"# GPU check — {env.get('device_name', env['device'])}",
        "",
        f"torch {env['torch']}, transformers {env['transformers']}, "
        f"{env['dtype']}, Ring-lite width with {results['args']['layers']} layers"
        f"{' (QUICK: tiny CPU sizes)' if results['args']['quick'] else ''}; "
        f"total {results.get('total_s', 0):.0f} s.",
        "",
    ]
    sections = results["sections"]
    fb = sections.get("forward_backward", {})
    if "error" in fb or not fb:
        lines += [f"forward/backward: {fb.get('error', 'not run')}", ""]
    else:
        lines += [
            f"## Model forward/backward ({fb['parameters']:,} parameters, "
            f"batch {fb['batch']} × {fb['seq']} tokens)",
            "",
            "| pass | tokens/s | peak GiB |",
            "|---|---|---|",
            f"| forward (no grad) | {fb['forward_tokens_per_s']:,.0f} | "
            f"{gib(fb['forward_peak_bytes'])} |",
            f"| forward + backward | {fb['train_tokens_per_s']:,.0f} | "
            f"{gib(fb['train_peak_bytes'])} |",
            f"| forward + backward, activation checkpointing | "
            f"{fb['train_ac_tokens_per_s']:,.0f} | {gib(fb['train_ac_peak_bytes'])} |",
            f"| forward + backward + AdamW step | — | {gib(fb['adamw_step_peak_bytes'])} |",
            "",
            f"Weights alone: {gib(fb['weights_bytes'])} GiB.",
            "",
        ]
    moe = sections.get("moe_kernels", {})
    if "error" in moe or not moe:
        lines += [f"MoE kernels: {moe.get('error', 'not run')}", ""]
    else:
        lines += [
            f"## One MoE layer's routed experts ({moe['tokens']:,} tokens, {moe['experts']} "
            f"experts top-{moe['top_k']}, {moe['hidden']}→{moe['moe_intermediate']}; tokens per "
            f"expert {moe['tokens_per_expert_min_max'][0]}–{moe['tokens_per_expert_min_max'][1]})",
            "",
            "| kernel | fwd tokens/s | fwd+bwd tokens/s | fwd+bwd speed-up vs loop | "
            "max abs diff (out / grad x) |",
            "|---|---|---|---|---|",
        ]
        for name, row in moe["kernels"].items():
            if "error" in row:
                lines.append(f"| {name} | error: {row['error'][:120]} | | | |")
                continue
            lines.append(
                f"| {name} | {row['forward_tokens_per_s']:,.0f} | "
                f"{row['train_tokens_per_s']:,.0f} | "
                f"{row.get('train_speedup_vs_loop', 1.0):.2f}× | "
                f"{row['max_abs_diff']:.2e} / {row['max_abs_diff_grad_x']:.2e} |"
            )
        lines += [""] + [f"Note: {note}" for note in moe.get("notes", [])] + [""]
    lora = sections.get("lora_step", {})
    if "error" in lora or not lora:
        lines += [f"LoRA C3PO step: {lora.get('error', 'not run')}", ""]
    else:
        lines += [
            f"## One LoRA C3PO update (rank {lora['lora']['rank']}, "
            f"{lora['trainable_parameters']:,} trainable of "
            f"{lora['trainable_parameters'] + lora['base_parameters']:,})",
            "",
            f"{lora['responses']} responses of up to {lora['max_response_tokens']} tokens after "
            f"{lora['prompt_tokens']}-token prompts, Φ = {lora['budget_tokens']:,} "
            f"(micro-batch {lora['micro_batch']}): update {lora['update_s']:.2f} s "
            f"({lora['update_tokens_per_s']:,.0f} trained tokens/s), peak "
            f"{gib(lora['update_peak_bytes'])} GiB; reference log-probs (adapters disabled) "
            f"{lora['reference_logprobs_s']:.2f} s, peak {gib(lora['reference_logprobs_peak_bytes'])}"
            f" GiB; loss {lora['loss']:.4g} (finite: {lora['loss_finite']}), adapters moved: "
            f"{lora['adapters_moved']}, base unchanged: {lora['base_unchanged']}; peft wrap "
            f"{lora['peft_wrap_s']:.1f} s.",
            "",
        ]
    plan = sections.get("plan", {})
    if plan.get("rows"):
        lines += [
            "## training/plan.py against the measured peak",
            "",
            "| case | predicted GiB | measured GiB | predicted / measured |",
            "|---|---|---|---|",
        ]
        for row in plan["rows"]:
            lines.append(
                f"| {row['case']} | {gib(row['predicted_bytes'])} | {gib(row['measured_bytes'])} "
                f"| {row['ratio']:.2f} |"
                if row["ratio"] is not None
                else f"| {row['case']} | {gib(row['predicted_bytes'])} | — | — |"
            )
        lines.append("")
    elif plan:
        lines += [f"Plan: {plan.get('skipped') or plan.get('error')}", ""]
    errors = {k: v["error"] for k, v in sections.items() if isinstance(v, dict) and "error" in v}
    if errors:
        lines += ["## Errors", ""] + [f"- {k}: {v}" for k, v in errors.items()] + [""]
    return "\n".join(lines)


def write(results: dict[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out_dir / "gpu_check.md").write_text(markdown(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="directory for the results")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a CPU smoke test")
    parser.add_argument("--layers", type=int, default=4, help="decoder layers (Ring-lite has 28)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--lora-responses", type=int, default=16)
    parser.add_argument("--lora-prompt", type=int, default=256)
    parser.add_argument("--lora-response", type=int, default=1024)
    parser.add_argument("--lora-micro-batch", type=int, default=8)
    parser.add_argument(
        "--sections",
        default="forward_backward,moe_kernels,lora_step,plan",
        help="comma-separated subset to run",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.layers = min(args.layers, 2)
        args.batch, args.seq, args.repeats = 2, 64, 1
        args.lora_responses, args.lora_prompt, args.lora_response = 6, 16, 32
        args.lora_micro_batch, args.lora_rank = 4, 4
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        # Small matmuls on a shared CPU wait at OpenMP barriers with more than one thread.
        torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)
    clock = Clock(device, args.repeats)
    import transformers

    results: dict[str, Any] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "environment": {
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or "cpu",
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
            "dtype": args.dtype,
            "grouped_mm": hasattr(torch, "_grouped_mm"),
            "total_memory_bytes": torch.cuda.get_device_properties(device).total_memory
            if device.type == "cuda"
            else None,
        },
        "sections": {},
    }
    started = time.perf_counter()
    runners = {
        "forward_backward": lambda: section_forward_backward(args, device, dtype, clock),
        "moe_kernels": lambda: section_moe_kernels(args, device, dtype, clock),
        "lora_step": lambda: section_lora_step(args, device, dtype, clock),
        "plan": lambda: section_plan(args, results),
    }
    for name in [s.strip() for s in args.sections.split(",") if s.strip()]:
        section_started = time.perf_counter()
        print(f"[gpu_check] {name} ...", flush=True)
        try:
            results["sections"][name] = runners[name]()
        except Exception as error:
            results["sections"][name] = {
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(),
            }
            print(traceback.format_exc(), flush=True)
        results["sections"][name]["section_s"] = time.perf_counter() - section_started
        results["total_s"] = time.perf_counter() - started
        reset_peak(device)
        write(results, args.out)
        print(
            f"[gpu_check] {name} done in {results['sections'][name]['section_s']:.1f} s", flush=True
        )
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
