"""Math problem generators: arithmetic, order of operations, fractions, percentages, equations.

Each generator is `generate(level, rng) -> Problem` for levels 1 (easy) to 4 (hard) and writes
its worked solution with the shared written-arithmetic procedures, so a level-4 problem is a
longer chain of the same single-digit steps a level-1 problem teaches. Statements and solutions
are kept short because ring-tiny reads one character per token within 1024 positions.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

from training.problems.base import Problem
from training.problems.worked_arithmetic import (
    column_addition,
    column_subtraction,
    format_fraction,
    long_multiplication,
    multiply_by_digit,
    short_division,
    signed_subtraction,
)


def _problem(statement: str, topic: str, level: int, answer: str, steps: list[str]) -> Problem:
    return Problem(
        statement=statement,
        domain="math",
        topic=topic,
        level=level,
        answer=answer,
        kind="expression",
        steps="\n".join(steps),
        final=f"The answer is \\boxed{{{answer}}}.",
    )


def _digits(rng: random.Random, n: int) -> int:
    """A random integer with exactly n digits."""
    return rng.randint(10 ** (n - 1), 10**n - 1)


def addition(level: int, rng: random.Random) -> Problem:
    sizes = {1: (2, 2), 2: (3, 3), 3: (4, rng.choice((3, 4))), 4: (5, rng.choice((4, 5)))}
    a, b = (_digits(rng, n) for n in sizes[level])
    if rng.random() < 0.5:
        a, b = b, a
    return _problem(f"Compute {a} + {b}.", "addition", level, str(a + b), column_addition(a, b))


def subtraction(level: int, rng: random.Random) -> Problem:
    sizes = {1: (2, 2), 2: (3, rng.choice((2, 3))), 3: (4, rng.choice((3, 4))), 4: (4, 4)}
    a, b = (_digits(rng, n) for n in sizes[level])
    if level < 4 and b > a:
        a, b = b, a
    steps = signed_subtraction(a, b) if level == 4 else column_subtraction(a, b)
    return _problem(f"Compute {a} - {b}.", "subtraction", level, str(a - b), steps)


def multiplication(level: int, rng: random.Random) -> Problem:
    sizes = {1: (2, 1), 2: (3, 1), 3: (2, 2), 4: (3, 2)}
    na, nb = sizes[level]
    a, b = _digits(rng, na), _digits(rng, nb)
    if nb == 1:
        b = rng.randint(2, 9)
    steps = long_multiplication(a, b)
    return _problem(f"Compute {a} * {b}.", "multiplication", level, str(a * b), steps)


# --- order of operations -------------------------------------------------------------------

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def _number_text(value: int | str, after_operator: bool) -> str:
    # A negative number right after an operator is bracketed: "4*(-4)", never "4*-4".
    if isinstance(value, int) and value < 0 and after_operator:
        return f"({value})"
    return str(value)


def _tokens_text(tokens: list[int | str]) -> str:
    parts = []
    for i, t in enumerate(tokens):
        previous = tokens[i - 1] if i else None
        parts.append(_number_text(t, previous in _PRECEDENCE))
    return "".join(parts)


def _operation_lines(x: int, op: str, y: int) -> list[str]:
    """One operation: a table fact for single digits, written arithmetic for larger
    non-negative numbers, and a signed fact when negatives are involved."""
    value = _apply(x, op, y)
    if x >= 0 and y >= 0:
        if op == "+" and max(x, y) >= 10:
            return column_addition(x, y)
        if op == "-" and x >= y and x >= 10:
            return column_subtraction(x, y)
        if op == "*" and max(x, y) >= 10:
            return long_multiplication(x, y)
        if op == "/" and (y < 10 or value <= 12):
            return short_division(x, y)
    return [f"{_tokens_text([x, op, y])}={value}"]


def _apply(x: int, op: str, y: int) -> int:
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    assert y != 0 and x % y == 0, (x, y)
    return x // y


Operation = tuple[int, str, int]


def _reduce_once(tokens: list[int | str]) -> tuple[list[int | str], Operation | None]:
    """Perform the next operation by the order of operations; return the new tokens and the
    operation done (None when only brackets around a single number were dropped)."""
    # Innermost parentheses first: the last "(" before the first ")".
    if ")" in tokens:
        close = tokens.index(")")
        open_ = max(i for i in range(close) if tokens[i] == "(")
        inner = tokens[open_ + 1 : close]
        if len(inner) == 1:
            return tokens[:open_] + inner + tokens[close + 1 :], None
        new_inner, fact = _reduce_once(inner)
        return tokens[: open_ + 1] + new_inner + tokens[close:], fact
    best, best_rank = None, 0  # the leftmost operator of the highest precedence
    for i, t in enumerate(tokens):
        if isinstance(t, str) and _PRECEDENCE[t] > best_rank:
            best, best_rank = i, _PRECEDENCE[t]
    assert best is not None
    x, op, y = tokens[best - 1], tokens[best], tokens[best + 1]
    assert isinstance(x, int) and isinstance(op, str) and isinstance(y, int)
    value = _apply(x, op, y)
    return tokens[: best - 1] + [value] + tokens[best + 2 :], (x, op, y)


def _drop_single_brackets(tokens: list[int | str]) -> list[int | str]:
    """(19) -> 19: brackets around one number say nothing once their inside is done."""
    out: list[int | str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] == "(" and i + 2 < len(tokens) and tokens[i + 2] == ")":
            out.append(tokens[i + 1])
            i += 3
        else:
            out.append(tokens[i])
            i += 1
    return out


def evaluate_with_steps(tokens: list[int | str]) -> tuple[int, list[str]]:
    """Evaluate a token list step by step: each line is one operation and the rewritten rest."""
    lines: list[str] = []
    while len(tokens) > 1:
        tokens, operation = _reduce_once(tokens)
        if operation is None:
            continue
        tokens = _drop_single_brackets(tokens)
        lines += _operation_lines(*operation)
        if len(tokens) > 1:
            lines.append(f"now {_tokens_text(tokens)}")
    value = tokens[0]
    assert isinstance(value, int)
    return value, lines


def _order_tokens(level: int, rng: random.Random) -> list[int | str]:
    def d() -> int:
        return rng.randint(1, 9)

    if level == 1:
        a, b, c = d(), d(), d()
        shapes: list[list[int | str]] = [[a, "+", b, "*", c], [a, "*", b, "+", c]]
        if a * b > c:
            shapes.append([a, "*", b, "-", c])
        return rng.choice(shapes)
    if level == 2:
        a, b, c, e = d(), d(), d(), d()
        shapes = [["(", a, "+", b, ")", "*", c], [a, "+", b, "*", c, "-", e]]
        if b > c:
            shapes.append([a, "*", "(", b, "-", c, ")"])
        return rng.choice(shapes)
    if level == 3:
        a, b, c, e = d(), d(), d(), d()
        f = rng.randint(2, 9)
        shapes = [
            [a, "*", b, "+", c, "*", e],
            [a, "*", b, "-", c, "*", e],
            ["(", a, "+", b, ")", "*", "(", c, "+", e, ")"],
            [a * f, "/", f, "+", b, "*", c],
        ]
        return rng.choice(shapes)
    a, b, c, e, g = (rng.randint(2, 9) for _ in range(5))
    f = rng.randint(2, 9)
    shapes = [
        [a, "*", "(", b, "+", c, ")", "-", e, "*", g],
        ["(", a, "-", b, ")", "*", c, "+", e * f, "/", f],
        [a, "+", b, "*", "(", c, "-", e, ")", "-", g],
    ]
    return rng.choice(shapes)


def order_of_operations(level: int, rng: random.Random) -> Problem:
    tokens = _order_tokens(level, rng)
    shown = " ".join(str(t) for t in tokens).replace("( ", "(").replace(" )", ")")
    value, steps = evaluate_with_steps(list(tokens))
    steps = ["brackets first, then * and /, then + and - from the left"] + steps
    return _problem(f"Compute {shown}.", "order_of_operations", level, str(value), steps)


# --- fractions -----------------------------------------------------------------------------


def _simplify_lines(num: int, den: int) -> list[str]:
    g = math.gcd(num, den)
    if g == 1:
        return [f"gcd({abs(num)},{den})=1, already simplest"]
    return [f"gcd({abs(num)},{den})={g}, {num}/{den}={num // g}/{den // g}"]


def fractions(level: int, rng: random.Random) -> Problem:
    if level == 1:
        den = rng.randint(3, 12)
        while True:
            a, b = rng.randint(1, den - 1), rng.randint(1, den - 1)
            if a + b < den and math.gcd(a + b, den) == 1:
                break
        statement = f"Compute {a}/{den} + {b}/{den}."
        steps = [f"same denominator {den}, add numerators: {a}+{b}={a + b}"]
        result = Fraction(a + b, den)
        steps.append(f"so {a + b}/{den}")
        return _problem(statement, "fractions", level, format_fraction(result), steps)
    a, b = rng.randint(1, 9), rng.randint(2, 9)
    c, d = rng.randint(1, 9), rng.randint(2, 9)
    while b == d or math.gcd(a, b) != 1 or math.gcd(c, d) != 1:
        a, b, c, d = rng.randint(1, 9), rng.randint(2, 9), rng.randint(1, 9), rng.randint(2, 9)
    if level in (2, 4):
        op = "+" if level == 2 else "-"
        lcm = b * d // math.gcd(b, d)
        na, nc = a * (lcm // b), c * (lcm // d)
        total = na + nc if op == "+" else na - nc
        steps = [
            f"common denominator lcm({b},{d})={lcm}",
            f"{a}/{b}={na}/{lcm} and {c}/{d}={nc}/{lcm}",
        ]
        # The numerators are added (or subtracted) by columns like every other multi-digit
        # sum: written in one line, a small model learns to guess them (0/12 held out).
        steps += column_addition(na, nc) if op == "+" else signed_subtraction(na, nc)
        steps.append(f"so {total}/{lcm}")
        result = Fraction(total, lcm)
        steps += _simplify_lines(total, lcm)
    else:
        op = "*"
        num, den = a * c, b * d
        steps = [f"multiply across: {a}*{c}={num} and {b}*{d}={den}, so {num}/{den}"]
        steps += _simplify_lines(num, den)
        result = Fraction(num, den)
    statement = f"Compute {a}/{b} {op} {c}/{d}."
    return _problem(statement, "fractions", level, format_fraction(result), steps)


# --- percentages ---------------------------------------------------------------------------


def percentages(level: int, rng: random.Random) -> Problem:
    if level in (1, 2):
        p = rng.randrange(10, 100, 10) if level == 1 else rng.randint(11, 99)
        k = rng.randint(1, 9)
        n = 100 * k
        steps = [f"{p}% of {n} = {n}/100*{p}", f"{n}/100={k}"] + long_multiplication(p, k)
        statement = f"What is {p}% of {n}?"
        return _problem(statement, "percentages", level, str(k * p), steps)
    if level == 3:
        # n a multiple of 20 and p a multiple of 5 keep the answer a whole number.
        n = 20 * rng.randint(1, 9)
        p = 5 * rng.randint(1, 19)
        part = n * p // 100
        steps = [f"{p}% of {n} = {n}*{p}/100"] + long_multiplication(n, p)
        steps.append(f"{n * p}/100={part}")
        statement = f"What is {p}% of {n}?"
        return _problem(statement, "percentages", level, str(part), steps)
    k, p = rng.randint(2, 9), rng.randint(11, 99)
    n = 100 * k
    part = k * p
    increase = rng.random() < 0.5
    change = "increased" if increase else "decreased"
    steps = [f"{p}% of {n} = {n}/100*{p}", f"{n}/100={k}"] + long_multiplication(p, k)
    if increase:
        steps += column_addition(n, part)
        result = n + part
    else:
        steps += column_subtraction(n, part)
        result = n - part
    statement = f"A price of {n} is {change} by {p}%. What is the new price?"
    return _problem(statement, "percentages", level, str(result), steps)


# --- linear equations ----------------------------------------------------------------------


def _signed(value: int) -> str:
    return f"+{value}" if value >= 0 else str(value)


def linear_equations(level: int, rng: random.Random) -> Problem:
    if level == 1:
        a = rng.randint(1, 50)
        x = rng.randint(a + 1, a + 50)
        if rng.random() < 0.5:
            statement = f"Solve for x: x + {a} = {x + a}."
            steps = [f"subtract {a} from both sides: x={x + a}-{a}"]
            steps += _operation_lines(x + a, "-", a)
        else:
            statement = f"Solve for x: x - {a} = {x - a}."
            steps = [f"add {a} to both sides: x={x - a}+{a}"]
            steps += _operation_lines(x - a, "+", a)
        return _problem(statement, "linear_equations", level, str(x), steps)
    if level == 2:
        a, x = rng.randint(2, 9), rng.randint(2, 12)
        if rng.random() < 0.5:
            statement = f"Solve for x: {a}x = {a * x}."
            steps = [f"divide both sides by {a}: x={a * x}/{a}"] + short_division(a * x, a)
        else:
            quotient = x
            x = quotient * a
            statement = f"Solve for x: x/{a} = {quotient}."
            steps = [f"multiply both sides by {a}: x={quotient}*{a}"]
            steps += long_multiplication(quotient, a)
        return _problem(statement, "linear_equations", level, str(x), steps)
    if level == 3:
        a, x, b = rng.randint(2, 9), rng.randint(1, 12), rng.randint(1, 30)
        if rng.random() < 0.5:
            c = a * x + b
            statement = f"Solve for x: {a}x + {b} = {c}."
            steps = [f"subtract {b} from both sides: {a}x={c}-{b}"]
            steps += _operation_lines(c, "-", b)
        else:
            c = a * x - b
            statement = f"Solve for x: {a}x - {b} = {c}."
            steps = [f"add {b} to both sides: {a}x={c}+{b}"]
            steps += _operation_lines(c, "+", b)
        steps += [f"divide by {a}: x={a * x}/{a}"] + short_division(a * x, a)
        return _problem(statement, "linear_equations", level, str(x), steps)
    while True:
        a, c = rng.randint(2, 9), rng.randint(2, 9)
        x = rng.randint(-9, 12)
        b = rng.randint(-20, 20)
        if a != c and b != 0:
            break
    d = a * x + b - c * x
    right = f"{c}x" if d == 0 else f"{c}x {'+' if d > 0 else '-'} {abs(d)}"
    statement = f"Solve for x: {a}x {'+' if b > 0 else '-'} {abs(b)} = {right}."
    k = a - c
    rhs = d - b
    steps = [
        f"move x terms left and numbers right: {a}x-{c}x={d}{_signed(-b)}",
        f"{a}-{c}={k} and {d}{_signed(-b)}={rhs}, so {k}x={rhs}",
    ]
    if k == 1:
        steps.append(f"x={rhs}")
    else:
        sign = "-" if (rhs < 0) != (k < 0) else ""
        quotient = abs(rhs) // abs(k)
        steps.append(f"x={rhs}/{k}, {abs(rhs)}/{abs(k)}={quotient}, so x={sign}{quotient}")
    return _problem(statement, "linear_equations", level, str(x), steps)


# --- word problems -------------------------------------------------------------------------

_NAMES = (
    "Ann Ben Cara Dan Eva Finn Gia Hugo Ivy Jack Kim Leo Mia Noah Omar Pia Raj Sara Tom Uma "
    "Vera Will Zoe"
).split()
_ITEMS = "apples pens cards stickers books marbles stamps shells coins beads".split()


def word_problems(level: int, rng: random.Random) -> Problem:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    if level == 1:
        a, b = _digits(rng, 2), _digits(rng, 2)
        statement = f"{name} has {a} {item} and gets {b} more. How many {item} now?"
        steps = column_addition(a, b)
        result = a + b
    elif level == 2:
        a = _digits(rng, 3)
        b = rng.randint(10, a - 1)
        statement = f"{name} has {a} {item} and gives away {b}. How many {item} are left?"
        steps = column_subtraction(a, b)
        result = a - b
    elif level == 3:
        a, k = rng.randint(12, 99), rng.randint(2, 9)
        statement = f"A box holds {a} {item}. How many {item} are in {k} boxes?"
        steps = multiply_by_digit(a, k)
        result = a * k
    else:
        a, k = rng.randint(11, 50), rng.randint(2, 9)
        b = rng.randint(5, a * k - 1)
        statement = (
            f"{name} buys {k} packs of {a} {item} and gives away {b}. How many {item} are left?"
        )
        steps = [f"first the total: {a}*{k}"] + long_multiplication(a, k)
        steps += ["then take away:"] + column_subtraction(a * k, b)
        result = a * k - b
    return _problem(statement, "word_problems", level, str(result), steps)
