"""Hand-computed checks of the pure C3PO maths in training.c3po.core_algos.

Every expected number below was worked out on paper from the equations in docs/c3po-spec.md;
loop and vectorised versions are compared on random inputs.
"""

import math

import pytest
import torch

from training.c3po import core_algos
from training.c3po.config import C3POConfig
from training.c3po.core_algos import (
    aggregate_loss,
    c3po_loss,
    clipped_surrogate,
    group_advantages,
    group_advantages_loop,
    kl_k3,
    token_budget_mask,
    token_budget_mask_loop,
    token_entropy,
)


def _mask_from_lengths(lengths: list[int], width: int) -> torch.Tensor:
    return (torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).float()


def test_group_advantages_by_hand():
    # g0 = [1,0,0,1]: mean .5, unbiased std sqrt(1/3) -> ±0.5*sqrt(3) = ±0.8660
    # g1 all equal -> 0; g2 a group of one -> 0
    # g3 = [1,0,0,0]: mean .25, unbiased var .25, std .5 -> 1.5, -0.5
    rewards = torch.tensor([1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0], dtype=torch.float32)
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 3, 3, 3, 3])
    adv = group_advantages(rewards, groups, eps=0.0)
    h = 0.5 * math.sqrt(3)
    expected = [h, -h, -h, h, 0, 0, 0, 0, 0, 1.5, -0.5, -0.5, -0.5]
    assert adv.tolist() == pytest.approx(expected, abs=1e-6)


def test_group_of_one_and_all_equal_are_zero_even_with_eps():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([7, 9, 9]))
    assert adv.tolist() == [0.0, 0.0, 0.0]


def test_group_advantages_without_std_normalisation():
    adv = group_advantages(
        torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.tensor([0, 0, 0, 0]), normalize_std=False
    )
    assert adv.tolist() == pytest.approx([0.75, -0.25, -0.25, -0.25])


def test_group_advantages_loop_agrees_with_vectorised():
    gen = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 2, (40,), generator=gen).float()
    groups = torch.randint(0, 9, (40,), generator=gen)
    vec = group_advantages(rewards, groups)
    loop = group_advantages_loop(rewards.tolist(), groups.tolist())
    assert vec.tolist() == pytest.approx(loop, abs=1e-5)


def test_budget_cut_inside_a_response():
    # lengths 3, 5, 4 and Φ = 6: all of response 0, the first 3 tokens of response 1, none of 2.
    mask = _mask_from_lengths([3, 5, 4], 5)
    sel = token_budget_mask(mask, 6)
    assert sel.selection_mask_BT.tolist() == [
        [1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0],
    ]
    assert (sel.selected_tokens, sel.shortfall, sel.consumed_responses) == (6, 0, 2)


def test_budget_cut_exactly_at_a_response_end():
    sel = token_budget_mask(_mask_from_lengths([3, 5, 4], 5), 8)
    assert sel.selection_mask_BT.sum(dim=1).tolist() == [3, 5, 0]
    assert (sel.selected_tokens, sel.shortfall, sel.consumed_responses) == (8, 0, 2)


def test_budget_with_fewer_tokens_than_phi_reports_shortfall():
    sel = token_budget_mask(_mask_from_lengths([2, 1], 3), 10)
    assert sel.selection_mask_BT.tolist() == [[1, 1, 0], [1, 0, 0]]
    assert (sel.selected_tokens, sel.shortfall, sel.consumed_responses) == (3, 7, 2)


def test_budget_loop_agrees_with_vectorised():
    gen = torch.Generator().manual_seed(1)
    for budget in (1, 17, 60, 500):
        lengths = torch.randint(0, 12, (9,), generator=gen).tolist()
        mask = _mask_from_lengths(lengths, 12)
        vec = token_budget_mask(mask, budget)
        loop = token_budget_mask_loop(mask, budget)
        assert torch.equal(vec.selection_mask_BT, loop.selection_mask_BT)
        assert vec[1:] == loop[1:]


def test_clipped_surrogate_by_hand():
    # r = 1.5 with A = +1 -> clipped to 1.2; A = -1 -> -1.5 (unclipped is the min)
    # r = 0.5 with A = +1 -> 0.5 (unclipped); A = -1 -> clip gives -0.8
    old = torch.zeros(4, 1)
    logp = torch.log(torch.tensor([[1.5], [1.5], [0.5], [0.5]]))
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    obj, clipped = clipped_surrogate(logp, old, adv, eps_clip=0.2)
    assert obj.flatten().tolist() == pytest.approx([1.2, -1.5, 0.5, -0.8], abs=1e-6)
    assert clipped.flatten().tolist() == [True, False, False, True]


def test_kl_k3_by_hand():
    # logp = log .5, ref = log .25: d = log .5; e^d - d - 1 = .5 + .693147 - 1
    kl = kl_k3(torch.log(torch.tensor([[0.5, 0.3]])), torch.log(torch.tensor([[0.25, 0.3]])))
    assert kl.tolist()[0] == pytest.approx([0.5 + math.log(2) - 1, 0.0], abs=1e-6)


def test_token_entropy_by_hand():
    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.25, 0.75]]]))
    h = token_entropy(logits)
    expected = [math.log(2), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]
    assert h.tolist()[0] == pytest.approx(expected, abs=1e-6)


def test_aggregate_modes_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert aggregate_loss(x, m, mode="budget", budget_tokens=10).item() == pytest.approx(0.7)
    assert aggregate_loss(x, m, mode="token-mean").item() == pytest.approx(7 / 3)
    assert aggregate_loss(x, m, mode="token-mean", global_token_count=14).item() == 0.5
    assert aggregate_loss(x, m, mode="seq-mean-token-mean").item() == pytest.approx(2.75)
    with pytest.raises(ValueError):
        aggregate_loss(x, m, mode="sum")  # type: ignore[arg-type]


def test_c3po_loss_by_hand():
    # Two selected tokens and Φ = 4:
    #   token 1: r = 1.5, A = 1 -> surrogate 1.2; logp = ref -> kl 0; H = 1
    #   token 2: r = 1,   A = 1 -> surrogate 1.0; kl = e^(-1) + 1 - 1 = e^-1; H = 3
    #   L = -(1.2 + 1.0 - β e^-1)/4 - α_ent (1 + 3)/4 + α_bal·B + α_z·Z
    config = C3POConfig(budget_tokens=4, kl_beta=0.1, entropy_coef=0.01)
    logp = torch.tensor([[math.log(1.5), 0.0, 5.0]])
    old = torch.tensor([[0.0, 0.0, 0.0]])
    ref = torch.tensor([[math.log(1.5), -1.0, 0.0]])
    terms = c3po_loss(
        logp_BT=logp,
        old_logp_BT=old,
        ref_logp_BT=ref,
        adv_B=torch.tensor([1.0]),
        mask_BT=torch.tensor([[1.0, 1.0, 0.0]]),
        entropy_BT=torch.tensor([[1.0, 3.0, 100.0]]),
        load_balance=torch.tensor(2.0),
        router_z=torch.tensor(30.0),
        config=config,
        mode="budget",
    )
    expected = -(2.2 - 0.1 * math.exp(-1)) / 4 - 0.01 * 1.0 + 1e-5 * 2.0 + 1e-7 * 30.0
    assert terms.loss.item() == pytest.approx(expected, rel=1e-6)
    assert terms.clip_fraction_sum.item() == 1.0
    assert terms.token_count.item() == 2.0
    assert terms.kl.item() == pytest.approx(math.exp(-1) / 4)


def _toy_policy_loss(
    weight, features_BTD, tokens_BT, old, ref, adv, mask, config, mode, n_tok, aux
):
    logits_BTV = features_BTD @ weight
    logp_BTV = torch.log_softmax(logits_BTV, dim=-1)
    logp_BT = logp_BTV.gather(-1, tokens_BT.unsqueeze(-1)).squeeze(-1)
    return c3po_loss(
        logp_BT=logp_BT,
        old_logp_BT=old,
        ref_logp_BT=ref,
        adv_B=adv,
        mask_BT=mask,
        entropy_BT=token_entropy(logits_BTV),
        load_balance=(weight**2).mean(),
        router_z=weight.abs().mean(),
        config=config,
        mode=mode,
        global_token_count=n_tok,
        aux_weight=aux,
    ).loss


@pytest.mark.parametrize("mode", ["budget", "token-mean"])
def test_micro_batches_sum_to_the_full_batch_gradient(mode):
    gen = torch.Generator().manual_seed(3)
    B, T, D, V = 6, 7, 5, 11
    features = torch.randn(B, T, D, generator=gen)
    tokens = torch.randint(0, V, (B, T), generator=gen)
    old = -torch.rand(B, T, generator=gen) * 3
    ref = -torch.rand(B, T, generator=gen) * 3
    adv = torch.randn(B, generator=gen)
    sel = token_budget_mask(_mask_from_lengths([7, 3, 5, 6, 2, 7], T), 20)
    mask = sel.selection_mask_BT
    config = C3POConfig(budget_tokens=20, kl_beta=0.05, entropy_coef=0.01, load_balance_coef=0.1)
    n_tok = int(mask.sum().item())
    w0 = torch.randn(D, V, generator=gen)

    w_full = w0.clone().requires_grad_(True)
    args = (old, ref, adv, mask, config, mode, n_tok, 1.0)
    _toy_policy_loss(w_full, features, tokens, *args).backward()

    w_micro = w0.clone().requires_grad_(True)
    for part in (slice(0, 2), slice(2, 3), slice(3, 6)):
        share = mask[part].sum().item() / n_tok
        micro_args = (old[part], ref[part], adv[part], mask[part], config, mode, n_tok, share)
        _toy_policy_loss(w_micro, features[part], tokens[part], *micro_args).backward()
    # The aux losses here are functions of the weight only, so token-share weights sum to 1.
    assert torch.allclose(w_full.grad, w_micro.grad, atol=1e-6)


def test_per_micro_batch_averaging_would_differ():
    """Guard that the test above can fail: averaging per micro-batch is NOT the same update."""
    x = torch.tensor([[1.0, 1.0, 1.0], [3.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    whole = aggregate_loss(x, m, mode="token-mean")
    per_micro = sum(aggregate_loss(x[i : i + 1], m[i : i + 1], mode="token-mean") for i in (0, 1))
    assert whole.item() == pytest.approx(1.5)
    assert per_micro.item() == pytest.approx(4.0)


def test_warmup_then_constant_lr():
    lrs = [core_algos.warmup_constant_lr(s, base_lr=1.0, warmup_steps=4) for s in range(6)]
    assert lrs == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_config_presets_and_round_trip():
    paper = C3POConfig.ring_lite()
    assert (paper.eps_clip, paper.kl_beta, paper.entropy_coef) == (0.2, 1e-3, 5e-4)
    assert (paper.load_balance_coef, paper.router_z_coef) == (1e-5, 1e-7)
    assert (paper.prompts_per_step, paper.group_size, paper.lr) == (512, 16, 3e-6)
    assert (paper.budget_tokens, paper.max_response_tokens, paper.temperature) == (
        409600,
        24576,
        1.0,
    )
    tiny = C3POConfig.ring_tiny(budget_tokens=123)
    assert tiny.budget_tokens == 123 and tiny.eps_clip == 0.2
    assert C3POConfig.from_dict(tiny.to_dict()) == tiny
    with pytest.raises(AssertionError):
        C3POConfig(underfill="guess")  # type: ignore[arg-type]
