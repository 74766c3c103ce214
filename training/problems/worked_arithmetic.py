"""Worked written-arithmetic steps (column addition, subtraction, multiplication, short division).

Every generator that needs arithmetic writes it with these functions, so the tiny char-level
model sees one uniform procedure everywhere: one line per column, right to left, each line
naming its column and showing the digits, the carry or borrow, and the digit written. The
procedures only ever need single-digit facts, which is what a small model can learn; the
multi-digit result is read back off the written digits.
"""

from __future__ import annotations

from fractions import Fraction

COLUMN_NAMES = (
    "ones",
    "tens",
    "hundreds",
    "thousands",
    "ten-thousands",
    "hundred-thousands",
    "millions",
)


def _digits_right_to_left(n: int) -> list[int]:
    return [int(c) for c in reversed(str(n))]


def column_addition(a: int, b: int) -> list[str]:
    """Lines adding two non-negative integers column by column; the last line is "a+b=sum"."""
    assert a >= 0 and b >= 0
    da, db = _digits_right_to_left(a), _digits_right_to_left(b)
    lines = [f"add {a}+{b} by columns:"]
    carry = 0
    for col in range(max(len(da), len(db))):
        x = da[col] if col < len(da) else 0
        y = db[col] if col < len(db) else 0
        total = x + y + carry
        lines.append(
            f"{COLUMN_NAMES[col]}: {x}+{y}+{carry}={total}, write {total % 10} carry {total // 10}"
        )
        carry = total // 10
    if carry:
        lines.append(f"{COLUMN_NAMES[max(len(da), len(db))]}: write {carry}")
    lines.append(f"so {a}+{b}={a + b}")
    return lines


def column_subtraction(a: int, b: int) -> list[str]:
    """Lines subtracting b from a (a >= b >= 0) with borrows; the last line is "a-b=diff"."""
    assert a >= b >= 0
    da, db = _digits_right_to_left(a), _digits_right_to_left(b)
    lines = [f"subtract {a}-{b} by columns:"]
    borrow = 0
    for col in range(len(da)):
        x = da[col]
        y = db[col] if col < len(db) else 0
        diff = x - y - borrow
        name = COLUMN_NAMES[col]
        if diff < 0:
            lines.append(f"{name}: {x}-{y}-{borrow}<0, {x + 10}-{y}-{borrow}={diff + 10} borrow 1")
            borrow = 1
        else:
            lines.append(f"{name}: {x}-{y}-{borrow}={diff} borrow 0")
            borrow = 0
    assert borrow == 0
    lines.append(f"so {a}-{b}={a - b}")
    return lines


def signed_subtraction(a: int, b: int) -> list[str]:
    """a-b for non-negative a, b; when b > a the larger is subtracted and the sign flipped."""
    if a >= b:
        return column_subtraction(a, b)
    lines = [f"{b}>{a}, so {a}-{b}=-({b}-{a})"]
    lines += column_subtraction(b, a)
    lines.append(f"so {a}-{b}={a - b}")
    return lines


def multiply_by_digit(a: int, d: int, *, label: bool = True) -> list[str]:
    """Lines multiplying a non-negative integer by one digit, column by column."""
    assert a >= 0 and 0 <= d <= 9
    da = _digits_right_to_left(a)
    lines = [f"multiply {a}*{d} by columns:"] if label else []
    carry = 0
    for col, x in enumerate(da):
        total = x * d + carry
        lines.append(
            f"{COLUMN_NAMES[col]}: {x}*{d}+{carry}={total}, write {total % 10} carry {total // 10}"
        )
        carry = total // 10
    if carry:
        lines.append(f"{COLUMN_NAMES[len(da)]}: write {carry}")
    lines.append(f"so {a}*{d}={a * d}")
    return lines


def long_multiplication(a: int, b: int) -> list[str]:
    """Lines for a*b (both non-negative): small cases from tables, else partial products.

    b is split into its non-zero digits times powers of ten; each partial product is written
    with `multiply_by_digit`, shifted, and the partials are summed with `column_addition`.
    """
    assert a >= 0 and b >= 0
    if a < 10 and b < 10:
        return [f"{a}*{b}={a * b}"]
    if b < 10:
        return multiply_by_digit(a, b)
    if a < 10:
        # Multiplying by the single digit keeps the procedure one partial product long.
        lines = [f"{a}*{b}={b}*{a}"]
        return lines + multiply_by_digit(b, a)
    digits = _digits_right_to_left(b)
    parts = [(d, 10**place) for place, d in enumerate(digits) if d]
    split = "+".join(str(d * scale) for d, scale in reversed(parts))
    lines = [f"{b}={split}"] if len(parts) > 1 else []
    partials: list[int] = []
    for d, scale in parts:
        lines += [f"{a}*1={a}"] if d == 1 else multiply_by_digit(a, d)
        if scale > 1:
            lines.append(f"so {a}*{d * scale}={a * d * scale}")
        partials.append(a * d * scale)
    running = partials[0]
    for p in partials[1:]:
        lines += column_addition(running, p)
        running += p
    if len(partials) > 1:
        lines.append(f"so {a}*{b}={a * b}")
    return lines


def short_division(n: int, d: int) -> list[str]:
    """Lines for an exact division n/d with a one-digit divisor (or a table fact).

    Small quotients are a single times-table fact; larger ones are short division, bringing
    down one digit at a time with the remainder written each step.
    """
    assert d > 0 and n % d == 0, (n, d)
    q = n // d
    if d >= 10:
        return divide_by_multiples(n, d)
    if q < 10:
        return [f"{n}/{d}={q}"]
    lines = [f"divide {n}/{d} digit by digit:"]
    remainder = 0
    started = False
    for ch in str(n):
        current = remainder * 10 + int(ch)
        digit, remainder = divmod(current, d)
        if not started and digit == 0:
            remainder = current
            continue
        started = True
        lines.append(f"{current}/{d}={digit} r{remainder}")
    lines.append(f"so {n}/{d}={q}")
    return lines


def divide_by_multiples(n: int, d: int) -> list[str]:
    """n/d for a multi-digit divisor and a small quotient: count up the multiples of d."""
    assert d > 0 and n % d == 0 and n // d <= 12, (n, d)
    lines = [f"{n}/{d}: count multiples of {d}"]
    for k in range(1, n // d + 1):
        lines.append(f"{d}*{k}={d * k}")
    lines.append(f"so {n}/{d}={n // d}")
    return lines


def format_decimal(value: Fraction | int) -> str:
    """Exact decimal text for a terminating fraction: 7/2 -> "3.5", 4 -> "4", -1/4 -> "-0.25"."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    value = abs(value)
    for places in range(1, 10):
        scaled = value * 10**places
        if scaled.denominator == 1:
            whole, frac = divmod(scaled.numerator, 10**places)
            return f"{sign}{whole}.{frac:0{places}d}"
    raise ValueError(f"{value} has no short terminating decimal")


def format_fraction(value: Fraction) -> str:
    """ "a/b" in lowest terms, or the integer when the denominator is 1."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"
