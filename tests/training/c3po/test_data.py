"""RL prompt curation: records from dicts and generated problems, de-duplication, the held-out
split, and the always/never-solved filter driven by real rollouts of a tiny model."""

import pytest
import torch

from ringmodel import BailingMoeConfig, BailingMoeForCausalLM, Sample, build_tokenizer
from training.c3po.data import (
    RLProblem,
    as_rl_problem,
    curate,
    deduplicate,
    is_held_out,
    prompt_ids_for,
    split_held_out,
)
from training.c3po.rollout import PolicyRolloutEngine, RolloutEngine, sample_groups
from training.problems import eval_set, training_sample

pytestmark = pytest.mark.usefixtures("single_torch_thread")  # tests/fixtures/micro_model.py


def test_as_rl_problem_from_a_dict_and_a_generated_problem():
    record = as_rl_problem({"id": 7, "text": "Compute 2 + 2.", "reference": "4", "level": 3})
    assert (record.problem_id, record.statement, record.answer, record.level) == (
        "7",
        "Compute 2 + 2.",
        "4",
        3,
    )
    derived = as_rl_problem({"statement": "Compute 2 + 2.", "answer": "4"})
    assert (
        derived.problem_id == as_rl_problem({"statement": "compute 2+2", "answer": "4"}).problem_id
    )
    choice = next(p for p in eval_set("science", 2, 200) if p.kind == "choice")
    converted = as_rl_problem(choice)
    assert converted.options == choice.options and converted.split_key == choice.split_key
    with pytest.raises(ValueError):
        as_rl_problem({"statement": "no answer"})


def test_deduplicate_uses_the_normalised_statement():
    problems = [
        RLProblem(problem_id="a", statement="Compute 3 + 4.", answer="7"),
        RLProblem(problem_id="b", statement="compute 3+4", answer="7"),
        RLProblem(problem_id="c", statement="Compute 3 + 5.", answer="8"),
    ]
    kept, dropped = deduplicate(problems)
    assert [p.problem_id for p in kept] == ["a", "c"] and dropped == 1


def test_held_out_split_matches_the_generators_and_never_leaks():
    held = [as_rl_problem(p) for p in eval_set("math", 2, 30)]
    assert all(is_held_out(p) for p in held)
    train_like = [as_rl_problem(p) for p in training_sample(60, 3, domains=("math",))]
    train, held_out = split_held_out(train_like + held)
    assert {p.problem_id for p in held} <= {p.problem_id for p in held_out}
    assert not {p.key for p in train} & {p.key for p in held_out}


class ScriptedEngine:
    """A rollout-engine stand-in whose answers are scripted per problem, so that the REAL
    verifier gives known solve rates: 1 + 1 always right, 2 + 2 always wrong, 3 + 3 half."""

    name = "scripted"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.calls = 0

    def generate(self, prompts, *, max_new_tokens, temperature, seed):
        out = []
        for i, prompt in enumerate(prompts):
            text = self.tokenizer.decode(prompt)
            if "1 + 1" in text:
                answer = "2"
            elif "2 + 2" in text:
                answer = "5"
            else:
                answer = "6" if i % 2 else "7"
            ids = self.tokenizer(f"<think>\nadd\n</think>\nThe answer is \\boxed{{{answer}}}.")
            token_ids = [*ids["input_ids"], self.tokenizer.eos_token_id]
            out.append(Sample(token_ids=token_ids, logprobs=[0.0] * len(token_ids), finished=True))
        self.calls += 1
        return out

    def refresh(self, policy, tokenizer):
        return None

    def close(self):
        return None


def test_curate_drops_always_and_never_solved_problems_with_the_real_verifier():
    tokenizer = build_tokenizer()
    engine = ScriptedEngine(tokenizer)
    assert isinstance(engine, RolloutEngine)
    problems = [
        {"id": "always", "statement": "Compute 1 + 1.", "answer": "2"},
        {"id": "never", "statement": "Compute 2 + 2.", "answer": "4"},
        {"id": "sometimes", "statement": "Compute 3 + 3.", "answer": "6"},
        {"id": "dup", "statement": "compute 3+3", "answer": "6"},
    ]
    report = curate(
        problems, engine=engine, tokenizer=tokenizer, group_size=4, held_out_per_mille=0
    )
    assert [p.problem_id for p in report.train] == ["sometimes"]
    assert report.always_solved == ["always"] and report.never_solved == ["never"]
    assert report.duplicates_dropped == 1
    assert (report.solve_rates["sometimes"].solved, report.solve_rates["sometimes"].attempts) == (
        2,
        4,
    )
    assert engine.calls == 1  # all problems × K in one batch
    assert '"never_solved"' in report.to_json()


def test_unfinished_rollouts_score_zero_without_the_verifier():
    torch.manual_seed(0)
    config = BailingMoeConfig.ring_tiny(
        hidden_size=64, num_hidden_layers=2, num_experts=4, moe_intermediate_size=32
    )
    engine = PolicyRolloutEngine(BailingMoeForCausalLM(config), eos_token_id=0)
    tokenizer = build_tokenizer()
    problem = RLProblem(problem_id="x", statement="Compute 1 + 1.", answer="2")

    calls = []

    def counting_reward(text, p):
        calls.append(text)
        return 1.0

    groups = sample_groups(
        engine,
        tokenizer,
        [problem],
        [prompt_ids_for(tokenizer, problem)],
        group_size=3,
        max_new_tokens=1,
        temperature=0.0,
        seed=0,
        reward_fn=counting_reward,
    )
    finished = [s.finished for s in groups[0].samples]
    assert groups[0].rewards == [1.0 if f else 0.0 for f in finished]
    assert len(calls) == sum(finished) and not all(finished)
    assert all(len(s.token_ids) == 1 for s in groups[0].samples)
