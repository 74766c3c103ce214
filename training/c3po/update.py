"""One C3PO optimiser update and the teacher-forced log-prob passes, as functions of a policy.

`c3po_update` is the update of `C3POTrainer.train_step` (step 3 of the loop): micro-batched
forward/backward of `core_algos.c3po_loss`, every micro-batch divided by the GLOBAL Φ (or the
GRPO baseline's global valid-token count), grad clipping and the AdamW step. It runs the same
code in one process and on every rank of a data-parallel group: a `Communicator`
(training/c3po/distributed.py) sums the metrics across ranks and keeps the ranks' forward
passes in step (FSDP2 sums the gradients in backward); the default one is the single
process, where all of that is the identity. Each rank trains only the selected responses it owns
(`Rollout.owner_rank`, the rank that sampled them); the selection itself is global. `fill_logprobs` recomputes log-probs of stored
responses (π_old, the frozen reference, or a LoRA policy with its adapters disabled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ringmodel import expert_counts, load_balance_loss, router_z_loss
from training.c3po.config import C3POConfig
from training.c3po.core_algos import c3po_loss, warmup_constant_lr
from training.c3po.distributed import Communicator, SingleProcess, local_tensor
from training.c3po.rollout_buffer import Rollout, SelectedRollout

# Additive metrics of one update; summed across ranks before they are turned into means.
_SUM_KEYS = ("loss", "policy_loss", "load_balance", "router_z", "clip", "kl", "entropy")


@dataclass
class Packed:
    """A micro-batch of prompt+response sequences, right-padded.

    input_ids_BS / attention_mask_BS: the model input. positions_BT: index into S of the logits
    that predict response token t. tokens_BT / mask_BT: response tokens and their validity.
    """

    input_ids_BS: torch.Tensor
    attention_mask_BS: torch.Tensor
    positions_BT: torch.Tensor
    tokens_BT: torch.Tensor
    mask_BT: torch.Tensor

    def to(self, device: torch.device) -> Packed:
        return Packed(*(t.to(device) for t in self.__dict__.values()))


def pack(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int) -> Packed:
    """Right-padded (prompt, response) pairs; a response may be empty."""
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
    return Packed(input_ids_BS, attention_mask_BS, positions_BT, tokens_BT, mask_BT)


def model_device(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def model_config_of(model: torch.nn.Module) -> Any:
    """The ringmodel config of a plain, peft-wrapped or FSDP-wrapped policy."""
    return model.config


def response_forward(
    model: torch.nn.Module,
    packed: Packed,
    temperature: float,
    *,
    router: bool,
    chunk_tokens: int = 0,
    entropy: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
    """(logp_BT of the response tokens, entropy_BT, router logits), the logits divided by
    `temperature`, the output head run `chunk_tokens` positions at a time (C3POConfig.head_chunk_tokens):
    the model scores only the response positions and never returns [B, S, V] logits.
    `entropy=False` (the passes that keep only log-probs) skips the entropy: entropy_BT is None."""
    # No attention mask: the rows are right-padded, so under causal attention no real token can
    # see a pad, and positions are 0..n-1 either way. Without a mask SDPA takes its fused causal
    # kernel; with one it falls back to materialising B×H×S×S scores (on CUDA, with GQA).
    out = model(
        input_ids=packed.input_ids_BS,
        use_cache=False,
        output_router_logits=router,
        token_positions=packed.positions_BT,
        token_ids=packed.tokens_BT,
        # The behaviour policy sampled from softmax(z / T); its ratio must use the same.
        token_temperature=temperature,
        token_chunk=chunk_tokens,
        output_token_entropy=entropy,
    )
    return out.token_logprobs, out.token_entropy, out.router_logits


def pad_rows(rows: Sequence[torch.Tensor], width: int) -> torch.Tensor:
    out = torch.zeros((len(rows), width), dtype=torch.float32)
    for b, row in enumerate(rows):
        out[b, : row.numel()] = row
    return out


@torch.no_grad()
def fill_logprobs(
    rollouts: list[Rollout],
    model: torch.nn.Module,
    attribute: str,
    config: C3POConfig,
    pad_token_id: int,
    communicator: Communicator | None = None,
) -> None:
    """Teacher-forced log-probs of every response token under `model`, stored on each rollout
    as `attribute` (ref_logp_T with the reference, old_logp_T with the policy).

    With a sharded model every rank must run the same number of forwards, so a rank with fewer
    micro-batches runs the missing ones on a one-token dummy batch.
    """
    comm = communicator or SingleProcess()
    size = config.micro_batch_size
    device = model_device(model)
    chunks = [
        chunk
        for start in range(0, len(rollouts), size)
        if (chunk := [r for r in rollouts[start : start + size] if r.num_tokens > 0])
    ]
    passes = comm.max_int(len(chunks)) if comm.world_size > 1 else len(chunks)
    for index in range(passes):
        if index >= len(chunks):
            _dummy_forward(model, pad_token_id, device, config.temperature, entropy=False)
            continue
        chunk = chunks[index]
        packed = pack([(r.prompt_ids, r.response_ids) for r in chunk], pad_token_id).to(device)
        logp_BT, _, _ = response_forward(
            model,
            packed,
            config.temperature,
            router=False,
            chunk_tokens=config.head_chunk_tokens,
            entropy=False,
        )
        logp_BT = logp_BT.float().cpu()
        for b, rollout in enumerate(chunk):
            setattr(rollout, attribute, logp_BT[b, : rollout.num_tokens].clone())


def _dummy_forward(
    model: torch.nn.Module,
    pad_token_id: int,
    device: torch.device,
    temperature: float,
    *,
    entropy: bool = True,
) -> torch.Tensor:
    """A forward on one two-token sequence whose loss contributes nothing (× 0): it keeps a rank
    with fewer micro-batches in step with the sharded model's collectives (the entropy, computed
    after the head's weight is gathered, runs no collective, so passes without it may skip it)."""
    packed = pack([([pad_token_id], [pad_token_id])], pad_token_id).to(device)
    logp_BT, entropy_BT, router_logits = response_forward(
        model, packed, temperature, router=True, entropy=entropy
    )
    zero = logp_BT.sum() * 0.0
    if entropy_BT is not None:
        zero = zero + entropy_BT.sum() * 0.0
    if router_logits:
        zero = zero + sum(r.sum() for r in router_logits) * 0.0
    return zero


def accumulate_gradients(
    *,
    policy: torch.nn.Module,
    selected: list[SelectedRollout],
    config: C3POConfig,
    step: int,
    pad_token_id: int,
    communicator: Communicator | None = None,
) -> tuple[dict[str, float], int]:
    """Forward/backward of this rank's share of one update; gradients accumulate in `.grad`.

    `selected` is the update's GLOBAL selection (identical on every rank); this rank trains the
    responses it owns. The loss of every micro-batch on every rank is divided by the same global
    divisor (Φ for C3PO, the update's total selected tokens for GRPO), and the MoE auxiliary
    losses are weighted by the micro-batch's share of every token the update forwards on all
    ranks (with aux_loss_scope="update" the expert fractions are the whole update's too); so the
    gradients summed over micro-batches and ranks are the gradient of the whole update as one
    batch. Returns this rank's metric sums and the global token count.
    """
    comm = communicator or SingleProcess()
    cfg = config
    total_tokens = sum(s.selected_tokens for s in selected)
    mine = [s for s in selected if s.rollout.owner_rank == comm.rank]
    mode = "budget" if cfg.algorithm == "c3po" else "token-mean"
    sums = dict.fromkeys(_SUM_KEYS, 0.0)
    policy.train()
    device = model_device(policy)
    model_config = model_config_of(policy)
    micro_batches = [
        mine[start : start + cfg.micro_batch_size]
        for start in range(0, len(mine), cfg.micro_batch_size)
    ]
    passes = comm.max_int(len(micro_batches)) if comm.world_size > 1 else len(micro_batches)
    aux_tokens, expert_fraction_LE = _aux_loss_plan(
        policy, selected, micro_batches, passes, cfg, pad_token_id, comm
    )
    for index in range(passes):
        if index >= len(micro_batches):
            _dummy_forward(policy, pad_token_id, device, cfg.temperature).backward()
            continue
        micro = micro_batches[index]
        pairs = [(s.rollout.prompt_ids, s.rollout.response_ids[: s.selected_tokens]) for s in micro]
        packed = pack(pairs, pad_token_id).to(device)
        logp_BT, entropy_BT, router_logits = response_forward(
            policy, packed, cfg.temperature, router=True, chunk_tokens=cfg.head_chunk_tokens
        )
        assert entropy_BT is not None, "the update pass scores with entropy"
        width = packed.mask_BT.shape[1]
        old_BT = pad_rows([s.rollout.old_logp_T[: s.selected_tokens] for s in micro], width)
        old_BT = old_BT.to(device)
        fresh_B = torch.tensor([s.rollout.old_logp_T.numel() == 0 for s in micro], device=device)
        if bool(fresh_B.any()):
            # Sampled by the policy as it is now: π_old = this forward's log-probs, detached.
            assert all(
                s.rollout.sampled_at_step == step
                for s, f in zip(micro, fresh_B.tolist(), strict=True)
                if f
            ), "a rollout from an earlier step lacks its behaviour-policy log-probs"
            old_BT = torch.where(fresh_B.unsqueeze(1), logp_BT.detach(), old_BT)
        ref_BT = pad_rows([s.rollout.ref_logp_T[: s.selected_tokens] for s in micro], width)
        ref_BT = ref_BT.to(device)
        adv_B = torch.tensor(
            [s.rollout.advantage for s in micro], dtype=torch.float32, device=device
        )
        mask_BS = packed.attention_mask_BS
        balance = load_balance_loss(
            router_logits,
            model_config.num_experts_per_tok,
            model_config.num_experts,
            mask=mask_BS,
            expert_fraction_LE=expert_fraction_LE,
        )
        z_loss = router_z_loss(router_logits, mask=mask_BS)
        # B and Z average over every token forwarded (prompt and response), so this
        # micro-batch's weight is its share of those tokens over the whole update, on all ranks
        # (C3POConfig.aux_loss_scope).
        share = int(mask_BS.sum().item()) / max(aux_tokens, 1)
        terms = c3po_loss(
            logp_BT=logp_BT,
            old_logp_BT=old_BT,
            ref_logp_BT=ref_BT,
            adv_B=adv_B,
            mask_BT=packed.mask_BT,
            entropy_BT=entropy_BT,
            load_balance=balance,
            router_z=z_loss,
            config=cfg,
            mode=mode,
            global_token_count=total_tokens,
            aux_weight=share,
        )
        terms.loss.backward()
        sums["loss"] += terms.loss.item()
        sums["policy_loss"] += terms.policy_loss.item()
        sums["load_balance"] += share * terms.load_balance.item()
        sums["router_z"] += share * terms.router_z.item()
        sums["clip"] += terms.clip_fraction_sum.item()
        sums["kl"] += terms.kl_sum.item()
        sums["entropy"] += terms.entropy_sum.item()
    return sums, total_tokens


def _aux_loss_plan(
    policy: torch.nn.Module,
    selected: list[SelectedRollout],
    micro_batches: list[list[SelectedRollout]],
    passes: int,
    config: C3POConfig,
    pad_token_id: int,
    comm: Communicator,
) -> tuple[int, torch.Tensor | None]:
    """(tokens the MoE auxiliary losses average over, the update's expert fractions F or None).

    The token count is global (prompt + selected response tokens of the whole selection). With
    aux_loss_scope="update" and several micro-batches in the update, F is counted over the whole
    update by a routing pass without gradient (summed over ranks; a rank with fewer micro-batches
    runs dummy forwards so a sharded model's collectives stay in step), so that B's gradient does
    not depend on the split; otherwise (None) each micro-batch measures F on its own tokens.
    """
    aux_tokens = sum(len(s.rollout.prompt_ids) + s.selected_tokens for s in selected)
    if (
        config.aux_loss_scope != "update"
        or config.load_balance_coef == 0
        or len(selected) <= config.micro_batch_size
    ):
        return aux_tokens, None
    device = model_device(policy)
    model_config = model_config_of(policy)
    shape = (model_config.num_hidden_layers, model_config.num_experts)
    counts_LE = torch.zeros(shape, dtype=torch.float64)
    with torch.no_grad():
        for index in range(passes):
            if index >= len(micro_batches):
                _dummy_forward(policy, pad_token_id, device, 1.0, entropy=False)
                continue
            micro = micro_batches[index]
            pairs = [
                (s.rollout.prompt_ids, s.rollout.response_ids[: s.selected_tokens]) for s in micro
            ]
            packed = pack(pairs, pad_token_id).to(device)
            _, _, router_logits = response_forward(policy, packed, 1.0, router=True, entropy=False)
            counts = expert_counts(
                router_logits,
                model_config.num_experts_per_tok,
                model_config.num_experts,
                packed.attention_mask_BS,
            )
            counts_LE[: counts.shape[0]] += counts.double().cpu()
    if comm.world_size > 1:
        counts_LE = torch.tensor(comm.sum_floats(counts_LE.flatten().tolist())).view(shape)
    counts_LE = counts_LE[counts_LE.sum(dim=-1) > 0].float()  # MoE layers only
    fraction_LE = counts_LE / counts_LE.sum(dim=-1, keepdim=True).clamp(min=1)
    return aux_tokens, fraction_LE.to(device)


def c3po_update(
    *,
    policy: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    selected: list[SelectedRollout],
    config: C3POConfig,
    step: int,
    pad_token_id: int,
    communicator: Communicator | None = None,
) -> dict[str, float]:
    """One optimiser update (see `accumulate_gradients`): gradients, global grad-norm clipping,
    AdamW with the warm-up/constant lr; returns the update's metrics, reduced over ranks."""
    comm = communicator or SingleProcess()
    lr = warmup_constant_lr(step, base_lr=config.lr, warmup_steps=config.warmup_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    sums, total_tokens = accumulate_gradients(
        policy=policy,
        selected=selected,
        config=config,
        step=step,
        pad_token_id=pad_token_id,
        communicator=comm,
    )
    trainable = [p for p in policy.parameters() if p.requires_grad]
    grad_norm = local_tensor(torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip))
    if total_tokens > 0:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    reduced = dict(zip(_SUM_KEYS, comm.sum_floats([sums[k] for k in _SUM_KEYS]), strict=True))
    denom = max(total_tokens, 1)
    return {
        "loss": reduced["loss"],
        "policy_loss": reduced["policy_loss"],
        "load_balance": reduced["load_balance"],
        "router_z": reduced["router_z"],
        "clip_fraction": reduced["clip"] / denom,
        "kl": reduced["kl"] / denom,
        "entropy": reduced["entropy"] / denom,
        "grad_norm": float(grad_norm),
        "lr": lr,
        "tokens_trained": float(total_tokens),
    }
