"""C3PO / GRPO maths as pure, stateless torch functions (verl `core_algos.py` style).

Each function maps one equation of the Ring-lite paper (arXiv 2506.14731, docs/c3po-spec.md §1)
to tensors; nothing here holds state, touches a model or reads a config file, so each can be checked
against numbers computed by hand. The aggregation mode is always an explicit argument.

Shape legend (suffixes on every tensor name):
    B  responses in the batch (K responses per prompt, groups contiguous in batch order)
    T  response tokens (right-padded; a mask marks the real ones)
    V  vocabulary
"""

from __future__ import annotations

import functools
from typing import Literal, NamedTuple

import torch

from training.c3po.config import AdvantageStd, C3POConfig

AggregationMode = Literal["budget", "token-mean", "seq-mean-token-mean"]


def group_advantages(
    rewards_B: torch.Tensor,
    group_ids_B: torch.Tensor,
    eps: float = 1e-6,
    *,
    normalize_std: bool = True,
    std: AdvantageStd = "sample",
) -> torch.Tensor:
    """GRPO sequence-level advantages A_i = (R_i − mean_g) / (std_g + eps) (paper Eq. 2).

    Must be called on COMPLETE groups (all K responses of each prompt), before any budget
    selection. `std` "sample" is the Bessel-corrected standard deviation (÷ K − 1, as verl and
    TRL), "population" divides by K (`C3POConfig.adv_std`; the paper does not say which).
    A group of one response and a group whose rewards are all equal get advantage 0 (no signal).

    Args:
        rewards_B: float [B] rewards.
        group_ids_B: int [B] group (prompt) id of each response; any integers.
        normalize_std: False gives the Dr.-GRPO-style mean-centred advantage R_i − mean_g.
    Returns:
        adv_B: float32 [B].
    """
    assert rewards_B.shape == group_ids_B.shape and rewards_B.dim() == 1
    rewards_B = rewards_B.to(torch.float32)
    _, inverse_B = torch.unique(group_ids_B, return_inverse=True)
    n_groups = int(inverse_B.max().item()) + 1 if inverse_B.numel() else 0
    count_G = torch.zeros(n_groups).index_add_(0, inverse_B, torch.ones_like(rewards_B))
    sum_G = torch.zeros(n_groups).index_add_(0, inverse_B, rewards_B)
    mean_G = sum_G / count_G
    centred_B = rewards_B - mean_G[inverse_B]
    sq_G = torch.zeros(n_groups).index_add_(0, inverse_B, centred_B**2)
    # Bessel correction for "sample"; a group of one has no spread (and would divide by zero).
    dof_G = (count_G - 1).clamp(min=1) if std == "sample" else count_G
    std_G = torch.sqrt(sq_G / dof_G)
    # A group of one or of equal rewards carries no signal: 0 explicitly, even when eps = 0.
    no_signal_B = (count_G[inverse_B] < 2) | (std_G[inverse_B] == 0)
    if normalize_std:
        adv_B = centred_B / (std_G[inverse_B] + eps)
    else:
        adv_B = centred_B
    return torch.where(no_signal_B, torch.zeros_like(adv_B), adv_B)


def group_advantages_loop(
    rewards: list[float],
    group_ids: list[int],
    eps: float = 1e-6,
    *,
    normalize_std: bool = True,
    std: AdvantageStd = "sample",
) -> list[float]:
    """Plain-Python reference of `group_advantages` (used by the tests to cross-check)."""
    groups: dict[int, list[float]] = {}
    for r, g in zip(rewards, group_ids, strict=True):
        groups.setdefault(g, []).append(r)
    out = []
    for r, g in zip(rewards, group_ids, strict=True):
        members = groups[g]
        if len(members) < 2:
            out.append(0.0)
            continue
        mean = sum(members) / len(members)
        dof = len(members) - 1 if std == "sample" else len(members)
        var = sum((m - mean) ** 2 for m in members) / dof
        out.append((r - mean) / (var**0.5 + eps) if normalize_std else r - mean)
    return out


class BudgetSelection(NamedTuple):
    """Result of `token_budget_mask`.

    selection_mask_BT: float [B, T], 1 on the tokens this optimiser update trains on.
    selected_tokens: how many tokens are selected (== Φ unless the batch is short).
    shortfall: Φ − selected_tokens (0 when the batch held at least Φ tokens).
    consumed_responses: responses 0..consumed_responses−1 were (fully or partly) selected; the
        last of them is the cut one when the cut fell inside a response.
    """

    selection_mask_BT: torch.Tensor
    selected_tokens: int
    shortfall: int
    consumed_responses: int


def token_budget_mask(response_mask_BT: torch.Tensor, budget_tokens: int) -> BudgetSelection:
    """Greedy token-budget selection of C3PO (paper §"token budget", docs/c3po-spec.md §1).

    Responses are taken in batch order (group by group) until the cumulative number of response
    tokens reaches Φ = budget_tokens. The response that crosses Φ is cut at the token where the
    running total equals Φ exactly; its later tokens and all later responses get mask 0.

    Args:
        response_mask_BT: [B, T] 0/1 (bool, int or float), 1 on real response tokens.
        budget_tokens: Φ > 0.
    Returns:
        BudgetSelection with selection_mask_BT float32 [B, T].
    """
    assert budget_tokens > 0
    valid_BT = response_mask_BT.to(torch.bool)
    # Row-major flattening is batch order then token order: exactly the greedy order.
    running_BT = valid_BT.flatten().to(torch.int64).cumsum(0).view_as(valid_BT)
    selected_BT = valid_BT & (running_BT <= budget_tokens)
    selected = int(selected_BT.sum().item())
    per_response_B = selected_BT.sum(dim=1)
    consumed = int((per_response_B > 0).nonzero().max().item()) + 1 if selected else 0
    return BudgetSelection(
        selection_mask_BT=selected_BT.to(torch.float32),
        selected_tokens=selected,
        shortfall=budget_tokens - selected,
        consumed_responses=consumed,
    )


def token_budget_mask_loop(response_mask_BT: torch.Tensor, budget_tokens: int) -> BudgetSelection:
    """Token-by-token reference of `token_budget_mask` (used by the tests to cross-check)."""
    out_BT = torch.zeros(response_mask_BT.shape, dtype=torch.float32)
    total = 0
    consumed = 0
    for b in range(response_mask_BT.shape[0]):
        for t in range(response_mask_BT.shape[1]):
            if response_mask_BT[b, t] and total < budget_tokens:
                out_BT[b, t] = 1.0
                total += 1
                consumed = b + 1
    return BudgetSelection(out_BT, total, budget_tokens - total, consumed)


def clipped_surrogate(
    logp_BT: torch.Tensor,
    old_logp_BT: torch.Tensor,
    adv_B: torch.Tensor,
    eps_clip: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO clipped surrogate per token: min(r·A, clip(r, 1−ε, 1+ε)·A), r = exp(logp − old_logp).

    Args:
        logp_BT: [B, T] log π_θ of the sampled tokens (requires grad).
        old_logp_BT: [B, T] log π_old (behaviour policy, no grad).
        adv_B: [B] sequence advantage, broadcast to every token of its response.
    Returns:
        objective_BT: [B, T] surrogate to MAXIMISE (padding positions hold garbage: mask them).
        clipped_BT: [B, T] bool, True where the clipped branch is the active minimum.
    """
    ratio_BT = torch.exp(logp_BT - old_logp_BT)
    adv_BT = adv_B.to(logp_BT.dtype).unsqueeze(1)
    unclipped_BT = ratio_BT * adv_BT
    clipped_obj_BT = torch.clamp(ratio_BT, 1.0 - eps_clip, 1.0 + eps_clip) * adv_BT
    objective_BT = torch.minimum(unclipped_BT, clipped_obj_BT)
    return objective_BT, clipped_obj_BT < unclipped_BT


def kl_k3(logp_BT: torch.Tensor, ref_logp_BT: torch.Tensor) -> torch.Tensor:
    """Per-token KL(π_θ‖π_ref) estimate, k3 = exp(ref − logp) − (ref − logp) − 1 (≥ 0).

    The paper does not name its estimator; k3 (Schulman's unbiased, non-negative estimator, also
    verl's "low_var_kl") is our choice, see docs/c3po.md. Shapes [B, T] → [B, T].
    """
    delta_BT = ref_logp_BT - logp_BT
    return torch.exp(delta_BT) - delta_BT - 1.0


def token_entropy(logits_BTV: torch.Tensor) -> torch.Tensor:
    """Full-vocabulary entropy H_t = −Σ_v p_v log p_v of each position, computed in fp32.

    Args:
        logits_BTV: [B, T, V] (temperature already applied if any).
    Returns:
        entropy_BT: [B, T].
    """
    logits_BTV = logits_BTV.float()
    logp_BTV = torch.log_softmax(logits_BTV, dim=-1)
    return -(logp_BTV.exp() * logp_BTV).sum(dim=-1)


def aggregate_loss(
    per_token_BT: torch.Tensor,
    mask_BT: torch.Tensor,
    *,
    mode: AggregationMode,
    budget_tokens: int | None = None,
    global_token_count: int | None = None,
    global_sequence_count: int | None = None,
) -> torch.Tensor:
    """Reduce a per-token quantity to a scalar; the divisor is explicit and GLOBAL.

    Modes:
        "budget": Σ_masked / Φ — C3PO. Φ is the constant of the whole optimiser update, so the
            losses of micro-batches (and data-parallel ranks) add up to the loss of the full batch.
        "token-mean": Σ_masked / N_tokens — the GRPO baseline. N_tokens is `global_token_count`
            (the update's valid tokens, summed over micro-batches) or, if None, this mask's sum.
        "seq-mean-token-mean": mean over responses of each response's token mean; the outer
            divisor is `global_sequence_count` or, if None, the responses with any masked token.
    Args:
        per_token_BT: [B, T]; mask_BT: [B, T] 0/1.
    Returns:
        scalar tensor.
    """
    mask_BT = mask_BT.to(per_token_BT.dtype)
    masked_BT = per_token_BT * mask_BT
    if mode == "budget":
        assert budget_tokens is not None and budget_tokens > 0, "budget mode needs Φ"
        return masked_BT.sum() / budget_tokens
    if mode == "token-mean":
        count = global_token_count if global_token_count is not None else mask_BT.sum()
        return masked_BT.sum() / torch.clamp(torch.as_tensor(count, dtype=masked_BT.dtype), min=1)
    if mode == "seq-mean-token-mean":
        tokens_B = mask_BT.sum(dim=1)
        seq_mean_B = masked_BT.sum(dim=1) / tokens_B.clamp(min=1)
        n_seq = global_sequence_count
        if n_seq is None:
            n_seq = int((tokens_B > 0).sum().item())
        return seq_mean_B.sum() / max(n_seq, 1)
    raise ValueError(f"unknown aggregation mode {mode!r}")


class LossTerms(NamedTuple):
    """Scalar pieces of one (micro-)batch's loss; `loss` is what backward is called on.

    policy_loss = −Σ surrogate / divisor, kl = Σ k3 / divisor, entropy = Σ H / divisor (all under
    the same aggregation). Diagnostics (means over the masked tokens, for logging) are detached.
    """

    loss: torch.Tensor
    policy_loss: torch.Tensor
    kl: torch.Tensor
    entropy: torch.Tensor
    load_balance: torch.Tensor
    router_z: torch.Tensor
    clip_fraction_sum: torch.Tensor
    kl_sum: torch.Tensor
    entropy_sum: torch.Tensor
    token_count: torch.Tensor


def c3po_loss(
    *,
    logp_BT: torch.Tensor,
    old_logp_BT: torch.Tensor,
    ref_logp_BT: torch.Tensor,
    adv_B: torch.Tensor,
    mask_BT: torch.Tensor,
    entropy_BT: torch.Tensor,
    load_balance: torch.Tensor,
    router_z: torch.Tensor,
    config: C3POConfig,
    mode: AggregationMode,
    global_token_count: int | None = None,
    aux_weight: float = 1.0,
) -> LossTerms:
    """L = L_C3PO − α_ent·H + α_bal·B + α_z·Z (paper Eq. 3–6) for one (micro-)batch.

    L_C3PO = −(1/Φ) Σ_selected [min(r·A, clip(r)·A) − β·KL], H = (1/Φ) Σ_selected H_t, with
    Φ = config.budget_tokens in "budget" mode (C3PO); "token-mean" (GRPO baseline) divides by the
    update's valid-token count instead. `aux_weight` scales this micro-batch's MoE auxiliary losses:
    its share of the tokens the auxiliary losses average over (every prompt and response token the
    update forwards, not only the response tokens), so that the micro-batches' losses sum to the
    full update's (`C3POConfig.aux_loss_scope`).

    Args:
        logp_BT, old_logp_BT, ref_logp_BT: [B, T] log-probs of the sampled tokens under the
            current, behaviour and frozen reference policies.
        adv_B: [B]; mask_BT: [B, T] selection mask; entropy_BT: [B, T] (may carry grad).
        load_balance, router_z: scalar MoE auxiliary losses of this forward.
    """
    objective_BT, clipped_BT = clipped_surrogate(logp_BT, old_logp_BT, adv_B, config.eps_clip)
    kl_BT = kl_k3(logp_BT, ref_logp_BT)
    agg = functools.partial(
        aggregate_loss,
        mode=mode,
        budget_tokens=config.budget_tokens,
        global_token_count=global_token_count,
    )
    surrogate = agg(objective_BT - config.kl_beta * kl_BT, mask_BT)
    policy_loss = -agg(objective_BT, mask_BT)
    kl = agg(kl_BT, mask_BT)
    entropy = agg(entropy_BT, mask_BT)
    loss = (
        -surrogate
        - config.entropy_coef * entropy
        + aux_weight * (config.load_balance_coef * load_balance + config.router_z_coef * router_z)
    )
    mask_f_BT = mask_BT.to(torch.float32)
    return LossTerms(
        loss=loss,
        policy_loss=policy_loss.detach(),
        kl=kl.detach(),
        entropy=entropy.detach(),
        load_balance=load_balance.detach(),
        router_z=router_z.detach(),
        clip_fraction_sum=(clipped_BT.float() * mask_f_BT).sum().detach(),
        kl_sum=(kl_BT.detach().float() * mask_f_BT).sum(),
        entropy_sum=(entropy_BT.detach().float() * mask_f_BT).sum(),
        token_count=mask_f_BT.sum(),
    )


def warmup_constant_lr(step: int, *, base_lr: float, warmup_steps: int) -> float:
    """Learning rate at optimiser step `step` (0-based): linear warm-up, then constant (paper)."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return base_lr
    return base_lr * (step + 1) / warmup_steps
