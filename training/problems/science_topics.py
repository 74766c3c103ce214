"""Science problem generators: unit conversion, kinematics, force, density, molar mass, and
multiple choice built on them.

Answers are numbers with a unit and a relative tolerance (the verifier strips or converts the
unit); multiple-choice problems wrap a numeric problem, offer the right value among three
plausible wrong ones, and are keyed by letter. Worked solutions name the formula, substitute,
and do the arithmetic with the shared written procedures.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from fractions import Fraction

from training.problems.base import CHOICE_LETTERS, Problem
from training.problems.worked_arithmetic import (
    column_addition,
    column_subtraction,
    divide_by_multiples,
    format_decimal,
    long_multiplication,
    multiply_by_digit,
    short_division,
)

# Generated answers are exact decimals, so the tolerance only absorbs float noise: a looser one
# would accept an off-by-one in the last digit of a five-digit answer.
NUMBER_TOLERANCE = 1e-6


def _problem(
    statement: str, topic: str, level: int, value: Fraction | int, unit: str, steps: list[str]
) -> Problem:
    answer = format_decimal(value)
    return Problem(
        statement=statement,
        domain="science",
        topic=topic,
        level=level,
        answer=answer,
        kind="number",
        steps="\n".join(steps),
        final=f"The answer is \\boxed{{{answer}}} {unit}.",
        tolerance=NUMBER_TOLERANCE,
        unit=unit,
    )


def _scale_line(n: Fraction | int, factor: int, divide: bool = False) -> str:
    """Multiplying or dividing by a power of ten: the digits stay, the point moves."""
    result = Fraction(n) / factor if divide else Fraction(n) * factor
    op = "/" if divide else "*"
    return f"{format_decimal(n)}{op}{factor}={format_decimal(result)}"


# --- unit conversion -----------------------------------------------------------------------

_DECIMAL_UNITS = (("km", "m", 1000), ("m", "cm", 100), ("kg", "g", 1000), ("L", "mL", 1000))
_CLOCK_UNITS = (("min", "s", 60), ("h", "min", 60))


def unit_conversion(level: int, rng: random.Random) -> Problem:
    if level == 1:
        big, small, factor = rng.choice(_DECIMAL_UNITS + _CLOCK_UNITS)
        k = rng.randint(2, 99) if factor != 60 else rng.randint(2, 12)
        steps = [f"1 {big} = {factor} {small}, so multiply by {factor}"]
        steps += [_scale_line(k, factor)] if factor != 60 else long_multiplication(k, 60)
        return _problem(
            f"Convert {k} {big} to {small}.", "unit_conversion", level, k * factor, small, steps
        )
    if level == 2:
        big, small, factor = rng.choice(_DECIMAL_UNITS + _CLOCK_UNITS)
        if factor == 60:
            k = rng.randint(2, 12)
            n = 60 * k
            steps = [f"60 {small} = 1 {big}, so divide by 60"] + divide_by_multiples(n, 60)
            value: Fraction | int = k
        else:
            n = rng.randint(2, 99) * (factor // 10) if factor > 100 else rng.randint(101, 999)
            steps = [f"{factor} {small} = 1 {big}, so divide by {factor}"]
            steps.append(_scale_line(n, factor, divide=True))
            value = Fraction(n, factor)
        return _problem(
            f"Convert {n} {small} to {big}.", "unit_conversion", level, value, big, steps
        )
    if level == 3:
        if rng.random() < 0.5:
            k = rng.randint(1, 9)
            v = 18 * k
            steps = ["1 km/h = 1000 m / 3600 s = 5/18 m/s", f"{v}/18:"]
            steps += divide_by_multiples(v, 18) + [f"{k}*5={5 * k}"]
            return _problem(
                f"Convert {v} km/h to m/s.", "unit_conversion", level, 5 * k, "m/s", steps
            )
        k = rng.randint(1, 12)
        v = 5 * k
        steps = ["1 m/s = 3.6 km/h = 18/5 km/h", f"{v}/5={k}"] + long_multiplication(18, k)
        return _problem(
            f"Convert {v} m/s to km/h.", "unit_conversion", level, 18 * k, "km/h", steps
        )
    if rng.random() < 0.5:
        k = rng.randint(2, 9)
        steps = ["1 h = 60 min = 60*60 s = 3600 s"] + multiply_by_digit(3600, k)
        return _problem(f"Convert {k} h to s.", "unit_conversion", level, 3600 * k, "s", steps)
    x = Fraction(rng.randint(11, 99), 10)
    steps = ["1 g/cm^3 = 1000 kg/m^3, so multiply by 1000", _scale_line(x, 1000)]
    statement = f"Convert {format_decimal(x)} g/cm^3 to kg/m^3."
    return _problem(statement, "unit_conversion", level, x * 1000, "kg/m^3", steps)


# --- kinematics ----------------------------------------------------------------------------

_MOVERS = ("car", "runner", "cyclist", "train", "ball", "boat")


def kinematics(level: int, rng: random.Random) -> Problem:
    mover = rng.choice(_MOVERS)
    if level == 1:
        v, t = rng.randint(2, 9), rng.randint(2, 9)
        d = v * t
        statement = f"A {mover} travels {d} m in {t} s. What is its speed in m/s?"
        steps = ["speed v = d/t", f"v = {d}/{t}"] + short_division(d, t)
        return _problem(statement, "kinematics", level, v, "m/s", steps)
    if level == 2:
        v, t = rng.randint(10, 40), rng.randint(2, 9)
        statement = f"A {mover} moves at {v} m/s for {t} s. How far does it go in m?"
        steps = ["distance d = v*t", f"d = {v}*{t}"] + long_multiplication(v, t)
        return _problem(statement, "kinematics", level, v * t, "m", steps)
    if level == 3:
        u, a, t = rng.randint(0, 20), rng.randint(2, 9), rng.randint(2, 9)
        v = u + a * t
        statement = (
            f"A {mover} speeds up from {u} m/s to {v} m/s in {t} s. "
            "What is its acceleration in m/s^2?"
        )
        steps = ["acceleration a = (v-u)/t", f"a = ({v}-{u})/{t}"]
        steps += column_subtraction(v, u) if u else []
        steps += short_division(v - u, t)
        return _problem(statement, "kinematics", level, a, "m/s^2", steps)
    a, t = rng.randint(1, 9), rng.randint(2, 9)
    if a % 2 and t % 2:
        t += 1
    u = rng.choice((0, rng.randint(1, 9)))
    start = "from rest" if u == 0 else f"at {u} m/s"
    statement = (
        f"A {mover} starts {start} and accelerates at {a} m/s^2 for {t} s. How far does it go in m?"
    )
    half = a * t * t // 2
    steps = ["distance s = u*t + a*t^2/2", f"t^2 = {t}*{t} = {t * t}"]
    steps += long_multiplication(a, t * t)
    steps += [f"{a * t * t}/2={half}"]
    total = half
    if u:
        steps += [f"u*t = {u}*{t} = {u * t}"] + column_addition(u * t, half)
        total += u * t
    return _problem(statement, "kinematics", level, total, "m", steps)


# --- force ---------------------------------------------------------------------------------


def force(level: int, rng: random.Random) -> Problem:
    if level == 1:
        m, a = rng.randint(2, 9), rng.randint(2, 9)
        statement = f"A {m} kg box accelerates at {a} m/s^2. What is the net force in N?"
        steps = ["F = m*a", f"F = {m}*{a}={m * a}"]
        return _problem(statement, "force", level, m * a, "N", steps)
    if level == 2:
        m, a = rng.randint(2, 9), rng.randint(2, 12)
        f = m * a
        statement = (
            f"A net force of {f} N acts on a {m} kg mass. What is its acceleration in m/s^2?"
        )
        steps = ["a = F/m", f"a = {f}/{m}"] + short_division(f, m)
        return _problem(statement, "force", level, a, "m/s^2", steps)
    if level == 3:
        m = rng.randint(2, 19)
        statement = f"What is the weight in N of a {m} kg mass? Use g = 9.8 m/s^2."
        steps = ["W = m*g", f"W = {m}*9.8, first {m}*98"] + long_multiplication(98, m)
        weight = Fraction(98 * m, 10)
        steps.append(f"so {m}*9.8={format_decimal(weight)}")
        return _problem(statement, "force", level, weight, "N", steps)
    m, a, friction = rng.randint(2, 9), rng.randint(2, 9), rng.randint(3, 30)
    push = m * a + friction
    statement = (
        f"A {m} kg box is pushed with {push} N against {friction} N of friction. "
        "What is its acceleration in m/s^2?"
    )
    steps = ["net force = push - friction"] + column_subtraction(push, friction)
    steps += ["a = F/m", f"a = {m * a}/{m}"] + short_division(m * a, m)
    return _problem(statement, "force", level, a, "m/s^2", steps)


# --- density -------------------------------------------------------------------------------


def density(level: int, rng: random.Random) -> Problem:
    rho = rng.randint(2, 9)
    if level == 1:
        volume = rng.randint(2, 9)
        m = rho * volume
        statement = (
            f"A block has mass {m} g and volume {volume} cm^3. What is its density in g/cm^3?"
        )
        steps = ["density = m/V", f"density = {m}/{volume}"] + short_division(m, volume)
        return _problem(statement, "density", level, rho, "g/cm^3", steps)
    if level == 2:
        volume = rng.randint(10, 60)
        statement = f"A liquid has density {rho} g/cm^3. What is the mass in g of {volume} cm^3?"
        steps = ["m = density*V", f"m = {rho}*{volume}"] + long_multiplication(volume, rho)
        return _problem(statement, "density", level, rho * volume, "g", steps)
    if level == 3:
        volume = rng.randint(10, 40)
        m = rho * volume
        statement = f"A metal has density {rho} g/cm^3. What volume in cm^3 has mass {m} g?"
        steps = ["V = m/density", f"V = {m}/{rho}"] + short_division(m, rho)
        return _problem(statement, "density", level, volume, "cm^3", steps)
    volume = 100 * rng.randint(1, 9)
    grams = rho * volume
    kilograms = Fraction(grams, 1000)
    statement = (
        f"A stone has mass {format_decimal(kilograms)} kg and volume {volume} cm^3. "
        "What is its density in g/cm^3?"
    )
    steps = [
        "change kg to g: multiply by 1000",
        _scale_line(kilograms, 1000),
        f"density = {grams}/{volume} = {grams // 100}/{volume // 100}",
    ]
    steps += short_division(grams // 100, volume // 100)
    return _problem(statement, "density", level, rho, "g/cm^3", steps)


# --- molar mass ----------------------------------------------------------------------------

ATOMIC_MASS = {"H": 1, "C": 12, "N": 14, "O": 16, "Na": 23, "Mg": 24, "Al": 27, "S": 32, "K": 39}
ATOMIC_MASS["Ca"] = 40

# Real compounds whose formulas need no brackets. Two elements first (level 1), then three.
_TWO_ELEMENT = (
    "H2O CO CO2 NH3 CH4 C2H6 C3H8 C4H10 C2H4 C3H6 C2H2 C6H6 NO NO2 N2O N2O4 SO2 SO3 H2S MgO "
    "CaO Na2O K2O Al2O3 CS2 H2O2 MgS Na2S K2S CaS NaH KH CaH2 Al2S3 Mg3N2 Na3N"
).split()
_THREE_ELEMENT = (
    "NaOH KOH HNO3 H2SO4 CaCO3 MgCO3 Na2CO3 K2CO3 NaHCO3 KHCO3 CH3OH C2H5OH CH3COOH HCOOH "
    "C6H12O6 C3H8O3 Na2SO4 K2SO4 MgSO4 CaSO4 KNO3 NaNO3 NH4NO3 C12H22O11 Na2SO3 CaSO3 KHSO4"
).split()

_FORMULA_PART_RE = re.compile(r"([A-Z][a-z]?)(\d*)")


def formula_counts(formula: str) -> dict[str, int]:
    """Atoms per element in order of first appearance: "CH3OH" -> {"C": 1, "H": 4, "O": 1}."""
    counts: dict[str, int] = {}
    for element, number in _FORMULA_PART_RE.findall(formula):
        counts[element] = counts.get(element, 0) + int(number or 1)
    return counts


def _molar_mass_steps(formula: str) -> tuple[int, list[str], str]:
    counts = formula_counts(formula)
    parts = [f"{el} {n}*{ATOMIC_MASS[el]}={n * ATOMIC_MASS[el]}" for el, n in counts.items()]
    lines = [f"{formula}: " + ", ".join(parts)]
    subtotals = [n * ATOMIC_MASS[el] for el, n in counts.items()]
    running = subtotals[0]
    for s in subtotals[1:]:
        if running >= 10 and s >= 10:
            lines += column_addition(running, s)
        else:
            lines.append(f"{running}+{s}={running + s}")
        running += s
    lines.append(f"M = {running} g/mol")
    given = ", ".join(f"{el}={ATOMIC_MASS[el]}" for el in counts)
    return running, lines, given


def molar_mass(level: int, rng: random.Random) -> Problem:
    if level == 1 or (level == 2 and rng.random() < 0.5):
        formula = rng.choice(_TWO_ELEMENT if level == 1 else _THREE_ELEMENT)
        mass, steps, given = _molar_mass_steps(formula)
        statement = f"Find the molar mass of {formula} in g/mol. ({given})"
        return _problem(statement, "molar_mass", level, mass, "g/mol", steps)
    if level in (2, 3):
        formula = rng.choice(_TWO_ELEMENT if level == 2 else _THREE_ELEMENT)
        k = rng.randint(2, 9)
        mass, steps, given = _molar_mass_steps(formula)
        statement = f"What is the mass in g of {k} mol of {formula}? ({given})"
        steps += ["m = n*M", f"m = {k}*{mass}"] + long_multiplication(mass, k)
        return _problem(statement, "molar_mass", level, mass * k, "g", steps)
    formula = rng.choice(_TWO_ELEMENT + _THREE_ELEMENT)
    k = rng.randint(2, 9)
    mass, steps, given = _molar_mass_steps(formula)
    grams = mass * k
    statement = f"How many mol are in {grams} g of {formula}? ({given})"
    steps += ["n = m/M", f"n = {grams}/{mass}"] + divide_by_multiples(grams, mass)
    return _problem(statement, "molar_mass", level, k, "mol", steps)


# --- multiple choice -----------------------------------------------------------------------

_CHOICE_BASES: tuple[Callable[[int, random.Random], Problem], ...] = (
    unit_conversion,
    kinematics,
    force,
    density,
)


def _distractors(value: Fraction, rng: random.Random) -> list[Fraction]:
    """Three wrong values a student plausibly gets: a slipped power of ten, half or double,
    or an off-by-a-little slip in the last step."""
    candidates = {value * 10, value / 10, value * 2, value / 2}
    for delta in (1, 2, 3, 5, 10):
        candidates.update({value + delta, value - delta})
    usable = sorted(
        c for c in candidates if c > 0 and c != value and _terminates(c) and len(str(c)) < 9
    )
    rng.shuffle(usable)
    return usable[:3]


def _terminates(value: Fraction) -> bool:
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    return den == 1


def _compare_characters(option: str, result: str) -> str:
    """`5=5 0!_ no` for 50 against 5: pairs of characters up to the first that differ."""
    pairs: list[str] = []
    for a, b in zip(option + "_", result + "_", strict=False):
        if a != b:
            return " ".join([*pairs, f"{a}!{b}", "no"])
        pairs.append(f"{a}={b}")
    return " ".join([*pairs, "matches"])


def multiple_choice(level: int, rng: random.Random) -> Problem:
    base = rng.choice(_CHOICE_BASES)(level, rng)
    value = Fraction(base.answer)
    assert base.unit is not None
    values = [value] + _distractors(value, rng)
    rng.shuffle(values)
    options = tuple(f"{format_decimal(v)} {base.unit}" for v in values)
    letter = CHOICE_LETTERS[values.index(value)]
    lines = [f"({CHOICE_LETTERS[i]}) {o}" for i, o in enumerate(options)]
    listed = " ".join(lines)
    # Four things ring-tiny failed at, and the format that avoids each (held-out level-1 multiple
    # choice stayed at chance, 34/90, through every earlier format):
    # - "… is option C" in one step: a wrong letter 4 times in 5 with the right value in hand. So
    #   the result is compared with every option in turn, on a line of its own.
    # - copying the options after the value is computed: the value just found was written after
    #   every letter. So the options are copied one per line first, straight from the prompt.
    # - deciding at once that two numbers of several characters are equal (`5` and `15`): at
    #   chance. So the numbers are compared a character at a time, as the long arithmetic works,
    #   up to the first difference ("_" marks the end of a number).
    # - reading the letter of the line that says "matches" from the start of that line: so the
    #   line ends with its letter, and "so option" copies what follows "matches".
    result = format_decimal(value)
    compared = "\n".join(
        f"{line}: {_compare_characters(format_decimal(v), result)}"
        + (f" {CHOICE_LETTERS[i]}" if v == value else "")
        for i, (line, v) in enumerate(zip(lines, values, strict=True))
    )
    restated = "\n".join(lines)
    steps = (
        f"the options:\n{restated}\n{base.steps}"
        f"\ncompare {result} with each option:\n{compared}\nso option {letter}"
    )
    return Problem(
        statement=f"{base.statement}\n{listed}",
        domain="science",
        topic="multiple_choice",
        level=level,
        answer=letter,
        kind="choice",
        steps=steps,
        final=f"The answer is \\boxed{{{letter}}}.",
        options=options,
        split_text=base.statement,
    )
