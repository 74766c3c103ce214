from bench.probe_vllm_lora import max_logprob_gap
from worker.inference.engine import ProbeOutput


def probe(completion: list[int], prompt_lp: list[float], completion_lp: list[float]) -> ProbeOutput:
    return ProbeOutput([1, 2, 3], completion, prompt_lp, completion_lp)


def test_the_gap_is_the_largest_over_prompt_and_completion_tokens():
    hot = [probe([5, 6], [-1.0, -2.0], [-0.5, -0.25]), probe([7], [-1.0, -1.0], [-3.0])]
    merged = [probe([5, 6], [-1.01, -2.0], [-0.5, -0.20]), probe([7], [-1.0, -1.0], [-3.02])]
    assert abs(max_logprob_gap(hot, merged) - 0.05) < 1e-9


def test_different_greedy_tokens_are_no_match_at_all():
    hot = [probe([5, 6], [-1.0, -2.0], [-0.5, -0.25])]
    merged = [probe([5, 9], [-1.0, -2.0], [-0.5, -0.25])]
    assert max_logprob_gap(hot, merged) is None
