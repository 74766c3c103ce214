"""MoE layer: router maths, batched-by-expert equals a per-token loop, auxiliary losses by hand."""

import math

import pytest
import torch

from ringmodel.moe import (
    BailingMoeSparseBlock,
    TopKRouter,
    load_balance_loss,
    routed_experts_forward,
    router_z_loss,
)


def make_block(num_shared: int = 1, norm_topk_prob: bool = True) -> BailingMoeSparseBlock:
    torch.manual_seed(0)
    block = BailingMoeSparseBlock(
        hidden_size=16,
        moe_intermediate_size=8,
        num_experts=5,
        num_experts_per_tok=3,
        num_shared_experts=num_shared,
        norm_topk_prob=norm_topk_prob,
    )
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return block


def test_router_renormalises_top_k_softmax():
    router = make_block().gate
    x_TD = torch.randn(7, 16)
    weights_TK, ids_TK, logits_TE = router(x_TD)
    probs_TE = torch.softmax(x_TD @ router.weight.T, dim=-1)
    expected_ids = probs_TE.argsort(dim=-1, descending=True)[:, :3]
    assert torch.equal(ids_TK.sort(dim=-1).values, expected_ids.sort(dim=-1).values)
    kept = probs_TE.gather(-1, ids_TK)
    torch.testing.assert_close(weights_TK, kept / kept.sum(-1, keepdim=True))
    torch.testing.assert_close(weights_TK.sum(-1), torch.ones(7))
    assert logits_TE.dtype == torch.float32 and weights_TK.dtype == torch.float32


def test_router_without_renormalisation_keeps_softmax_probabilities():
    router = make_block(norm_topk_prob=False).gate
    x_TD = torch.randn(4, 16)
    weights_TK, ids_TK, _ = router(x_TD)
    probs_TE = torch.softmax(x_TD @ router.weight.T, dim=-1)
    torch.testing.assert_close(weights_TK, probs_TE.gather(-1, ids_TK))
    assert bool((weights_TK.sum(-1) < 1).all())


def test_router_computes_in_fp32_for_bf16_inputs():
    router = TopKRouter(16, 5, 2, True).to(torch.bfloat16)
    torch.nn.init.normal_(router.weight)
    weights_TK, _, logits_TE = router(torch.randn(3, 16, dtype=torch.bfloat16))
    assert weights_TK.dtype == torch.float32 and logits_TE.dtype == torch.float32


def naive_moe(block: BailingMoeSparseBlock, x_BSD: torch.Tensor) -> torch.Tensor:
    """Reference: for each token, its top-k experts one by one (the loop the layer must avoid)."""
    out = []
    for x_D in x_BSD.reshape(-1, x_BSD.shape[-1]):
        weights_K, ids_K, _ = block.gate(x_D[None])
        y_D = sum(
            w * block.experts[int(e)](x_D[None])[0]
            for w, e in zip(weights_K[0], ids_K[0], strict=True)
        )
        if block.shared_experts is not None:
            y_D = y_D + block.shared_experts(x_D[None])[0]
        out.append(y_D)
    return torch.stack(out).view_as(x_BSD)


@pytest.mark.parametrize("num_shared", [0, 2])
def test_batched_by_expert_equals_per_token_loop_forward_and_backward(num_shared):
    block = make_block(num_shared=num_shared)
    x_BSD = torch.randn(3, 9, 16, requires_grad=True)
    batched_BSD, router_logits_BSE = block(x_BSD)
    assert router_logits_BSE.shape == (3, 9, 5)
    grad = torch.randn_like(batched_BSD)
    (batched_BSD * grad).sum().backward()
    batched_grads = [p.grad.clone() for p in block.parameters()] + [x_BSD.grad.clone()]

    block.zero_grad()
    x_BSD.grad = None
    naive_BSD = naive_moe(block, x_BSD)
    (naive_BSD * grad).sum().backward()
    naive_grads = [p.grad for p in block.parameters()] + [x_BSD.grad]

    torch.testing.assert_close(batched_BSD, naive_BSD, rtol=1e-5, atol=1e-6)
    for got, want in zip(batched_grads, naive_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_experts_that_receive_no_token_are_skipped_cleanly():
    block = make_block(num_shared=0)
    x_TD = torch.randn(4, 16)
    ids_TK = torch.tensor([[0, 1], [1, 0], [1, 0], [0, 1]])  # experts 2..4 get no token
    weights_TK = torch.tensor([[0.7, 0.3], [0.6, 0.4], [0.5, 0.5], [0.9, 0.1]])
    out_TD = routed_experts_forward(block.experts, x_TD, ids_TK, weights_TK)
    expected_TD = torch.stack(
        [
            sum(w * block.experts[e](x_D[None])[0] for w, e in zip(w_K, ids_K, strict=True))
            for x_D, w_K, ids_K in zip(x_TD, weights_TK, ids_TK.tolist(), strict=True)
        ]
    )
    torch.testing.assert_close(out_TD, expected_TD, rtol=1e-5, atol=1e-6)


def test_load_balance_loss_matches_hand_computation():
    # Two experts, top-1, three tokens; the third is padding and must not count.
    logits_TE = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0], [0.0, 10.0]])
    # token 0: probs (1/4, 3/4) -> expert 1; token 1: (3/4, 1/4) -> expert 0
    # P = (1/2, 1/2), F = (1/2, 1/2) -> B = 1/2
    mask_T = torch.tensor([1, 1, 0])
    loss = load_balance_loss(logits_TE, top_k=1, num_experts=2, mask=mask_T)
    torch.testing.assert_close(loss, torch.tensor(0.5))
    # Unmasked, token 2 goes to expert 1 with prob ~1: P = ((1/4+3/4+p0)/3, ...), F = (1/3, 2/3)
    p0 = 1.0 / (1.0 + math.exp(10.0))
    mean_p = torch.tensor([(0.25 + 0.75 + p0) / 3, (0.75 + 0.25 + 1 - p0) / 3])
    expected = (mean_p * torch.tensor([1 / 3, 2 / 3])).sum()
    torch.testing.assert_close(load_balance_loss(logits_TE, 1, 2), expected)


def test_load_balance_loss_top_k_fractions_and_layer_mean():
    # Four experts, top-2: F counts each (token, expert) assignment once, sum F = 1.
    layer_a = torch.tensor([[[4.0, 3.0, 0.0, 0.0], [0.0, 4.0, 3.0, 0.0]]])  # [B=1, S=2, E=4]
    probs = torch.softmax(layer_a[0], dim=-1)
    fraction = torch.tensor([1, 2, 1, 0]) / 4.0
    expected_a = (probs.mean(0) * fraction).sum()
    layer_b = torch.zeros(1, 2, 4)  # uniform router: P = 1/4 each, ties still sum F to 1
    expected = (expected_a + 0.25) / 2
    loss = load_balance_loss((layer_a, layer_b), top_k=2, num_experts=4, mask=torch.ones(1, 2))
    torch.testing.assert_close(loss, expected)


def test_load_balance_loss_gradient_reaches_router_probabilities_only():
    logits = torch.randn(6, 4, requires_grad=True)
    load_balance_loss(logits, top_k=2, num_experts=4).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_router_z_loss_matches_hand_computation():
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0], [9.0, 9.0, 9.0, 9.0]]])
    lse = [math.log(4.0), math.log(sum(math.exp(v) for v in (1.0, 2.0, 3.0, 4.0)))]
    mask = torch.tensor([[1, 1, 0]])
    expected = (lse[0] ** 2 + lse[1] ** 2) / 2
    torch.testing.assert_close(router_z_loss(logits, mask), torch.tensor(expected))
    both_layers = router_z_loss([logits, torch.zeros(1, 3, 4)], mask)
    torch.testing.assert_close(both_layers, torch.tensor((expected + lse[0] ** 2) / 2))
