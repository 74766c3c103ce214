"""Held-out evaluation: Wilson intervals, scoring, and the ringmodel sampling path end to end."""

from __future__ import annotations

import json

import pytest
import torch

import ringmodel as rm
from tests.fixtures.micro_model import MICRO as MICRO_BASE
from training.evaluate import (
    evaluate_with_ringmodel,
    evaluation_problems,
    format_table,
    score_completions,
    wilson_interval,
)
from training.problems import eval_set, is_held_out

MICRO = {**MICRO_BASE, "max_position_embeddings": 256}


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        (0, 10, 0.0, 0.2775),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (95, 100, 0.8882, 0.9785),
    ],
)
def test_wilson_interval_matches_the_formula(successes, n, low, high):
    lo, hi = wilson_interval(successes, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_wilson_interval_of_nothing_is_everything():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_scoring_counts_right_wrong_and_unfinished():
    problems = eval_set("math", 1, 4)
    right = [f"<think>x</think>\n\\boxed{{{p.answer}}}" for p in problems]
    completions = [right[0], right[1], "<think>x</think>\n\\boxed{nonsense}", right[3]]
    finished = [True, True, True, False]  # the last hit the length limit: 0 whatever it says
    [result] = score_completions(problems, completions, finished)
    assert (result["domain"], result["level"], result["n"]) == ("math", 1, 4)
    assert result["correct"] == 2 and result["accuracy"] == 0.5
    assert result["unfinished"] == 1
    assert sum(t["n"] for t in result["by_topic"].values()) == 4


def test_evaluation_problems_are_held_out_and_grouped():
    problems = evaluation_problems(["math", "science"], [1, 2], 3, seed=0)
    assert len(problems) == 12 and all(is_held_out(p) for p in problems)
    assert [(p.domain, p.level) for p in problems[::3]] == [
        ("math", 1),
        ("math", 2),
        ("science", 1),
        ("science", 2),
    ]


@pytest.mark.slow  # tens of seconds on a loaded 2-core machine
def test_ringmodel_path_produces_a_json_report():
    torch.manual_seed(0)
    model = rm.BailingMoeForCausalLM(rm.BailingMoeConfig.ring_tiny(**MICRO)).eval()
    tokenizer = rm.build_tokenizer(model_max_length=256)
    report = evaluate_with_ringmodel(
        model, tokenizer, domains=["math"], levels=[1], n_per_level=2, examples=1
    )
    json.dumps(report)  # plain JSON all the way down
    [result] = report["results"]
    assert result["n"] == 2 and report["overall"]["n"] == 2
    # An untrained model emits noise: nothing verifies, whether or not it stopped in time.
    assert result["accuracy"] == 0.0 and 0 <= result["unfinished"] <= 2
    assert report["examples"][0]["reference"] == eval_set("math", 1, 2)[0].answer
    assert "math" in format_table(report)
