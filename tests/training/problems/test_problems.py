"""Problem generators: determinism, verified reference solutions, held-out disjointness, lengths."""

from __future__ import annotations

import itertools
import random

import pytest

from training.answers import extract_final_answer, reward, verify
from training.problems import (
    DOMAINS,
    GENERATORS,
    LEVELS,
    eval_set,
    generate_problem,
    is_held_out,
    problem_key,
    topics,
    training_problems,
    training_sample,
)
from training.problems.math_topics import evaluate_with_steps
from training.problems.worked_arithmetic import (
    column_addition,
    column_subtraction,
    long_multiplication,
    short_division,
)

ALL_KINDS = [(d, t, lvl) for (d, t) in GENERATORS for lvl in LEVELS]
# The chat template and the C3PO suffix add about 150 characters around statement + answer.
MAX_PROBLEM_CHARS = 750


def _sample(domain: str, topic: str, level: int, n: int, seed: int = 0):
    rng = random.Random(seed)
    return [generate_problem(domain, topic, level, rng) for _ in range(n)]


@pytest.mark.parametrize(("domain", "topic", "level"), ALL_KINDS)
def test_reference_solution_earns_full_reward(domain, topic, level):
    for problem in _sample(domain, topic, level, 40):
        assert problem.domain == domain and problem.topic == topic and problem.level == level
        assert reward(problem.assistant_text, problem) == 1.0, problem
        assert extract_final_answer(problem.assistant_text) == problem.answer


@pytest.mark.parametrize(("domain", "topic", "level"), ALL_KINDS)
def test_lengths_fit_a_char_level_context(domain, topic, level):
    for problem in _sample(domain, topic, level, 60, seed=1):
        total = len(problem.statement) + len(problem.assistant_text)
        assert total <= MAX_PROBLEM_CHARS, (total, problem)
        assert problem.statement.isascii() and problem.assistant_text.isascii()


@pytest.mark.parametrize(("domain", "topic", "level"), ALL_KINDS)
def test_wrong_answers_are_rejected(domain, topic, level):
    for problem in _sample(domain, topic, level, 20, seed=2):
        if problem.kind == "choice":
            wrong = next(c for c in "ABCD" if c != problem.answer)
        elif "/" in problem.answer:
            num, den = problem.answer.split("/")
            wrong = f"{int(num) + 1}/{den}"
        else:
            wrong = str(round(float(problem.answer) + 1, 3))
        completion = problem.assistant_text.replace(
            f"\\boxed{{{problem.answer}}}", f"\\boxed{{{wrong}}}"
        )
        assert reward(completion, problem) == 0.0, (problem.answer, wrong)


def test_generators_are_deterministic_for_a_seed():
    first = list(itertools.islice(training_problems(123), 50))
    again = list(itertools.islice(training_problems(123), 50))
    other = list(itertools.islice(training_problems(124), 50))
    assert first == again
    assert first != other


def test_topic_weights_lean_the_stream_towards_the_named_topics():
    def share(stream) -> float:
        draws = list(itertools.islice(stream, 2000))
        return sum(p.topic == "multiple_choice" for p in draws) / len(draws)

    uniform = share(training_problems(5))
    leaning = share(training_problems(5, topic_weights={"multiple_choice": 5.0}))
    # 14 topics: 1/14 of the draws uniformly, 5/18 with weight 5 (held-out skips aside).
    assert 0.04 < uniform < 0.11 and 0.22 < leaning < 0.34
    with pytest.raises(ValueError, match="no_such_topic"):
        next(training_problems(5, topic_weights={"no_such_topic": 2.0}))


def test_an_eval_set_can_hold_one_topic_and_stays_held_out():
    problems = eval_set("science", 2, 40, seed=0, topic_names=["multiple_choice"])
    assert len(problems) == 40 and {p.topic for p in problems} == {"multiple_choice"}
    assert all(is_held_out(p) for p in problems)
    assert problems == eval_set("science", 2, 40, seed=0, topic_names=["multiple_choice"])


def test_fraction_sums_add_the_numerators_by_columns():
    problem = next(
        p
        for p in eval_set("math", 2, 100)
        if p.topic == "fractions" and "+" in p.statement and "by columns" in p.steps
    )
    assert "add " in problem.steps and "ones: " in problem.steps


def test_every_domain_has_topics_at_every_level():
    assert set(topics("math")) >= {
        "addition",
        "subtraction",
        "multiplication",
        "order_of_operations",
        "fractions",
        "percentages",
        "linear_equations",
        "word_problems",
    }
    assert set(topics("science")) >= {
        "unit_conversion",
        "kinematics",
        "force",
        "density",
        "molar_mass",
        "multiple_choice",
    }


def test_levels_grow_harder():
    """The hardest level needs longer worked solutions than the easiest, in every domain."""
    for domain in DOMAINS:
        easy = sum(len(p.steps) for p in eval_set(domain, 1, 40))
        hard = sum(len(p.steps) for p in eval_set(domain, 4, 40))
        assert hard > 1.5 * easy, (domain, easy, hard)


def test_training_stream_never_yields_held_out_problems():
    stream = list(itertools.islice(training_problems(7), 3000))
    assert not any(is_held_out(p) for p in stream)
    assert {p.domain for p in stream} == set(DOMAINS)
    assert {p.level for p in stream} == set(LEVELS)


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("level", LEVELS)
def test_eval_sets_are_held_out_distinct_and_deterministic(domain, level):
    problems = eval_set(domain, level, 60, seed=0)
    assert len(problems) == 60
    assert all(is_held_out(p) and p.domain == domain and p.level == level for p in problems)
    # Distinct questions (a multiple-choice stem once); several may share a calculation key.
    assert len({problem_key(p.split_text or p.statement) for p in problems}) == len(problems)
    assert problems == eval_set(domain, level, 60, seed=0)
    assert {p.topic for p in problems} == set(topics(domain))


def test_eval_and_training_share_no_problem():
    held_out = {p.split_key for d in DOMAINS for lvl in LEVELS for p in eval_set(d, lvl, 60)}
    training = {p.split_key for p in itertools.islice(training_problems(0), 4000)}
    assert held_out and training
    assert not held_out & training


def test_multiple_choice_split_ignores_option_order():
    """The same stem can never be in training with its options merely reordered."""
    rng = random.Random(3)
    keys_by_stem: dict[str, set[str]] = {}
    for _ in range(2000):
        problem = generate_problem("science", "multiple_choice", 1, rng)
        keys_by_stem.setdefault(problem.statement.split("\n")[0], set()).add(problem.split_key)
    assert any(len(keys) == 1 for keys in keys_by_stem.values())
    assert all(len(keys) == 1 for keys in keys_by_stem.values())


def test_problem_key_normalises_spacing_case_and_punctuation():
    assert problem_key("Compute 3 + 4.") == problem_key("compute  3+4")
    assert problem_key("Compute 3 × 4?") == problem_key("compute 3*4")
    assert problem_key("Compute 3 + 4.") != problem_key("Compute 3 + 5.")


def test_training_sample_is_a_fixed_distinct_prompt_set():
    sample = training_sample(30, seed=5)
    assert len({p.key for p in sample}) == 30
    assert sample == training_sample(30, seed=5)


def test_training_sample_larger_than_a_topic_space_is_a_clear_error():
    # Molar mass at level 4 has about 500 training problems (formulas x 2..9 mol).
    with pytest.raises(ValueError, match="distinct training problems found, 5000 asked for"):
        training_sample(5000, seed=0, domains=("science",), levels=(4,), topic_names=["molar_mass"])


def test_generate_problem_rejects_unknown_kinds():
    with pytest.raises(KeyError):
        generate_problem("math", "calculus", 1, random.Random(0))
    with pytest.raises(ValueError):
        generate_problem("math", "addition", 9, random.Random(0))


@pytest.mark.parametrize(("a", "b"), [(0, 0), (9, 1), (999, 1), (4567, 89), (10, 90090)])
def test_column_addition_lines_end_in_the_sum(a, b):
    lines = column_addition(a, b)
    assert lines[-1] == f"so {a}+{b}={a + b}"
    written = [line.split("write ")[1].split()[0] for line in lines if "write" in line]
    assert int("".join(reversed(written))) == a + b


@pytest.mark.parametrize(("a", "b"), [(5, 5), (1000, 1), (503, 498), (7468, 1791)])
def test_column_subtraction_borrows(a, b):
    lines = column_subtraction(a, b)
    assert lines[-1] == f"so {a}-{b}={a - b}"
    digits = [int(line.split("=")[-1].split()[0]) for line in lines[1:-1]]
    assert int("".join(str(d) for d in reversed(digits))) == a - b


@pytest.mark.parametrize(("a", "b"), [(7, 8), (47, 6), (6, 47), (47, 36), (431, 29), (140, 15)])
def test_long_multiplication_states_the_product(a, b):
    assert long_multiplication(a, b)[-1].endswith(f"={a * b}")


@pytest.mark.parametrize(("n", "d"), [(56, 8), (336, 8), (224, 56), (720, 60)])
def test_short_division_states_the_quotient(n, d):
    assert short_division(n, d)[-1].endswith(f"={n // d}")


def test_order_of_operations_follows_precedence_and_brackets():
    value, lines = evaluate_with_steps([7, "+", 4, "*", "(", 8, "-", 12, ")", "-", 2])
    assert value == 7 + 4 * (8 - 12) - 2
    assert lines[0] == "8-12=-4"
    assert "now 7+4*(-4)-2" in lines
    assert verify(str(value), "-11", kind="expression")


def test_multiple_choice_solution_copies_options_then_compares_a_character_at_a_time():
    rng = random.Random(11)
    for level in (1, 2, 3, 4):
        problem = generate_problem("science", "multiple_choice", level, rng)
        lines = problem.steps.splitlines()
        options = [line for line in problem.statement.splitlines()[-1].split(" (") if line]
        # The options are copied one per line before anything is computed.
        assert lines[0] == "the options:"
        assert len(lines[1:5]) == 4 and all(line.startswith("(") for line in lines[1:5])
        assert [line.split(") ", 1)[1] for line in lines[1:5]] == [
            o.split(") ", 1)[1] for o in options
        ]
        # Exactly one comparison matches, and it ends with the letter the answer names.
        compared = [line for line in lines if ": " in line and line.startswith("(")]
        matching = [line for line in compared if " matches " in line]
        assert len(compared) == 4 and len(matching) == 1
        assert matching[0].endswith(f"matches {problem.answer}")
        assert lines[-1] == f"so option {problem.answer}"
        assert all(line.endswith(" no") for line in compared if line not in matching)


def test_character_comparison_stops_at_the_first_difference():
    from training.problems.science_topics import _compare_characters

    assert _compare_characters("50", "5") == "5=5 0!_ no"
    assert _compare_characters("15", "5") == "1!5 no"
    assert _compare_characters("12.5", "12.5") == "1=1 2=2 .=. 5=5 _=_ matches"
