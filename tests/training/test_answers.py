"""Answer extraction and verification: the hard cases of the reward function."""

from __future__ import annotations

import threading
import time

import pytest

from training.answers import (
    answer_unit_mismatch,
    check_reference_parses,
    extract_final_answer,
    normalise_unit,
    parse_exact_number,
    reward,
    verify,
)
from training.problems import Problem

# --- extraction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>7+5=12</think>\nThe answer is \\boxed{12}.", "12"),
        ("<think>x</think> so \\boxed{\\frac{3}{4}} in the end", "\\frac{3}{4}"),
        ("<think>x</think> \\boxed{\\{1, \\{2\\}\\}}", "\\{1, \\{2\\}\\}"),
        ("<think>x</think> \\boxed{a_{1}^{2}}", "a_{1}^{2}"),
        ("<think>x</think> first \\boxed{1}, then \\boxed{2}", "2"),
        ("<think>try \\boxed{5}</think> so \\boxed{6}", "6"),
        ("<think>a</think> mid \\boxed{3} <think>b</think> end \\boxed{4}", "4"),
        ("<think>x</think> \\boxed {  7 }", "7"),
        ("<think>x</think> \\boxed{8} and \\boxed{9", "8"),
    ],
)
def test_extract_last_complete_box_after_think(completion, expected):
    assert extract_final_answer(completion) == expected


@pytest.mark.parametrize(
    "completion",
    [
        "<think>7+5=12 so \\boxed{12}",  # reasoning never ended
        "\\boxed{12}",  # no reasoning block at all
        "<think>\\boxed{12}</think> no box after the reasoning",
        "<think>x</think> \\boxed{12",  # cut off inside the box
        "",
    ],
)
def test_unfinished_or_unboxed_answers_have_no_final_answer(completion):
    assert extract_final_answer(completion) is None


# --- expressions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "prediction"),
    [
        ("1/2", "0.5"),
        ("0.5", "1/2"),
        ("\\frac{3}{4}", "0.75"),
        ("3/4", "\\frac{3}{4}"),
        ("3/4", "\\dfrac{6}{8}"),
        ("3/4", "\\frac34"),
        ("-7", "-7"),
        ("-\\frac{1}{2}", "-0.5"),
        ("-1/2", "\\frac{-1}{2}"),
        ("5", "x = 5"),
        ("5", "{5}"),
        ("1000", "1,000"),
        ("\\{1,2\\}", "\\{2,1\\}"),
        ("(1,3]", "(1,3]"),
        ("x^2+2x+1", "(x+1)^2"),
        ("\\sqrt{2}", "2^{1/2}"),
        ("2\\pi", "\\pi \\cdot 2"),
        # two powers are not a tower (both were "too large or nested", so wrong)
        ("x^2+y^2", "y^2+x^2"),
        ("a^2-b^2", "(a-b)(a+b)"),
        ("(x^2+1)^2", "x^4+2x^2+1"),
    ],
)
def test_equivalent_expressions_verify(reference, prediction):
    assert verify(reference, prediction, kind="expression")


@pytest.mark.parametrize(
    ("reference", "prediction"),
    [
        ("-7", "7"),
        ("132", "131"),
        ("1/3", "0.333"),
        ("3/4", "4/3"),
        ("(1,3]", "[1,3]"),
        ("\\{1,2\\}", "\\{1,2,3\\}"),
        ("x^2+1", "x^2-1"),
        ("5", "five"),
        ("5", ""),
        ("5", None),
    ],
)
def test_different_expressions_do_not_verify(reference, prediction):
    assert not verify(reference, prediction, kind="expression")


def test_text_around_the_box_does_not_matter():
    completion = "<think>\n7*6=42\n</think>\nSo the product is $\\boxed{42}$, as required."
    problem = _problem("42", "expression")
    assert reward(completion, problem) == 1.0


# --- numbers with units and tolerance ------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "prediction", "unit"),
    [
        ("20", "20 m/s", "m/s"),
        ("20", "20\\text{ m/s}", "m/s"),
        ("20", "20\\,\\mathrm{m\\,s^{-1}}", "m/s"),
        ("20", "72 km/h", "m/s"),
        ("9.8", "9.8 m/s^2", "m/s^2"),
        ("9.8", "9.8\\ \\mathrm{m/s^{2}}", "m/s^2"),
        ("2.5", "2500 kg/m^3", "g/cm^3"),
        ("2.5", "2.5 g/cm3", "g/cm^3"),
        ("1000", "1 km", "m"),
        ("1500", "1.5 \\times 10^{3}", "m"),
        ("1500", "1.5e3 metres", "m"),
        ("44", "44 g/mol", "g/mol"),
        ("3", "3 moles", "mol"),
        ("20 m/s", "72 km/h", None),
    ],
)
def test_numbers_with_units_verify(reference, prediction, unit):
    assert verify(reference, prediction, kind="number", unit=unit)


@pytest.mark.parametrize(
    ("reference", "prediction", "unit"),
    [
        ("2.5", "2.5 kg", "g/cm^3"),  # another quantity altogether
        ("20", "20 km/h", "m/s"),  # right number, wrong unit
        ("68.6", "68.7", "N"),
        ("10800", "10801", "s"),
    ],
)
def test_wrong_numbers_or_units_do_not_verify(reference, prediction, unit):
    assert not verify(reference, prediction, kind="number", unit=unit)


def test_number_tolerance_is_relative_unless_absolute_is_given():
    assert verify("100", "100.4", kind="number", tolerance=0.005)
    assert not verify("100", "100.6", kind="number", tolerance=0.005)
    assert not verify("0", "0.01", kind="number", tolerance=0.01)
    assert verify("0", "0.01", kind="number", abs_tolerance=0.05)


# --- multiple choice -----------------------------------------------------------------------

OPTIONS = ("5 N", "6 N", "7 N", "8 N")


@pytest.mark.parametrize("prediction", ["B", "(B)", "B) 6 N", "B. 6 N", "b", "\\text{B}", "6 N"])
def test_choice_letters_verify(prediction):
    assert verify("B", prediction, kind="choice", options=OPTIONS)


@pytest.mark.parametrize("prediction", ["C", "(D)", "a 6 N force", "7 N", "AB"])
def test_wrong_choices_do_not_verify(prediction):
    assert not verify("B", prediction, kind="choice", options=OPTIONS)


# --- reward --------------------------------------------------------------------------------


def _problem(answer: str, kind: str, **extra) -> Problem:
    return Problem(
        statement="q",
        domain="math",
        topic="t",
        level=1,
        answer=answer,
        kind=kind,
        steps="s",
        final=f"\\boxed{{{answer}}}",
        **extra,
    )


def test_reward_is_one_or_zero_and_unfinished_scores_zero():
    problem = _problem("3/4", "expression")
    assert reward("<think>...</think>\n\\boxed{0.75}", problem) == 1.0
    assert reward("<think>...</think>\n\\boxed{0.7}", problem) == 0.0
    assert reward("<think>... \\boxed{3/4}", problem) == 0.0
    assert reward("<think>\\boxed{3/4}</think> I am not sure.", problem) == 0.0


def test_reward_for_choice_problems_checks_the_key():
    problem = _problem("C", "choice", options=("1 m", "2 m", "3 m", "4 m"))
    assert reward("<think>x</think> \\boxed{C}", problem) == 1.0
    assert reward("<think>x</think> \\boxed{A}", problem) == 0.0


# --- speed and safety ----------------------------------------------------------------------


def test_plain_numbers_take_the_fast_path():
    assert parse_exact_number("-\\frac{3}{4}") == parse_exact_number("-0.75")
    verify("1/2", "0.5", kind="expression")  # warm up
    start = time.perf_counter()
    for i in range(2000):
        verify(str(i), f"{i}.0", kind="expression")
        verify(str(i), f"{i} m", kind="number", unit="m")
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "hostile",
    [
        "9^{9^{9^{9}}}",
        "10^{100000000}",
        "(" * 300 + ")" * 300,
        "{" * 50 + "1" + "}" * 50,
        "1" * 5000,
        "99999!",
        "\\frac{" * 40 + "1" + "}{2}" * 40,
    ],
)
def test_hostile_predictions_are_refused_quickly(hostile):
    start = time.perf_counter()
    assert not verify("5", hostile, kind="expression")
    assert not verify("5", hostile, kind="number")
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    "tower",
    ["9^9^9", "2**3**4", "2 ** 3 ** 4", "e^{e^{e^{e}}}", "9^(9^9)", "x^{2}^{3}", "((9^99)^99)^99"],
)
def test_towers_of_powers_are_refused_without_the_symbolic_checker(tower):
    assert not verify("5", tower, kind="expression", symbolic=False)
    error = check_reference_parses(tower, "expression", symbolic=False)
    assert error is not None and "too large or nested" in error


def test_verification_works_outside_the_main_thread():
    """math-verify's signal timeout is main-thread only; worker threads must still verify."""
    results = []

    def check():
        results.append(verify("x^2+2x+1", "(x+1)^2", kind="expression"))
        results.append(verify("1/2", "0.5", kind="expression"))

    thread = threading.Thread(target=check)
    thread.start()
    thread.join(timeout=30)
    assert results == [True, True]


# --- references ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "kind", "options"),
    [
        ("\\frac{1}{2}", "expression", None),
        ("x^2 + 1", "expression", None),
        ("x^2 + y^2", "expression", None),
        ("\\frac{x^2}{y^2}", "expression", None),
        ("\\{1, 2\\}", "expression", None),
        ("9.8 m/s^2", "number", None),
        ("-3", "number", None),
        ("B", "choice", OPTIONS),
        ("(C)", "choice", None),
    ],
)
def test_readable_references_pass(reference, kind, options):
    assert check_reference_parses(reference, kind, options=options) is None


@pytest.mark.parametrize(
    ("reference", "kind", "options", "fragment"),
    [
        ("", "expression", None, "empty"),
        ("\\foo{", "expression", None, "cannot parse"),
        ("abc", "number", None, "not a number"),
        ("E", "choice", OPTIONS, "beyond"),
        ("maybe", "choice", None, "not a choice letter"),
    ],
)
def test_unreadable_references_are_explained(reference, kind, options, fragment):
    error = check_reference_parses(reference, kind, options=options)
    assert error is not None and fragment in error


@pytest.mark.parametrize(
    ("unit", "canonical"),
    [("m s^-2", "m/s^2"), ("\\text{g/cm}^3", "g/cm^3"), ("metres", "m"), ("kph", "km/h")],
)
def test_units_are_normalised(unit, canonical):
    assert normalise_unit(unit) == canonical


# --- first-week fixes: SI prefixes, units asked by the statement, mixed numbers -------------


@pytest.mark.parametrize(
    ("reference", "prediction", "unit"),
    [
        ("12 N", "12000 mN", None),
        ("12 N", "0.012 kN", None),
        ("135", "0.135 km", "m"),
        ("135", "13500 cm", "m"),
        ("135", "135000 mm", "m"),
        ("2", "2000 mL", "L"),
        ("5", "5000 ms", "s"),
        ("3", "3000000 µm", "m"),
        ("1.2", "1200 kPa", "MPa"),
        ("20", "72 kilometres/hour", "m/s"),
        ("4", "4 kilonewtons", "kN"),
    ],
)
def test_every_si_prefix_of_a_known_unit_converts(reference, prediction, unit):
    assert verify(reference, prediction, kind="number", unit=unit)


@pytest.mark.parametrize(
    ("prediction", "unit"),
    [("135 kg", "m"), ("135 s", "m"), ("12 N", "J"), ("135 apples", "m")],
)
def test_a_unit_of_another_quantity_is_wrong(prediction, unit):
    assert not verify("135", prediction, kind="number", unit=unit)


@pytest.mark.parametrize(
    ("reference", "prediction", "unit", "note"),
    [
        ("135", "135 kg", "m", "kg measures a mass, but the question asks for a length (m)."),
        ("12 N", "12 J", None, "J measures an energy, but the question asks for a force (N)."),
        ("20", "20 s", "m/s", "s measures a time, but the question asks for a speed (m/s)."),
        ("135", "0.135 km", "m", None),  # same quantity: wrong (or right) for another reason
        ("135", "135", "m", None),  # no unit written
        ("135", "135 apples", "m", None),  # unknown unit: nothing certain to say
        ("135", "135 m", None, None),  # the key has no unit to compare with
    ],
)
def test_a_wrong_unit_is_explained(reference, prediction, unit, note):
    assert answer_unit_mismatch(reference, prediction, kind="number", unit=unit) == note


def test_only_number_answers_get_a_unit_explanation():
    assert answer_unit_mismatch("x^2", "x^2 kg", kind="expression", unit="m") is None
    # A value only math-verify can read gets no note: the explanation stays on the cheap path.
    assert answer_unit_mismatch("135", "2\\sqrt{2} kg", kind="number", unit="m") is None


@pytest.mark.parametrize(
    ("statement", "unit"),
    [
        ("A ball rolls for 9 s. How far does it go, in metres?", "m"),
        ("What is the car's speed (in km/h)?", "km/h"),
        ("Give your answer in cm^3.", "cm^3"),
        ("What force, in kilonewtons, holds it?", "kN"),
        ("How far does it travel in 5 s?", None),  # a duration, not the answer's unit
        ("How many apples are in total?", None),
        ("Is it in metres or in seconds?", None),  # two units: not a guess worth making
    ],
)
def test_the_unit_a_statement_asks_for(statement, unit):
    from training.units import unit_from_statement

    assert unit_from_statement(statement) == unit


@pytest.mark.parametrize(
    ("reference", "prediction", "kind"),
    [
        ("7/4", "1 3/4", "expression"),
        ("7/4", "1\\frac{3}{4}", "expression"),
        ("-5/2", "-2 1/2", "expression"),
        ("1.75", "1 3/4", "number"),
        ("1.75", "1 3/4 m", "number"),
        # Typed with a keyboard's fraction characters (a phone's ¾, the fraction slash).
        ("7/4", "1¾", "expression"),
        ("7/4", "1 ¾", "expression"),
        ("1.75", "1¾", "number"),
        ("1/2", "½", "expression"),
        ("-5/2", "-2½", "expression"),
        ("7/4", "1 3\u20444", "expression"),
    ],
)
def test_mixed_numbers_are_read_as_their_value(reference, prediction, kind):
    assert verify(reference, prediction, kind=kind)


def test_an_improper_mixed_number_is_not_read_as_one():
    # "1 5/4" is not a mixed number; it must not silently become 9/4.
    assert not verify("9/4", "1 5/4", kind="expression")
    assert not verify("9/4", "1¾", kind="expression")
