"""The scope of a model trained on the generated problems, and the check of questions outside it."""

from __future__ import annotations

import random

import pytest

from training.problems import GENERATORS, training_problems
from training.problems.phrasings import rephrase
from training.scope import MAX_SCAN_CHARS, classify_scope, manifest_scope, scope_manifest


@pytest.mark.parametrize(
    ("statement", "area"),
    [
        ("Who was the first king of England?", "history"),
        ("Write an essay about the sea", "writing"),
        ("What is the derivative of x^2 + 3x?", "calculus"),
        ("Evaluate $\\int_0^1 x\\,dx$", "calculus"),
        ("Write a Python function that sorts a list", "programming"),
        ("what is sin 30?", "trigonometry"),
        ("Why is the sky blue?", "a question without numbers"),
    ],
)
def test_questions_outside_the_trained_topics(statement, area):
    verdict = classify_scope(statement)
    assert not verdict.in_scope and verdict.area == area


def test_every_generated_problem_in_any_wording_is_in_scope():
    rng = random.Random(0)
    for index, problem in enumerate(training_problems(3)):
        if index == 2000:
            break
        for text in (problem.statement, rephrase(problem, rng).statement):
            assert classify_scope(text).in_scope, text


def test_scan_is_bounded():
    assert classify_scope("1 + 1 " * 10_000 + " essay").in_scope  # past MAX_SCAN_CHARS
    assert MAX_SCAN_CHARS <= 10_000


def test_manifest_scope_names_the_topics():
    scope = scope_manifest()
    assert set(scope["topics"]) == {t for _, t in GENERATORS}
    assert manifest_scope({"scope": scope}) == scope
    assert manifest_scope({}) is None and manifest_scope({"scope": "x"}) is None
