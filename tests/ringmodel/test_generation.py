"""Batched sampling: batch equals single, per-sequence eos, log-probs, temperature and top-p."""

import torch

import ringmodel as rm

PROMPTS = [[5, 9, 13, 17, 21, 25, 29], [40, 41, 42], [60, 61, 62, 63, 64], [70]]


def test_greedy_batch_equals_each_prompt_alone_and_logprobs_match_teacher_forcing(micro_model):
    batch = rm.sample(micro_model, PROMPTS, max_new_tokens=24, temperature=0.0, eos_token_id=None)
    for prompt, got in zip(PROMPTS, batch, strict=True):
        alone = rm.sample(
            micro_model, [prompt], max_new_tokens=24, temperature=0.0, eos_token_id=None
        )
        assert got.token_ids == alone[0].token_ids
        assert len(got.token_ids) == len(got.logprobs) == 24 and not got.finished
        forced = rm.sequence_logprobs(micro_model, prompt, got.token_ids)
        torch.testing.assert_close(torch.tensor(got.logprobs), forced, rtol=0, atol=1e-4)


def test_each_sequence_stops_at_its_own_eos(micro_model):
    free = rm.sample(micro_model, PROMPTS, max_new_tokens=20, temperature=0.0, eos_token_id=None)
    # Declare as "eos" the token the second prompt emits at step 3: that row must stop there,
    # others only where (if ever) they emit it themselves.
    eos = free[1].token_ids[3]
    stopped = rm.sample(micro_model, PROMPTS, max_new_tokens=20, temperature=0.0, eos_token_id=eos)
    for full, got in zip(free, stopped, strict=True):
        if eos in full.token_ids:
            cut = full.token_ids.index(eos) + 1
            assert got.token_ids == full.token_ids[:cut] and got.finished
            torch.testing.assert_close(
                torch.tensor(got.logprobs), torch.tensor(full.logprobs[:cut]), rtol=0, atol=1e-5
            )
        else:
            assert got.token_ids == full.token_ids and not got.finished
    assert stopped[1].finished and len(stopped[1].token_ids) <= 4


def test_sampling_is_reproducible_with_a_generator_and_varies_without_it(micro_model):
    def run(seed):
        generator = torch.Generator().manual_seed(seed)
        return rm.sample(
            micro_model, PROMPTS, max_new_tokens=16, eos_token_id=0, generator=generator
        )

    first, again, other = run(1), run(1), run(2)
    assert [s.token_ids for s in first] == [s.token_ids for s in again]
    assert [s.token_ids for s in first] != [s.token_ids for s in other]
    for prompt, s in zip(PROMPTS, first, strict=True):
        forced = rm.sequence_logprobs(micro_model, prompt, s.token_ids)
        torch.testing.assert_close(torch.tensor(s.logprobs), forced, rtol=0, atol=1e-4)


def test_tiny_top_p_is_greedy_and_low_temperature_approaches_greedy(micro_model):
    greedy = rm.sample(micro_model, PROMPTS, max_new_tokens=10, temperature=0.0, eos_token_id=None)
    nucleus = rm.sample(
        micro_model,
        PROMPTS,
        max_new_tokens=10,
        temperature=1.0,
        top_p=1e-6,
        eos_token_id=None,
        generator=torch.Generator().manual_seed(0),
    )
    assert [s.token_ids for s in nucleus] == [s.token_ids for s in greedy]
    # Log-probs are the model's own (temperature 1, before top-p), whatever was used to sample.
    for g, n in zip(greedy, nucleus, strict=True):
        torch.testing.assert_close(
            torch.tensor(n.logprobs), torch.tensor(g.logprobs), rtol=0, atol=1e-6
        )


def test_sample_restores_training_mode(micro_model):
    micro_model.train()
    rm.sample(micro_model, [[1, 2, 3]], max_new_tokens=2, eos_token_id=0)
    assert micro_model.training
