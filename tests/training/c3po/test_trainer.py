"""The C3PO trainer end to end on a tiny random Bailing MoE model and a handful of problems.

The model is random, so the verifier would score every response 0; most tests use an in-process
stand-in reward (1 when the completion contains a digit) to give groups reward variance, and one
test runs the real verifier. Responses are capped at a few dozen tokens to keep each test fast.
"""

import json
import math

import pytest
import torch

from ringmodel import (
    BailingMoeConfig,
    BailingMoeForCausalLM,
    build_tokenizer,
    sequence_logprobs,
    verify_checkpoint,
)
from training.answers import reward as verifier_reward
from training.c3po import trainer as trainer_module
from training.c3po.config import C3POConfig
from training.c3po.data import RLProblem
from training.c3po.trainer import METRIC_KEYS, C3POTrainer, latest_checkpoint
from training.observer import FunctionObserver

pytestmark = pytest.mark.usefixtures("single_torch_thread")  # tests/fixtures/micro_model.py


def digit_reward(text: str, problem: RLProblem) -> float:
    return 1.0 if any(ch.isdigit() for ch in text) else 0.0


@pytest.fixture(scope="module")
def base_state():
    torch.manual_seed(0)
    config = BailingMoeConfig.ring_tiny(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=32,
    )
    model = BailingMoeForCausalLM(config)
    return config, {k: v.clone() for k, v in model.state_dict().items()}


def fresh_model(base_state) -> BailingMoeForCausalLM:
    config, state = base_state
    model = BailingMoeForCausalLM(config)
    model.load_state_dict(state)
    return model


PROBLEMS = [
    RLProblem(problem_id=f"p{i}", statement=f"Compute {i} + {i + 1}.", answer=str(2 * i + 1))
    for i in range(5)
]


def tiny_config(**overrides) -> C3POConfig:
    values = dict(
        budget_tokens=100,
        prompts_per_step=2,
        group_size=4,
        max_response_tokens=24,
        micro_batch_size=3,
        lr=1e-3,
        warmup_steps=2,
    )
    values.update(overrides)
    return C3POConfig.ring_tiny(**values)


def make_trainer(base_state, tmp_path, config=None, observer=None, **kwargs) -> C3POTrainer:
    kwargs.setdefault("reward_fn", digit_reward)
    return C3POTrainer(
        policy=fresh_model(base_state),
        tokenizer=build_tokenizer(),
        problems=PROBLEMS,
        config=config or tiny_config(),
        output_dir=tmp_path,
        observer=observer,
        seed=1,
        **kwargs,
    )


def test_two_c3po_steps_train_exactly_phi_tokens_and_report_sane_metrics(base_state, tmp_path):
    seen: list[tuple[int, dict]] = []
    samples: list[tuple[int, list]] = []
    written: list[int] = []
    observer = FunctionObserver(
        metrics=lambda step, m: seen.append((step, m)),
        samples=lambda step, s: samples.append((step, s)),
        checkpoint_written=lambda step, path, info: written.append(step),
    )
    trainer = make_trainer(base_state, tmp_path, observer=observer, checkpoint_every=2)
    before = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    result = trainer.train(2)
    trainer.close()

    assert (result.step, result.stopped) == (2, False)
    assert [step for step, _ in seen] == [1, 2]
    for _, metrics in seen:
        assert set(METRIC_KEYS) <= metrics.keys()
        assert all(math.isfinite(v) for v in metrics.values()), metrics
        assert metrics["tokens_trained"] == 100  # == Φ exactly
        assert metrics["budget_shortfall"] == 0
        assert 0 <= metrics["reward_mean"] <= 1 and 0 <= metrics["clip_fraction"] <= 1
        assert 0 < metrics["entropy"] <= math.log(118) + 1e-4
        assert metrics["kl"] >= 0 and metrics["grad_norm"] > 0
        assert 0 < metrics["response_length_mean"] <= metrics["response_length_max"] <= 24
        assert metrics["tokens_per_s"] > 0
    assert [m["lr"] for _, m in seen] == pytest.approx([5e-4, 1e-3])  # warm-up, then constant
    assert seen[0][1]["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference at step 1
    assert seen[1][1]["kl"] > 0
    assert samples and {"completion", "reward", "statement"} <= samples[0][1][0].keys()
    after = trainer.policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)

    assert written == [2]
    path = latest_checkpoint(tmp_path)
    assert path == result.last_checkpoint and path.name == "step-000002"
    verify_checkpoint(path)
    assert json.loads((path / "manifest.json").read_text())["c3po"]["step"] == 2
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_grpo_baseline_trains_every_sampled_token_and_counts_vary(base_state, tmp_path):
    seen: list[dict] = []
    config = tiny_config(algorithm="grpo", group_size=6)
    observer = FunctionObserver(metrics=lambda step, m: seen.append(m))
    trainer = make_trainer(base_state, tmp_path, config, observer, checkpoint_every=0)
    trainer.train(3)
    trainer.close()
    assert [m["tokens_trained"] for m in seen] == [m["sampled_tokens"] for m in seen]
    assert len({m["tokens_trained"] for m in seen}) > 1  # swings with response length
    assert all(m["budget_shortfall"] == 0 and m["buffer_tokens"] == 0 for m in seen)


def test_underfill_carry_samples_more_prompts_until_phi(base_state, tmp_path):
    seen: list[dict] = []
    config = tiny_config(budget_tokens=300, max_underfill_batches=10)  # one batch has <= 192
    trainer = make_trainer(
        base_state, tmp_path, config, FunctionObserver(metrics=lambda s, m: seen.append(m))
    )
    trainer.train(1)
    trainer.close()
    assert seen[0]["rollout_batches"] >= 2
    assert seen[0]["tokens_trained"] == 300


def test_underfill_accept_trains_what_there_is_and_still_divides_by_phi(base_state, tmp_path):
    seen: list[dict] = []
    config = tiny_config(budget_tokens=300, underfill="accept")
    trainer = make_trainer(
        base_state, tmp_path, config, FunctionObserver(metrics=lambda s, m: seen.append(m))
    )
    trainer.train(1)
    trainer.close()
    m = seen[0]
    assert m["rollout_batches"] == 1
    assert m["tokens_trained"] == m["sampled_tokens"] < 300
    assert m["budget_shortfall"] == 300 - m["tokens_trained"]


def test_real_verifier_reward_on_random_model_is_zero_and_step_still_sane(base_state, tmp_path):
    seen: list[dict] = []
    trainer = make_trainer(
        base_state,
        tmp_path,
        observer=FunctionObserver(metrics=lambda s, m: seen.append(m)),
        reward_fn=verifier_reward,
    )
    trainer.train(1)
    trainer.close()
    # A random model never closes </think> with a verified boxed answer: no signal at all.
    assert seen[0]["reward_mean"] == 0 and seen[0]["zero_signal_group_fraction"] == 1.0
    assert seen[0]["tokens_trained"] == 100 and math.isfinite(seen[0]["loss"])


def test_resume_continues_from_the_saved_step_with_identical_state(base_state, tmp_path):
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight_metrics: list[dict] = []
    straight = make_trainer(
        base_state,
        straight_dir,
        observer=FunctionObserver(metrics=lambda s, m: straight_metrics.append(m)),
        checkpoint_every=2,
    )
    straight.train(2)
    # A first run killed after its step-2 checkpoint ...
    first = make_trainer(base_state, resumed_dir, checkpoint_every=2)
    first.train(2)
    first.close()
    # ... and a new process that resumes it.
    resumed_metrics: list[dict] = []
    told: list[tuple] = []
    resumed = make_trainer(
        base_state,
        resumed_dir,
        observer=FunctionObserver(
            metrics=lambda s, m: resumed_metrics.append(m),
            checkpoint_written=lambda step, path, info: told.append(("checkpoint", step, path)),
            resumed=lambda step: told.append(("resumed", step)),
        ),
    )
    assert resumed.resume() is True
    assert resumed.step == 2
    # The caller hears the checkpoint again (a killed run may not have told it), then where
    # the run goes on from.
    checkpoint = str(resumed_dir / "checkpoints" / "step-000002")
    assert told == [("checkpoint", 2, checkpoint), ("resumed", 2)]
    saved = first.optimizer.state_dict()
    loaded = resumed.optimizer.state_dict()
    assert saved["param_groups"] == loaded["param_groups"]
    for key, state in saved["state"].items():
        for name, value in state.items():
            assert torch.equal(value, loaded["state"][key][name]), (key, name)
    for key, value in first.policy.state_dict().items():
        assert torch.equal(value, resumed.policy.state_dict()[key]), key
    assert [r.response_ids for r in first.buffer.items] == [
        r.response_ids for r in resumed.buffer.items
    ]

    straight.train(3)
    straight.close()
    resumed.train(3)
    resumed.close()
    assert [m["step"] for m in resumed_metrics] == [3]
    for key in ("tokens_trained", "reward_mean", "sampled_tokens", "response_length_mean"):
        assert resumed_metrics[0][key] == straight_metrics[2][key], key
    assert resumed_metrics[0]["loss"] == pytest.approx(straight_metrics[2]["loss"], abs=1e-5)
    steps = [
        json.loads(line)["step"]
        for line in (resumed_dir / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3]


def test_resume_without_checkpoint_starts_from_step_zero(base_state, tmp_path):
    # A run that died before its first checkpoint left a step in the metrics file.
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5}) + "\n")
    told: list[int] = []
    trainer = make_trainer(base_state, tmp_path, observer=FunctionObserver(resumed=told.append))
    before = {k: v.clone() for k, v in trainer.policy.state_dict().items()}
    assert trainer.resume() is False and trainer.step == 0
    assert all(torch.equal(v, before[k]) for k, v in trainer.policy.state_dict().items())
    # From the start: whatever the file and the caller kept of any step, a dead run wrote.
    assert told == [0] and (tmp_path / "metrics.jsonl").read_text() == ""
    trainer.train(1)
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()]
    assert steps == [1]
    trainer.close()


def test_a_crash_while_checkpointing_leaves_the_previous_checkpoint_current(
    base_state, tmp_path, monkeypatch
):
    trainer = make_trainer(base_state, tmp_path, checkpoint_every=1)
    trainer.train(1)
    assert latest_checkpoint(tmp_path).name == "step-000001"

    def crash(obj, path):
        raise OSError("disk full")

    monkeypatch.setattr(trainer_module, "_atomic_torch_save", crash)
    with pytest.raises(OSError):
        trainer.train(2)
    trainer.close()
    assert latest_checkpoint(tmp_path).name == "step-000001"
    resumed = make_trainer(base_state, tmp_path)
    assert resumed.resume() and resumed.step == 1
    resumed.close()


def test_should_stop_stops_within_one_step_and_checkpoints_the_last_completed(base_state, tmp_path):
    polls = {"n": 0, "stop_at": None}

    def should_stop() -> bool:
        polls["n"] += 1
        return polls["stop_at"] is not None and polls["n"] >= polls["stop_at"]

    seen: list[int] = []

    def on_metrics(step, metrics):
        seen.append(step)
        if step == 1:
            # Ask to stop during step 2: the poll after its first rollout batch says yes.
            polls["stop_at"] = polls["n"] + 2

    trainer = make_trainer(
        base_state,
        tmp_path,
        observer=FunctionObserver(metrics=on_metrics, should_stop=should_stop),
        checkpoint_every=0,
    )
    result = trainer.train(10)
    trainer.close()
    assert result.stopped and result.step == 1 and seen == [1]
    assert latest_checkpoint(tmp_path).name == "step-000001"
    assert trainer.buffer.num_tokens == 0 or all(
        r.sampled_at_step == 0 for r in trainer.buffer.items
    )
    # The abandoned step left no trace: resuming samples the prompts an uninterrupted run does.
    resumed_samples, straight_samples = [], []
    resumed = make_trainer(
        base_state,
        tmp_path,
        observer=FunctionObserver(samples=lambda s, x: resumed_samples.append((s, x))),
        samples_per_step=100,
    )
    assert resumed.resume() and resumed.step == 1
    resumed.train(2)
    resumed.close()
    straight = make_trainer(
        base_state,
        tmp_path / "straight",
        observer=FunctionObserver(samples=lambda s, x: straight_samples.append((s, x))),
        samples_per_step=100,
    )
    straight.train(2)
    straight.close()
    step2 = [
        [(x["problem_id"], x["completion"]) for x in batch]
        for s, batch in straight_samples
        if s == 2
    ]
    assert step2 and step2 == [
        [(x["problem_id"], x["completion"]) for x in batch] for s, batch in resumed_samples
    ]


def test_keep_checkpoints_prunes_all_but_the_newest(base_state, tmp_path):
    trainer = make_trainer(base_state, tmp_path, checkpoint_every=1, keep_checkpoints=1)
    trainer.train(3)
    trainer.close()
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert kept == ["step-000003"] and latest_checkpoint(tmp_path).name == "step-000003"


def test_carried_rollouts_keep_the_log_probs_of_the_policy_that_sampled_them(base_state, tmp_path):
    trainer = make_trainer(base_state, tmp_path, checkpoint_every=0)
    start = fresh_model(base_state)
    trainer.train(1)
    trainer.close()
    carried = trainer.buffer.items
    assert carried, "this configuration leaves responses for the next update"
    for rollout in carried:
        assert rollout.sampled_at_step == 0
        before = sequence_logprobs(start, rollout.prompt_ids, rollout.response_ids)
        after = sequence_logprobs(trainer.policy, rollout.prompt_ids, rollout.response_ids)
        assert torch.allclose(rollout.old_logp_T, before, atol=1e-5)
        assert not torch.allclose(rollout.old_logp_T, after, atol=1e-5)
