"""The routed experts' backends compute the same function: the stacked-weight paths (padded bmm,
and torch._grouped_mm where this torch runs it) against the per-expert loop, in outputs and in
gradients (input, router and every expert's weights), including experts that get no token; the
loop stays where experts cannot be stacked (LoRA-wrapped projections); the names are checked."""

import pytest
import torch
from torch import nn

from ringmodel import BailingMoeConfig, BailingMoeForCausalLM
from ringmodel.moe import (
    BailingMoeSparseBlock,
    grouped_mm_works,
    resolve_expert_backend,
    routed_experts_forward,
    stackable_experts,
)
from tests.fixtures.micro_model import MICRO

pytestmark = pytest.mark.usefixtures("single_torch_thread")

CPU = torch.device("cpu")
STACKED = ["bmm"] + (["grouped"] if grouped_mm_works(CPU, torch.float32) else [])


def make_block() -> BailingMoeSparseBlock:
    torch.manual_seed(0)
    block = BailingMoeSparseBlock(
        hidden_size=16,
        moe_intermediate_size=8,
        num_experts=6,
        num_experts_per_tok=2,
        num_shared_experts=1,
        norm_topk_prob=True,
    )
    for p in block.parameters():
        nn.init.normal_(p, std=0.3)
    return block


def run(block, backend, x_BSD):
    block.zero_grad(set_to_none=True)
    x = x_BSD.clone().requires_grad_(True)
    block.expert_backend = backend
    out_BSD, logits = block(x)
    (out_BSD.square().sum() + 0.1 * logits.square().sum()).backward()
    grads = {name: p.grad.clone() for name, p in block.named_parameters() if p.grad is not None}
    return out_BSD.detach(), x.grad.clone(), grads


@pytest.mark.parametrize("backend", STACKED)
def test_stacked_backends_equal_the_loop_in_value_and_gradient(backend):
    block = make_block()
    x_BSD = torch.randn(3, 7, 16)
    want, want_dx, want_grads = run(block, "loop", x_BSD)
    got, got_dx, got_grads = run(block, backend, x_BSD)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_dx, want_dx, rtol=1e-4, atol=1e-6)
    assert got_grads.keys() == want_grads.keys()
    for name in want_grads:
        torch.testing.assert_close(got_grads[name], want_grads[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", STACKED)
def test_experts_without_a_token_get_zero_gradient_on_every_backend(backend):
    block = make_block()
    x_TD = torch.randn(5, 16, requires_grad=True)
    ids_TK = torch.tensor([[0, 3], [3, 0], [0, 3], [3, 0], [0, 3]])  # 1, 2, 4, 5 get nothing
    weights_TK = torch.full((5, 2), 0.5)
    results = {}
    for name in ("loop", backend):
        block.zero_grad(set_to_none=True)
        x_TD.grad = None
        out_TD = routed_experts_forward(block.experts, x_TD, ids_TK, weights_TK, backend=name)
        out_TD.square().sum().backward()
        grads = [
            None if p.grad is None else p.grad.clone()
            for e in block.experts
            for p in e.parameters()
        ]
        results[name] = (out_TD.detach(), x_TD.grad.clone(), grads)
    (want, want_dx, want_grads), (got, got_dx, got_grads) = results["loop"], results[backend]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_dx, want_dx, rtol=1e-4, atol=1e-6)
    for g_got, g_want in zip(got_grads, want_grads, strict=True):
        # The loop gives an idle expert an exact zero gradient (an empty slice); the stack too.
        g_want = torch.zeros_like(g_got) if g_want is None else g_want
        torch.testing.assert_close(g_got, g_want, rtol=1e-4, atol=1e-6)
    idle = [p.grad for e in (block.experts[1], block.experts[5]) for p in e.parameters()]
    assert all(g is None or not g.any() for g in idle)


def test_the_model_trains_the_same_with_every_backend():
    torch.manual_seed(0)
    model = BailingMoeForCausalLM(BailingMoeConfig.ring_tiny(**MICRO))
    ids = torch.randint(6, 100, (2, 9))
    results = {}
    for backend in ["loop", *STACKED]:
        model.set_expert_backend(backend)
        model.zero_grad(set_to_none=True)
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        results[backend] = (out.logits.detach(), [p.grad.clone() for p in model.parameters()])
    for backend in STACKED:
        torch.testing.assert_close(results[backend][0], results["loop"][0], rtol=1e-5, atol=1e-5)
        for got, want in zip(results[backend][1], results["loop"][1], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_lora_wrapped_experts_keep_the_loop():
    class Wrapped(nn.Module):  # what peft puts in place of an nn.Linear: more than its weight
        def __init__(self, base: nn.Linear) -> None:
            super().__init__()
            self.base, self.weight = base, base.weight
            self.extra = nn.Linear(base.in_features, base.out_features, bias=False)

        def forward(self, x):
            return self.base(x) + self.extra(x)

    block = make_block()
    assert stackable_experts(block.experts)
    for expert in block.experts:
        expert.up_proj = Wrapped(expert.up_proj)
    assert not stackable_experts(block.experts)
    x_BSD = torch.randn(2, 5, 16)
    want, _, _ = run(block, "loop", x_BSD)
    got, _, _ = run(block, "bmm", x_BSD)  # falls back to the loop: the adapters still count
    assert torch.equal(got, want)


def test_backend_names_and_the_cpu_default():
    assert resolve_expert_backend("auto", CPU, torch.float32) == "loop"
    assert resolve_expert_backend("bmm", CPU, torch.float32) == "bmm"
    expected = "grouped" if grouped_mm_works(CPU, torch.float32) else "bmm"
    assert resolve_expert_backend("grouped", CPU, torch.float32) == expected
    with pytest.raises(ValueError, match="unknown expert backend"):
        resolve_expert_backend("fast", CPU, torch.float32)
    model = BailingMoeForCausalLM(BailingMoeConfig.ring_tiny(**MICRO))
    with pytest.raises(ValueError, match="unknown expert backend"):
        model.set_expert_backend("fast")
    model.set_expert_backend("bmm")
    blocks = [m for m in model.modules() if isinstance(m, BailingMoeSparseBlock)]
    assert blocks and all(b.expert_backend == "bmm" for b in blocks)
