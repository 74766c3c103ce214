"""The engine check's comparison: a correct engine passes, wrong numbers or tokens are refused.

The "engine" here is ringmodel itself producing what a correct engine would report (the probe's
greedy tokens and log-probabilities), then altered the way a broken engine would be. The real vLLM
engine is checked in the integration tests.
"""

import pytest
import torch

from ringmodel.configuration_bailing_moe import BailingMoeConfig
from ringmodel.generation import sample, sequence_logprobs
from ringmodel.modeling_bailing_moe import BailingMoeForCausalLM
from ringmodel.tokenizer import build_tokenizer
from worker.inference.engine import ProbeOutput
from worker.inference.engine_check import Reference, compare_with_reference, probe_prompt_ids

NEW_TOKENS = 8


@pytest.fixture(scope="module")
def reference() -> Reference:
    torch.manual_seed(0)
    model = BailingMoeForCausalLM(BailingMoeConfig.ring_tiny()).eval()
    return Reference(model=model, tokenizer=build_tokenizer())


@pytest.fixture(scope="module")
def correct_probes(reference: Reference) -> list[ProbeOutput]:
    probes = []
    for prompt in probe_prompt_ids(reference.tokenizer):
        greedy = sample(
            reference.model, [prompt], max_new_tokens=NEW_TOKENS, temperature=0.0, eos_token_id=-1
        )[0]
        sequence = [*prompt, *greedy.token_ids]
        logprobs = sequence_logprobs(reference.model, sequence[:1], sequence[1:]).tolist()
        probes.append(
            ProbeOutput(
                prompt_ids=list(prompt),
                completion_ids=list(greedy.token_ids),
                prompt_logprobs=logprobs[: len(prompt) - 1],
                completion_logprobs=logprobs[len(prompt) - 1 :],
            )
        )
    return probes


def test_an_engine_that_agrees_passes(reference, correct_probes):
    report = compare_with_reference(reference, correct_probes, tolerance=0.05)
    assert report.ok, report.summary()
    assert report.max_abs_diff < 1e-4
    assert report.tokens_compared == sum(len(p.prompt_ids) - 1 + NEW_TOKENS for p in correct_probes)


def test_a_wrong_log_probability_is_refused(reference, correct_probes):
    bad = correct_probes[1]
    shifted = list(bad.prompt_logprobs)
    shifted[5] -= 0.3  # what stale expert weights do to one token
    probes = [ProbeOutput(bad.prompt_ids, bad.completion_ids, shifted, bad.completion_logprobs)]
    report = compare_with_reference(reference, probes, tolerance=0.05)
    assert not report.ok
    assert "probe 0" in report.summary() and "differs by 0.3" in report.summary()


def test_a_different_greedy_token_is_refused(reference, correct_probes):
    first = correct_probes[0]
    vocab = reference.model.config.vocab_size
    # The engine "chose" the token ringmodel ranks lowest, and claims ringmodel's log-probs for it.
    with torch.inference_mode():
        logits = reference.model(torch.tensor([first.prompt_ids])).logits[0, -1]
    worst = int(logits.argmin())
    assert worst < vocab and worst != first.completion_ids[0]
    completion = [worst, *first.completion_ids[1:]]
    sequence = [*first.prompt_ids, *completion]
    honest = sequence_logprobs(reference.model, sequence[:1], sequence[1:]).tolist()
    probes = [
        ProbeOutput(
            first.prompt_ids,
            completion,
            honest[: len(first.prompt_ids) - 1],
            honest[len(first.prompt_ids) - 1 :],
        )
    ]
    report = compare_with_reference(reference, probes, tolerance=0.05)
    assert not report.ok
    assert "greedy token 0" in report.summary()


def test_a_missing_log_probability_is_refused(reference, correct_probes):
    short = correct_probes[2]
    probes = [
        ProbeOutput(
            short.prompt_ids,
            short.completion_ids,
            short.prompt_logprobs[:-1],
            short.completion_logprobs,
        )
    ]
    report = compare_with_reference(reference, probes, tolerance=0.05)
    assert not report.ok and "probe 0" in report.summary()
