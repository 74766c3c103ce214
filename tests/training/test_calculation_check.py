"""The exact check of pure calculations: what it recognises in the ways people write, what it
refuses (anything else, and anything past its bounds), and that it never disputes a right answer
of the generated problems in any wording."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from training.answers import verify
from training.calculation_check import (
    MAX_CHARS,
    evaluate_expression,
    format_value,
    recognise_calculation,
)
from training.problems import training_problems
from training.problems.phrasings import rephrase


@pytest.mark.parametrize(
    ("statement", "kind", "value"),
    [
        ("what is 3*7?", "arithmetic", "21"),
        ("Compute $757 + 18$.", "arithmetic", "775"),
        ("3 x 7", "arithmetic", "21"),
        ("3×7=", "arithmetic", "21"),
        ("what's 12 divided by 4", "arithmetic", "3"),
        ("What is 5 times 6 minus 4?", "arithmetic", "26"),
        ("\\(4 \\times 9\\)", "arithmetic", "36"),
        ("What is $\\frac{3}{4} + \\frac{1}{8}$?", "arithmetic", "7/8"),
        ("Compute 3 * (4 + 5) - 6 / 2.", "arithmetic", "24"),
        ("Compute 4*(-4)", "arithmetic", "-16"),
        ("what is the sum of 45 and 67", "arithmetic", "112"),
        ("Subtract 19 from 54.", "arithmetic", "35"),
        ("1,000 + 1", "arithmetic", "1001"),
        ("What is 15% of 240?", "percentage", "36"),
        ("Calculate 20 \\% of 80", "percentage", "16"),
        ("what is 12.5 percent of 80", "percentage", "10"),
        ("Solve for x: 3x + 5 = 20.", "linear_equation", "5"),
        ("solve 2x - 3 = x + 4", "linear_equation", "7"),
        ("Find x: $5x = 20$", "linear_equation", "4"),
        ("x/4 = 3, find x.", "linear_equation", "12"),
        ("Convert 5 km to m.", "unit_conversion", "5000"),
        ("How many seconds are in 2 hours?", "unit_conversion", "7200"),
        ("convert 36 km/h to m/s", "unit_conversion", "10"),
        ("How many cm is 3 m?", "unit_conversion", "300"),
        ("Convert 250 g to kg", "unit_conversion", "0.25"),
    ],
)
def test_recognises_calculations_as_people_write_them(statement, kind, value):
    found = recognise_calculation(statement)
    assert found is not None, statement
    assert (found.kind, found.value_text) == (kind, value)
    assert value in found.shown


@pytest.mark.parametrize(
    "statement",
    [
        "Who was the first king of England?",
        "A jar has 62 marbles and 5 more are put in. How many are there?",
        "What is the derivative of x^2?",
        "what is 2^10",
        "Write a python function that adds 3 and 4",
        "whats 100/0",
        "Convert 5 kg to m",  # different quantities
        "Solve 2x = 2x + 1",  # no solution
        "Compute 3 + 4 and 5 + 6",  # two calculations: which one?
        "",
    ],
)
def test_refuses_what_is_not_one_pure_calculation(statement):
    assert recognise_calculation(statement) is None


def test_bounds_are_checked_before_any_work():
    assert recognise_calculation("1+" * (MAX_CHARS // 2) + "1") is None
    assert recognise_calculation(" + ".join(["1"] * 13)) is None  # too many numbers
    assert recognise_calculation("1234567890123 * 2") is None  # too many digits
    with pytest.raises(ValueError, match="too deep"):
        evaluate_expression("(" * 7 + "1" + ")" * 7)
    with pytest.raises(ValueError):
        evaluate_expression("1 + ")


def test_values_are_exact():
    assert evaluate_expression("1 / 3 + 1 / 6") == Fraction(1, 2)
    assert format_value(Fraction(1, 3)) == "1/3"
    assert format_value(Fraction(5, 4)) == "1.25"
    assert format_value(Fraction(-7)) == "-7"


def test_never_disputes_the_answer_of_a_generated_problem_in_any_wording():
    rng = random.Random(0)
    recognised = 0
    for index, problem in enumerate(training_problems(21)):
        if index == 1500:
            break
        for statement in (
            problem.statement,
            rephrase(problem, rng).statement,
            rephrase(problem, rng, split="unseen").statement,
        ):
            found = recognise_calculation(statement)
            if found is None:
                continue
            recognised += 1
            assert verify(
                problem.answer,
                found.value_text,
                kind=problem.kind,
                tolerance=problem.tolerance,
                unit=problem.unit,
                options=problem.options,
            ), (statement, problem.answer, found.shown)
    assert recognised > 1500  # most arithmetic, percentage, equation and conversion problems
