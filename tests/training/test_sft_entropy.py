"""Mean per-token entropy on the policy's own continuations (docs/c3po-spec.md §3)."""

from __future__ import annotations

import math

import pytest
import torch

import ringmodel as rm
from tests.fixtures.micro_model import MICRO
from training.entropy import mean_token_entropy, rl_prompts


@pytest.fixture(scope="module")
def tokenizer():
    return rm.build_tokenizer()


def _model() -> rm.BailingMoeForCausalLM:
    torch.manual_seed(0)
    return rm.BailingMoeForCausalLM(rm.BailingMoeConfig.ring_tiny(**MICRO)).eval()


def test_uniform_policy_has_entropy_log_vocab(tokenizer):
    model = _model()
    with torch.no_grad():
        model.lm_head.weight.zero_()  # every logit 0: a uniform next-token distribution
    report = mean_token_entropy(model, tokenizer, rl_prompts(3), max_new_tokens=6)
    assert report.mean_entropy == pytest.approx(math.log(model.config.vocab_size), rel=1e-4)
    assert report.num_tokens > 0 and report.num_prompts == 3


@pytest.mark.slow  # tens of seconds on a loaded 2-core machine
def test_sharper_policy_has_lower_entropy(tokenizer):
    model = _model()
    base = mean_token_entropy(model, tokenizer, rl_prompts(3), max_new_tokens=8).mean_entropy
    with torch.no_grad():
        model.model.norm.weight.mul_(30.0)  # larger logits: a peakier distribution
    sharp = mean_token_entropy(model, tokenizer, rl_prompts(3), max_new_tokens=8).mean_entropy
    assert sharp < base


@pytest.mark.slow  # tens of seconds on a loaded 2-core machine
def test_entropy_is_deterministic_for_a_seed_and_counts_generated_tokens(tokenizer):
    model = _model()
    prompts = rl_prompts(4)
    a = mean_token_entropy(model, tokenizer, prompts, max_new_tokens=5, seed=1, batch_size=3)
    b = mean_token_entropy(model, tokenizer, prompts, max_new_tokens=5, seed=1, batch_size=3)
    greedy = mean_token_entropy(model, tokenizer, prompts, max_new_tokens=5, temperature=0.0)
    assert a == b
    assert a.num_tokens == pytest.approx(a.mean_response_tokens * 4)
    assert a.num_tokens <= 4 * 5
    assert greedy.mean_entropy != a.mean_entropy


def test_rl_prompts_are_fixed_training_statements():
    assert rl_prompts(5) == rl_prompts(5)
    assert len(set(rl_prompts(20))) == 20
