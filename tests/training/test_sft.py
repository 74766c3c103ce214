"""Long-CoT SFT: conversation encoding, loss masking, batching, training, checkpoints, resume."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import torch
import torch.nn.functional as F

import ringmodel as rm
from tests.fixtures.micro_model import MICRO
from training.problems import generate_problem, training_problems
from training.sft import (
    LOG_NAME,
    SFTConfig,
    epoch_batches,
    epoch_problems,
    learning_rate_at,
    train_sft,
    training_loss,
)
from training.sft_data import (
    IGNORE_INDEX,
    bucketed_batches,
    collate,
    encode_problem,
    problem_examples,
)


@pytest.fixture(scope="module")
def tokenizer():
    return rm.build_tokenizer()


@pytest.fixture
def micro_model():
    torch.manual_seed(0)
    return rm.BailingMoeForCausalLM(rm.BailingMoeConfig.ring_tiny(**MICRO))


def _config(tmp_path, **overrides) -> SFTConfig:
    fields = {
        "output_dir": str(tmp_path / "run"),
        "model_overrides": MICRO,
        "epochs": 2,
        "steps_per_epoch": 4,
        "tokens_per_batch": 2048,
        "warmup_steps": 2,
        "learning_rate": 1e-2,
        "entropy_prompts": 2,
        "entropy_max_new_tokens": 8,
        "eval_problems_per_level": 0,
        "progress": False,
    }
    return SFTConfig(**{**fields, **overrides})


def test_conversation_is_the_chat_template_with_the_worked_solution(tokenizer):
    problem = generate_problem("math", "addition", 1, random.Random(0))
    example = encode_problem(tokenizer, problem, max_length=1024)
    messages = rm.build_prompt_messages(problem.statement)
    messages.append({"role": "assistant", "content": problem.assistant_text})
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert tokenizer.decode(list(example.input_ids)) == rendered
    prompt = tokenizer.decode(list(example.input_ids[: example.num_prompt]))
    assert prompt.endswith("<role>ASSISTANT</role>") and rm.REASONING_SUFFIX in prompt
    assert example.input_ids[-1] == tokenizer.eos_token_id


def test_labels_cover_exactly_the_assistant_turn(tokenizer):
    problems = list(itertools.islice(training_problems(1), 3))
    examples = [encode_problem(tokenizer, p, max_length=1024) for p in problems]
    batch = collate(examples, pad_token_id=tokenizer.pad_token_id)
    for row, (problem, example) in enumerate(zip(problems, examples, strict=True)):
        labels = batch.labels[row]
        assert (labels[: example.num_prompt] == IGNORE_INDEX).all()
        assert (labels[len(example) :] == IGNORE_INDEX).all()
        target = labels[labels != IGNORE_INDEX].tolist()
        assert tokenizer.decode(target[:-1]) == problem.assistant_text
        assert target[-1] == tokenizer.eos_token_id
    assert batch.num_target_tokens == sum(len(e) - e.num_prompt for e in examples)


def test_too_long_conversations_are_refused(tokenizer):
    problem = generate_problem("math", "multiplication", 4, random.Random(0))
    with pytest.raises(ValueError, match="exceeds max_length"):
        encode_problem(tokenizer, problem, max_length=100)


def test_batches_respect_the_token_budget_and_group_similar_lengths(tokenizer):
    examples = problem_examples(tokenizer, training_problems(2), max_length=1024)
    batches = list(
        itertools.islice(
            bucketed_batches(examples, tokens_per_batch=3000, pad_token_id=0, pool_batches=8),
            40,
        )
    )
    padded = sum(b.input_ids.numel() for b in batches)
    real = sum(b.num_tokens for b in batches)
    assert all(b.input_ids.numel() <= 3000 for b in batches)
    assert real / padded > 0.9  # length bucketing keeps padding under 10%
    assert len({b.input_ids.shape[0] for b in batches}) > 1


def test_loss_is_cross_entropy_on_assistant_tokens_only(tokenizer, micro_model):
    examples = [
        encode_problem(tokenizer, p, max_length=1024)
        for p in itertools.islice(training_problems(3), 4)
    ]
    batch = collate(examples, pad_token_id=tokenizer.pad_token_id)
    _, cross_entropy = training_loss(micro_model, batch, balance_coefficient=0.0)
    logits = micro_model(
        batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
    ).logits
    # The masked forward (padding excluded explicitly) gives the same loss as training's
    # unmasked causal forward, computed by hand over labelled positions only.
    targets = batch.labels[:, 1:]
    manual = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
    )
    assert torch.allclose(cross_entropy, manual, atol=1e-5)
    # Changing prompt tokens' labels cannot change the loss: they are never targets.
    assert (batch.labels[0, : examples[0].num_prompt] == IGNORE_INDEX).all()


def test_balance_term_is_added_for_moe_layers(tokenizer, micro_model):
    examples = [
        encode_problem(tokenizer, p, max_length=1024)
        for p in itertools.islice(training_problems(4), 2)
    ]
    batch = collate(examples, pad_token_id=tokenizer.pad_token_id)
    with_balance, ce = training_loss(micro_model, batch, balance_coefficient=0.01)
    # E·B is 1 at perfect balance, so the term adds about the coefficient.
    assert 0.005 < float(with_balance.detach() - ce) < 0.05


def test_learning_rate_warms_up_then_decays_by_cosine(tmp_path):
    config = _config(tmp_path, learning_rate=1e-3, warmup_steps=10, min_learning_rate_ratio=0.1)
    rates = [learning_rate_at(s, total_steps=100, config=config) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4)
    assert rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(rates[10:]))
    assert rates[-1] == pytest.approx(1e-4, rel=0.01)


def test_epochs_draw_fresh_deterministic_data(tmp_path, tokenizer):
    config = _config(tmp_path)
    first = next(epoch_batches(tokenizer, config, 1, 1024))
    again = next(epoch_batches(tokenizer, config, 1, 1024))
    second = next(epoch_batches(tokenizer, config, 2, 1024))
    assert torch.equal(first.input_ids, again.input_ids)
    assert not torch.equal(first.input_ids[:1], second.input_ids[:1])


def test_curriculum_draws_early_epochs_from_easy_levels(tmp_path):
    config = _config(tmp_path, early_level_weights=(1.0, 0.0, 0.0, 0.0), early_epochs=1)
    early = list(itertools.islice(epoch_problems(config, 1), 200))
    later = list(itertools.islice(epoch_problems(config, 2), 200))
    assert {p.level for p in early} == {1}
    assert {p.level for p in later} == {1, 2, 3, 4}


@pytest.mark.slow
def test_training_reduces_loss_and_writes_checkpoints_with_entropy(tmp_path):
    config = _config(tmp_path, epochs=3, steps_per_epoch=6)
    records = train_sft(config)
    losses = [r.mean_loss for r in records]
    assert losses[-1] < losses[0] - 0.5, losses
    log = json.loads((tmp_path / "run" / LOG_NAME).read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2, 3]
    for record in records:
        manifest = rm.verify_checkpoint(record.checkpoint)
        entropy = manifest["sft"]["entropy"]["mean_entropy"]
        assert entropy == pytest.approx(record.entropy["mean_entropy"])
        assert 0.0 < entropy < 5.0
        assert manifest["sft"]["config"]["steps_per_epoch"] == 6


@pytest.mark.slow
def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    straight = train_sft(_config(tmp_path / "a", epochs=2))
    interrupted = train_sft(_config(tmp_path / "b", epochs=2), stop_after_epochs=1)
    assert len(interrupted) == 1
    resumed = train_sft(_config(tmp_path / "b", epochs=2))
    assert len(resumed) == 2 and resumed[-1].step == straight[-1].step == 8
    model_a, _, _ = rm.load_checkpoint(straight[-1].checkpoint)
    model_b, _, _ = rm.load_checkpoint(resumed[-1].checkpoint)
    for (name, a), b in zip(
        model_a.state_dict().items(), model_b.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name


@pytest.mark.slow
def test_training_continues_from_a_checkpoint(tmp_path):
    first = train_sft(_config(tmp_path / "a", epochs=1, steps_per_epoch=12))
    start, _, _ = rm.load_checkpoint(first[-1].checkpoint)
    continued = train_sft(
        _config(tmp_path / "b", epochs=1, init_checkpoint=first[-1].checkpoint, warmup_steps=1)
    )
    scratch = train_sft(_config(tmp_path / "c", epochs=1, warmup_steps=1))
    after, _, _ = rm.load_checkpoint(continued[-1].checkpoint)
    assert after.config.hidden_size == MICRO["hidden_size"]
    assert any(
        not torch.equal(a, b)
        for a, b in zip(start.state_dict().values(), after.state_dict().values(), strict=True)
    )
    # Same data and steps: starting from the trained weights ends lower than from scratch.
    assert continued[-1].mean_loss < scratch[-1].mean_loss - 0.3
