"""One optimiser update's gradient does not depend on how it is split into micro-batches.

The trainer's own `_update` runs on a fixed set of selected rollouts (different prompt lengths,
one response cut by the budget) with the whole update in one micro-batch and split into several;
the gradient handed to the optimiser is captured and compared. The MoE auxiliary losses are the
hard part: they are statistics of all forwarded tokens, so they are checked at the paper's
coefficients and at 1.0, where a wrong weighting shows (docs/c3po.md, MoE auxiliary losses).
"""

import pytest
import torch

from ringmodel import BailingMoeConfig, BailingMoeForCausalLM, build_tokenizer
from tests.fixtures.micro_model import MICRO
from training.c3po.config import C3POConfig
from training.c3po.data import RLProblem
from training.c3po.rollout_buffer import Rollout, SelectedRollout
from training.c3po.trainer import C3POTrainer

pytestmark = pytest.mark.usefixtures("single_torch_thread")

PAPER = {"load_balance_coef": 1e-5, "router_z_coef": 1e-7}
LARGE = {"load_balance_coef": 1.0, "router_z_coef": 1.0}


@pytest.fixture(scope="module")
def base_state():
    torch.manual_seed(0)
    model = BailingMoeForCausalLM(BailingMoeConfig.ring_tiny(**MICRO))
    return model.config, {k: v.clone() for k, v in model.state_dict().items()}


def _selected(tokenizer) -> list[SelectedRollout]:
    gen = torch.Generator().manual_seed(7)
    out = []
    statements = ["Compute 1 + 2.", "What is 15% of 300?", "Compute 123 * 4.", "Solve 2x = 8."]
    for i in range(7):
        prompt = tokenizer.encode(statements[i % len(statements)])
        n = 5 + 3 * i
        response = torch.randint(10, 100, (n,), generator=gen).tolist()
        rollout = Rollout(
            problem_id=f"p{i}",
            group_id=i // 2,
            prompt_ids=prompt,
            response_ids=response,
            reward=float(i % 2),
            advantage=float(torch.randn(1, generator=gen)),
            finished=True,
            old_logp_T=-torch.rand(n, generator=gen) * 4 - 1,
            ref_logp_T=-torch.rand(n, generator=gen) * 4 - 1,
            sampled_at_step=0,
        )
        # The last response is the one the budget cut in the middle.
        out.append(SelectedRollout(rollout, n if i < 6 else n // 2))
    return out


def _update_gradient(base_state, tmp_path, micro_batch_size: int, **overrides) -> torch.Tensor:
    config, state = base_state
    policy = BailingMoeForCausalLM(config)
    policy.load_state_dict(state)
    cfg = C3POConfig.ring_tiny(
        budget_tokens=10_000,
        micro_batch_size=micro_batch_size,
        grad_clip=1e9,
        kl_beta=0.05,
        **overrides,
    )
    trainer = C3POTrainer(
        policy=policy,
        tokenizer=build_tokenizer(),
        problems=[RLProblem(problem_id="p", statement="Compute 1 + 2.", answer="3")],
        config=cfg,
        output_dir=tmp_path / f"mb{micro_batch_size}",
        tensorboard=False,
    )
    captured: list[torch.Tensor] = []

    def capture_instead_of_stepping(*args, **kwargs):
        captured.append(torch.cat([p.grad.flatten() for p in policy.parameters()]))

    trainer.optimizer.step = capture_instead_of_stepping
    trainer._update(_selected(trainer.tokenizer))
    trainer.close()
    return captured[0]


@pytest.mark.parametrize("coefficients", [PAPER, LARGE], ids=["paper", "large"])
@pytest.mark.parametrize("algorithm", ["c3po", "grpo"])
def test_the_update_does_not_depend_on_the_micro_batch_split(
    base_state, tmp_path, coefficients, algorithm
):
    whole = _update_gradient(base_state, tmp_path, 7, algorithm=algorithm, **coefficients)
    assert whole.abs().max() > 0
    for size in (1, 2, 3):
        split = _update_gradient(base_state, tmp_path, size, algorithm=algorithm, **coefficients)
        torch.testing.assert_close(split, whole, rtol=1e-4, atol=1e-6)


def test_per_micro_batch_expert_fractions_are_named_as_split_dependent(base_state, tmp_path):
    """aux_loss_scope="micro_batch" is the cheaper option and says it is not invariant: with a
    large balance coefficient its gradient moves with the split (and "update"'s does not)."""
    options = {"load_balance_coef": 1.0, "router_z_coef": 0.0, "aux_loss_scope": "micro_batch"}
    whole = _update_gradient(base_state, tmp_path, 7, **options)
    split = _update_gradient(base_state, tmp_path, 2, **options)
    assert (split - whole).abs().max() > 1e-4


def test_advantage_std_is_a_named_option():
    from training.c3po.core_algos import group_advantages

    rewards, groups = torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.zeros(4, dtype=torch.long)
    sample = group_advantages(rewards, groups, eps=0.0, std=C3POConfig().adv_std)
    population = group_advantages(rewards, groups, eps=0.0, std="population")
    # mean 0.25; squared deviations sum 0.75: std sqrt(0.75/3) = 0.5 or sqrt(0.75/4) = 0.433.
    assert sample[0].item() == pytest.approx(0.75 / 0.5)
    assert population[0].item() == pytest.approx(0.75 / 0.1875**0.5)
    with pytest.raises(AssertionError):
        C3POConfig(adv_std="bessel")
