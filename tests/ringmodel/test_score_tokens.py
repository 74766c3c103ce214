"""The trainer's scoring forward: log-probs and entropies of given tokens at given positions,
with the output head in chunks recomputed in backward, equal to the full-logits computation."""

import pytest
import torch
import torch.nn.functional as F

from ringmodel import BailingMoeConfig, BailingMoeForCausalLM
from ringmodel.modeling_bailing_moe import score_tokens
from tests.fixtures.micro_model import MICRO

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def full_scores(logits_BTV: torch.Tensor, ids_BT: torch.Tensor, temperature: float):
    logp_BTV = F.log_softmax(logits_BTV.float() / temperature, dim=-1)
    entropy_BT = -(logp_BTV.exp() * logp_BTV).sum(-1)
    return logp_BTV.gather(-1, ids_BT.unsqueeze(-1)).squeeze(-1), entropy_BT


@pytest.mark.parametrize("chunk", [0, 1, 5, 7, 64])
def test_chunked_head_equals_one_pass_in_value_and_gradient(chunk):
    torch.manual_seed(0)
    hidden = torch.randn(3, 11, 16, requires_grad=True)
    weight = torch.randn(40, 16, requires_grad=True)
    ids = torch.randint(0, 40, (3, 11))
    logp, entropy = score_tokens(hidden, weight, ids, temperature=0.7, chunk_tokens=chunk)
    (logp.sum() + 0.3 * entropy.sum()).backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None

    ref_logp, ref_entropy = full_scores(F.linear(hidden, weight), ids, 0.7)
    (ref_logp.sum() + 0.3 * ref_entropy.sum()).backward()
    torch.testing.assert_close(logp, ref_logp, rtol=0, atol=1e-5)
    torch.testing.assert_close(entropy, ref_entropy, rtol=0, atol=1e-5)
    torch.testing.assert_close(grads[0], hidden.grad, rtol=0, atol=1e-5)
    torch.testing.assert_close(grads[1], weight.grad, rtol=0, atol=1e-5)


def test_the_model_scores_response_positions_as_its_logits_say():
    torch.manual_seed(0)
    model = BailingMoeForCausalLM(BailingMoeConfig.ring_tiny(**MICRO))
    input_ids = torch.randint(6, 100, (2, 12))
    positions = torch.tensor([[4, 5, 6, 7], [2, 3, 4, 0]])
    ids = input_ids.gather(1, positions + 1)
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits
        scored = model(input_ids=input_ids, token_positions=positions, token_ids=ids, token_chunk=3)
    expected_logp, expected_entropy = full_scores(
        logits.gather(1, positions.unsqueeze(-1).expand(-1, -1, logits.shape[-1])), ids, 1.0
    )
    assert scored.logits is None
    torch.testing.assert_close(scored.token_logprobs, expected_logp, rtol=0, atol=1e-5)
    torch.testing.assert_close(scored.token_entropy, expected_entropy, rtol=0, atol=1e-5)


@pytest.mark.parametrize("chunk", [0, 5])
def test_scoring_without_entropy_gives_the_same_logprobs_and_gradients(chunk):
    """The reference and π_old passes skip the entropy: their log-probs (and, were they
    differentiated, the gradients) are bit for bit those of the pass that computes it."""
    torch.manual_seed(0)
    hidden = torch.randn(3, 11, 16, requires_grad=True)
    weight = torch.randn(40, 16, requires_grad=True)
    ids = torch.randint(0, 40, (3, 11))
    runs = []
    for with_entropy in (True, False):
        logp, entropy = score_tokens(
            hidden, weight, ids, temperature=0.7, chunk_tokens=chunk, with_entropy=with_entropy
        )
        assert (entropy is not None) is with_entropy
        logp.sum().backward()
        runs.append((logp.detach(), hidden.grad.clone(), weight.grad.clone()))
        hidden.grad = weight.grad = None
    for with_it, without in zip(*runs, strict=True):
        assert torch.equal(with_it, without)


def test_the_model_skips_the_entropy_when_asked_and_keeps_its_logprobs():
    torch.manual_seed(0)
    model = BailingMoeForCausalLM(BailingMoeConfig.ring_tiny(**MICRO))
    input_ids = torch.randint(6, 100, (2, 12))
    positions = torch.tensor([[4, 5, 6, 7], [2, 3, 4, 0]])
    ids = input_ids.gather(1, positions + 1)
    scored = {}
    for flag in (True, False):
        model.zero_grad()
        out = model(
            input_ids=input_ids,
            token_positions=positions,
            token_ids=ids,
            token_chunk=3,
            token_temperature=0.8,
            output_token_entropy=flag,
        )
        out.token_logprobs.sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        scored[flag] = (out, grads)
    with_entropy, without = scored[True][0], scored[False][0]
    assert with_entropy.token_entropy is not None and without.token_entropy is None
    assert torch.equal(with_entropy.token_logprobs, without.token_logprobs)
    assert len(scored[True][1]) == len(scored[False][1]) > 0
    for a, b in zip(scored[True][1], scored[False][1], strict=True):
        assert torch.equal(a, b)
