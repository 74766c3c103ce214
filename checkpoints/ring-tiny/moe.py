"""Mixture-of-experts layer of Ring-lite: softmax top-k router, routed experts, shared experts.

The router is Ring-lite's (docs/c3po-spec.md §8): softmax over all experts, keep the top-k, renormalise the
kept weights to sum to one (``norm_topk_prob``). Routed experts are computed batched by expert:
the (token, expert) assignments are sorted by expert once, each expert's SwiGLU runs on its
contiguous slice, and the weighted results are scattered back with one ``index_add_``. The
per-expert SwiGLUs run by one of three backends (``EXPERT_BACKENDS``, chosen per block by
``BailingMoeSparseBlock.expert_backend``, ``"auto"`` by default, see ``resolve_expert_backend``):
``"loop"`` (one call per expert, never a loop over tokens), ``"grouped"`` (three
``torch._grouped_mm`` calls over the stacked expert weights) or ``"bmm"`` (three padded
``torch.bmm`` calls: every expert's slice padded to the largest). Shared experts see every token. The auxiliary losses of docs/c3po-spec.md §1
(load balance, router z-loss) are pure functions of the router logits.

Module and parameter names are Ring-lite's checkpoint names (``mlp.gate.weight``,
``mlp.experts.{e}.gate_proj.weight``, ``mlp.shared_experts.up_proj.weight`` ...). This file is copied
into every checkpoint as remote code, so it imports only torch.

Shape suffixes (torchtitan style):
    B batch, S sequence, T tokens (B*S flattened), D hidden size, E routed experts,
    K experts per token (top-k), N = T*K (token, expert) assignments, L MoE layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class SwiGLUFeedForward(nn.Module):
    """``down(silu(gate(x)) * up(x))``: the dense MLP, each routed expert and the shared experts."""

    def __init__(self, hidden_size: int, intermediate_size: int, bias: bool = False) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)

    def forward(self, x_TD: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x_TD)) * self.up_proj(x_TD))


class TopKRouter(nn.Module):
    """Softmax router: logits -> softmax -> top-k -> (optionally) renormalised weights, in fp32."""

    def __init__(
        self, hidden_size: int, num_experts: int, top_k: int, norm_topk_prob: bool
    ) -> None:
        super().__init__()
        assert 0 < top_k <= num_experts
        self.num_experts = num_experts
        self.top_k = top_k
        self.norm_topk_prob = norm_topk_prob
        # A bare parameter, not nn.Linear: Ring-lite's checkpoints name it ``mlp.gate.weight``.
        self.weight = nn.Parameter(torch.empty(num_experts, hidden_size))

    def forward(self, x_TD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(topk_weights_TK fp32, topk_ids_TK int64, router_logits_TE fp32)``."""
        # fp32 router maths: with bf16 weights the softmax and top-k ties would drift between
        # training and serving.
        router_logits_TE = F.linear(x_TD.float(), self.weight.float())
        scores_TE = router_logits_TE.softmax(dim=-1)
        topk_weights_TK, topk_ids_TK = torch.topk(scores_TE, k=self.top_k, dim=-1)
        if self.norm_topk_prob:
            # vLLM renormalises for every k (Ring's own remote code skips k == 1, where it is a
            # no-op anyway up to the weight becoming exactly 1); we follow the serving engine.
            topk_weights_TK = topk_weights_TK / topk_weights_TK.sum(dim=-1, keepdim=True)
        return topk_weights_TK, topk_ids_TK, router_logits_TE


def routed_experts_forward(
    experts: Sequence[nn.Module],
    x_TD: torch.Tensor,
    topk_ids_TK: torch.Tensor,
    topk_weights_TK: torch.Tensor,
    backend: str = "loop",
) -> torch.Tensor:
    """Weighted sum of each token's top-k experts, computed batched by expert.

    Sorting the N = T*K assignments by expert makes every expert's tokens one contiguous slice;
    ``backend`` (``"loop"``, ``"grouped"`` or ``"bmm"``, as resolved by
    ``resolve_expert_backend``) runs the SwiGLUs: one call per expert on its [n_e, D] slice, or
    all of them in three stacked-weight matmuls (only for ``stackable_experts``).
    """
    num_tokens, top_k = topk_ids_TK.shape
    flat_ids_N = topk_ids_TK.reshape(-1)
    order_N = torch.argsort(flat_ids_N, stable=True)
    token_of_N = order_N // top_k
    counts_E = torch.bincount(flat_ids_N, minlength=len(experts))
    x_sorted_ND = x_TD[token_of_N]
    if backend in ("grouped", "bmm") and stackable_experts(experts):
        y_sorted_ND = stacked_experts_swiglu(experts, x_sorted_ND, counts_E, backend)
    else:
        y_chunks = [
            expert(chunk_nD)
            for expert, chunk_nD in zip(experts, x_sorted_ND.split(counts_E.tolist()), strict=True)
        ]
        y_sorted_ND = torch.cat(y_chunks, dim=0)
    weights_N1 = topk_weights_TK.reshape(-1)[order_N].unsqueeze(-1)
    out_TD = torch.zeros(num_tokens, x_TD.shape[-1], dtype=torch.float32, device=x_TD.device)
    out_TD.index_add_(0, token_of_N, y_sorted_ND.float() * weights_N1)
    return out_TD.to(x_TD.dtype)


EXPERT_BACKENDS = ("auto", "loop", "grouped", "bmm")
_GROUPED_MM_WORKS: dict[tuple[str, torch.dtype], bool] = {}


def grouped_mm_works(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``torch._grouped_mm`` (a private API) runs, forward and backward, on this device
    type and dtype in this torch build; probed once per (device type, dtype)."""
    key = (device.type, dtype)
    if key not in _GROUPED_MM_WORKS:
        works = hasattr(torch, "_grouped_mm")
        if works:
            try:
                x_ND = torch.randn(3, 16, device=device, dtype=dtype, requires_grad=True)
                w_EDI = torch.randn(2, 16, 16, device=device, dtype=dtype, requires_grad=True)
                offsets_E = torch.tensor([3, 3], device=device, dtype=torch.int32)
                y_ND = torch._grouped_mm(x_ND, w_EDI, offs=offsets_E)
                # A dense gradient, as the experts' outputs get (a broadcast one, as from
                # .sum(), has zero strides, which torch 2.13's CPU backward refuses).
                y_ND.backward(torch.ones_like(y_ND))
            except (RuntimeError, NotImplementedError, TypeError):
                works = False
        _GROUPED_MM_WORKS[key] = works
    return _GROUPED_MM_WORKS[key]


def resolve_expert_backend(requested: str, device: torch.device, dtype: torch.dtype) -> str:
    """The backend that runs: ``"auto"`` is the fastest measured on the device (docs/ringmodel.md):
    ``"grouped"`` on CUDA where ``torch._grouped_mm`` works for the dtype, else ``"loop"``
    (on CPU the padded bmm lost to the loop on ring-tiny's training step); ``"grouped"`` asked
    for where it does not work runs as ``"bmm"``, the same maths."""
    if requested not in EXPERT_BACKENDS:
        raise ValueError(f"unknown expert backend {requested!r} (one of {EXPERT_BACKENDS})")
    if requested == "auto":
        return "grouped" if device.type == "cuda" and grouped_mm_works(device, dtype) else "loop"
    if requested == "grouped" and not grouped_mm_works(device, dtype):
        return "bmm"
    return requested


def stackable_experts(experts: Sequence[nn.Module]) -> bool:
    """Whether the experts' weights can be stacked into one tensor per projection: plain
    bias-free ``nn.Linear`` projections only. A LoRA-wrapped projection (peft) computes more than
    its ``weight``, so those experts keep the loop, which calls each module."""
    for expert in experts:
        for name in ("gate_proj", "up_proj", "down_proj"):
            projection = getattr(expert, name, None)
            if not isinstance(projection, nn.Linear) or type(projection) is not nn.Linear:
                return False
            if projection.bias is not None:
                return False
    return True


def _padded_bmm(
    x_ND: torch.Tensor,
    w_EIO: torch.Tensor,
    expert_N: torch.Tensor,
    slot_N: torch.Tensor,
    capacity: int,
) -> torch.Tensor:
    """Each expert's rows times its [in, out] weight, as one batched matmul over slices padded
    to ``capacity`` rows (the padding rows are zeros and are dropped)."""
    x_ECI = x_ND.new_zeros(w_EIO.shape[0], capacity, x_ND.shape[1])
    x_ECI = x_ECI.index_put((expert_N, slot_N), x_ND)
    return torch.bmm(x_ECI, w_EIO)[expert_N, slot_N]


def stacked_experts_swiglu(
    experts: Sequence[nn.Module], x_ND: torch.Tensor, counts_E: torch.Tensor, kernel: str
) -> torch.Tensor:
    """Every expert's SwiGLU on its contiguous slice of the expert-sorted rows ``x_ND`` with the
    weights stacked per projection, by ``torch._grouped_mm`` (``kernel="grouped"``) or padded
    ``torch.bmm`` (``"bmm"``). Stacking copies the weights each call; the gradient flows back to
    every expert's own parameters through the stack."""
    gate_EDI = torch.stack([e.gate_proj.weight for e in experts]).transpose(1, 2)
    up_EDI = torch.stack([e.up_proj.weight for e in experts]).transpose(1, 2)
    down_EID = torch.stack([e.down_proj.weight for e in experts]).transpose(1, 2)
    if kernel == "grouped":
        offsets_E = counts_E.cumsum(0).to(torch.int32)

        def matmul(rows: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return torch._grouped_mm(rows, w, offs=offsets_E)

    else:
        starts_E = counts_E.cumsum(0) - counts_E
        expert_N = torch.repeat_interleave(torch.arange(len(experts), device=x_ND.device), counts_E)
        slot_N = torch.arange(x_ND.shape[0], device=x_ND.device) - starts_E[expert_N]
        capacity = int(counts_E.max().item()) if counts_E.numel() else 0

        def matmul(rows: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return _padded_bmm(rows, w, expert_N, slot_N, capacity)

    h_NI = F.silu(matmul(x_ND, gate_EDI)) * matmul(x_ND, up_EDI)
    return matmul(h_NI, down_EID)


class BailingMoeSparseBlock(nn.Module):
    """Ring-lite's MoE feed-forward: top-k routed experts plus always-on shared experts."""

    def __init__(
        self,
        hidden_size: int,
        moe_intermediate_size: int,
        num_experts: int,
        num_experts_per_tok: int,
        num_shared_experts: int,
        norm_topk_prob: bool,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.gate = TopKRouter(hidden_size, num_experts, num_experts_per_tok, norm_topk_prob)
        self.experts = nn.ModuleList(
            SwiGLUFeedForward(hidden_size, moe_intermediate_size, bias) for _ in range(num_experts)
        )
        # Ring-lite fuses its shared experts into one MLP of num_shared * moe_intermediate width.
        self.shared_experts = (
            SwiGLUFeedForward(hidden_size, moe_intermediate_size * num_shared_experts, bias)
            if num_shared_experts > 0
            else None
        )
        # Which kernel runs the routed experts (EXPERT_BACKENDS); ringmodel.set_expert_backend
        # sets it on every MoE block of a model. Not a config field: it changes no result.
        self.expert_backend = "auto"

    def forward(self, x_BSD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(out_BSD, router_logits_BSE fp32)``."""
        batch, seq, hidden = x_BSD.shape
        x_TD = x_BSD.reshape(batch * seq, hidden)
        topk_weights_TK, topk_ids_TK, router_logits_TE = self.gate(x_TD)
        backend = resolve_expert_backend(self.expert_backend, x_TD.device, x_TD.dtype)
        out_TD = routed_experts_forward(
            self.experts, x_TD, topk_ids_TK, topk_weights_TK, backend=backend
        )
        if self.shared_experts is not None:
            out_TD = out_TD + self.shared_experts(x_TD)
        return out_TD.view(batch, seq, hidden), router_logits_TE.view(batch, seq, -1)


def _flatten_router_logits(
    router_logits: torch.Tensor | Sequence[torch.Tensor], mask: torch.Tensor | None
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Per-layer logits as [T, E] fp32 plus a flat boolean token mask [T] (or None)."""
    layers = [router_logits] if isinstance(router_logits, torch.Tensor) else list(router_logits)
    assert layers, "no router logits (a model without MoE layers has no auxiliary loss)"
    layers_TE = [layer.reshape(-1, layer.shape[-1]).float() for layer in layers]
    mask_T = None if mask is None else mask.reshape(-1).bool()
    if mask_T is not None:
        assert mask_T.shape[0] == layers_TE[0].shape[0], "mask must cover the router's tokens"
    return layers_TE, mask_T


def expert_counts(
    router_logits: torch.Tensor | Sequence[torch.Tensor],
    top_k: int,
    num_experts: int,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """How many counted (token, expert) assignments went to each expert, per layer: int64 [L, E].

    Counts add up across batches, so the expert fractions F of a batch split into pieces are the
    summed counts of the pieces, normalised (what :func:`load_balance_loss` takes as
    ``expert_fraction_LE`` to be independent of the split). Shapes as in :func:`load_balance_loss`.
    """
    layers_TE, mask_T = _flatten_router_logits(router_logits, mask)
    rows = []
    with torch.no_grad():
        for logits_TE in layers_TE:
            if mask_T is not None:
                logits_TE = logits_TE[mask_T]
            topk_ids_TK = torch.topk(logits_TE.softmax(dim=-1), k=top_k, dim=-1).indices
            rows.append(torch.bincount(topk_ids_TK.reshape(-1), minlength=num_experts))
    return torch.stack(rows)


def load_balance_loss(
    router_logits: torch.Tensor | Sequence[torch.Tensor],
    top_k: int,
    num_experts: int,
    mask: torch.Tensor | None = None,
    expert_fraction_LE: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ring-lite's load-balance loss B = sum_i P_i * F_i (docs/c3po-spec.md §1, paper Eq. 5).

    Args:
        router_logits: one layer's logits [..., E] or a sequence of per-layer logits [B, S, E] /
            [T, E] (what ``forward(output_router_logits=True)`` returns).
        top_k: experts per token.
        num_experts: E.
        mask: [B, S] or [T], 1 for tokens that count (padding excluded); None counts all.
        expert_fraction_LE: F per layer [L, E] measured over a larger batch that these tokens
            are part of (see :func:`expert_counts`); None measures F on these tokens.

    P_i is the mean router probability of expert i over the counted tokens; F_i is the fraction of
    the counted (token, expert) assignments that went to expert i (sum_i F_i = 1). F carries no
    gradient. No factor E is applied (the spec's formula), so perfect balance gives 1/E. The
    result is the mean over layers.
    """
    layers_TE, mask_T = _flatten_router_logits(router_logits, mask)
    if expert_fraction_LE is None:
        counts_LE = expert_counts(router_logits, top_k, num_experts, mask)
        expert_fraction_LE = counts_LE.float() / counts_LE.sum(dim=-1, keepdim=True).clamp(min=1)
    assert expert_fraction_LE.shape == (len(layers_TE), num_experts), expert_fraction_LE.shape
    losses = []
    for logits_TE, fraction_E in zip(layers_TE, expert_fraction_LE, strict=True):
        if mask_T is not None:
            logits_TE = logits_TE[mask_T]
        mean_prob_E = logits_TE.softmax(dim=-1).mean(dim=0)
        losses.append((mean_prob_E * fraction_E.to(mean_prob_E.dtype)).sum())
    return torch.stack(losses).mean()


def router_z_loss(
    router_logits: torch.Tensor | Sequence[torch.Tensor], mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Router z-loss Z = mean over tokens of (logsumexp_j z_j)^2 (docs/c3po-spec.md §1), mean over layers.

    Shapes as in :func:`load_balance_loss`.
    """
    layers_TE, mask_T = _flatten_router_logits(router_logits, mask)
    losses = []
    for logits_TE in layers_TE:
        if mask_T is not None:
            logits_TE = logits_TE[mask_T]
        losses.append(torch.logsumexp(logits_TE, dim=-1).square().mean())
    return torch.stack(losses).mean()
