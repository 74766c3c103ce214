"""An exact, bounded check of statements that are pure calculations, to confirm or dispute an answer.

A student's question is often nothing but a calculation in words: "what is 3*7?", "Compute
$757 + 18$.", "15% of 240", "solve 2x + 3 = 11", "convert 5 km to m". For those the right answer
can be computed exactly, so a model's answer can be *checked* without an answer key.
`recognise_calculation` accepts a statement only when, after the calculation is read out of it,
every remaining word is one of a small vocabulary of asking words ("what", "is", "calculate",
"please" …): a word problem, a story or anything else is not recognised (the answer stays
unchecked) rather than guessed at. Supported: arithmetic with + - * / and brackets (operators as
`*`, `x`, `×`, `·`, "times", `\\times`, `\\cdot`, `÷`, `\\div`, "divided by", "plus", "minus",
`\\frac{a}{b}`), "p% of n", a linear equation in one letter, and conversions between units of
length, mass, time, volume and speed. Everything is exact (`fractions.Fraction`) and bounded
before any work: at most `MAX_CHARS` characters, `MAX_NUMBERS` numbers of at most
`MAX_DIGITS` digits, brackets at most `MAX_DEPTH` deep; no powers, so no result can blow up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_CHARS = 300
MAX_NUMBERS = 12
MAX_DIGITS = 12
MAX_DEPTH = 6


@dataclass(frozen=True)
class Calculation:
    """A recognised calculation: what kind, how it reads (`shown`) and its exact value.

    `unit` is the unit of the value for a conversion (the answer may state it or not).
    """

    kind: str  # "arithmetic" | "percentage" | "linear_equation" | "unit_conversion"
    shown: str
    value: Fraction
    unit: str | None = None
    as_fraction: bool = False  # written as p/q (the question was in fractions)

    @property
    def value_text(self) -> str:
        return format_value(self.value, as_fraction=self.as_fraction)


def format_value(value: Fraction, *, as_fraction: bool = False) -> str:
    """An integer, else `p/q` when asked for, else a terminating decimal (at most 6 places),
    else `p/q`."""
    if value.denominator == 1:
        return str(value.numerator)
    if as_fraction:
        return f"{value.numerator}/{value.denominator}"
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den == 1:
        text = f"{float(value):.6f}".rstrip("0").rstrip(".")
        if Fraction(text) == value:
            return text
    return f"{value.numerator}/{value.denominator}"


# --- normalising the way people write maths ----------------------------------------------

_LATEX_REPLACEMENTS = (
    ("\\left", ""),
    ("\\right", ""),
    ("\\times", " * "),
    ("\\cdot", " * "),
    ("\\div", " / "),
    ("\\%", "%"),
    ("\\,", " "),
    ("\\!", ""),
    ("\\(", " "),
    ("\\)", " "),
    ("\\[", " "),
    ("\\]", " "),
    ("$", " "),
    ("×", " * "),
    ("·", " * "),
    ("÷", " / "),
    ("−", "-"),
    ("–", "-"),
    ("\u00a0", " "),
)
_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(-?\d+)\s*\}")
_NUMBER = r"\d+(?:\.\d+)?"
_WORD_OPERATORS = (
    (re.compile(r"\bmultiplied by\b"), " * "),
    (re.compile(r"\bdivided by\b"), " / "),
    (re.compile(r"\btimes\b"), " * "),
    (re.compile(r"\bplus\b"), " + "),
    (re.compile(r"\bminus\b"), " - "),
    (re.compile(r"\bper ?cent\b"), "%"),
    # "3 x 7" and "3x7": x between two numbers is a times sign (a linear equation's 3x is not
    # followed by a number).
    (re.compile(rf"(?<=\d)\s*[xX]\s*(?={_NUMBER})"), " * "),
)
_WORD_FORMS = (
    (re.compile(rf"\bsubtract ({_NUMBER}) from ({_NUMBER})"), r"\2 - \1"),
    (re.compile(rf"\btake ({_NUMBER}) (?:away )?from ({_NUMBER})"), r"\2 - \1"),
    (re.compile(rf"\b(?:sum|total) of ({_NUMBER}) and ({_NUMBER})"), r"\1 + \2"),
    (re.compile(rf"\bproduct of ({_NUMBER}) and ({_NUMBER})"), r"\1 * \2"),
    (re.compile(rf"\bdifference (?:between|of) ({_NUMBER}) and ({_NUMBER})"), r"\1 - \2"),
    (re.compile(rf"\badd ({_NUMBER}) (?:and|to) ({_NUMBER})"), r"\1 + \2"),
    (re.compile(rf"\bmultiply ({_NUMBER}) (?:by|and) ({_NUMBER})"), r"\1 * \2"),
    (re.compile(rf"\bdivide ({_NUMBER}) by ({_NUMBER})"), r"\1 / \2"),
)

# Words that ask for a calculation without adding anything to it.
_ASKING_WORDS = frozenset(
    """
    a about am an and answer are as asked at be calculate can check compute could determine do
    does equal equals evaluate exact exactly find for form fraction get give hello help hey hi how
    i in is it its it's lowest many me much my need number of out please pls q question quick
    result show simplest simplify solve tell terms thank thanks that the this to value what
    whats what's will with work would you your
    """.split()
)
_EQUATION_WORDS = _ASKING_WORDS | frozenset(
    "equation for if given when such makes true unknown x solve".split()
)
_CONVERSION_WORDS = _ASKING_WORDS | frozenset(
    "convert change express write into turn rewrite using expressed there".split()
)


def _normalise(statement: str) -> str:
    text = statement
    text = _FRAC_RE.sub(r"(\1/\2)", text)
    for old, new in _LATEX_REPLACEMENTS:
        text = text.replace(old, new)
    text = text.lower()
    for pattern, replacement in _WORD_FORMS:
        text = pattern.sub(replacement, text)
    for pattern, replacement in _WORD_OPERATORS:
        text = pattern.sub(replacement, text)
    text = re.sub(rf"({_NUMBER}),(\d{{3}})\b", r"\1\2", text)  # 1,000 -> 1000
    return text


def _only_asking_words(rest: str, vocabulary: frozenset[str]) -> bool:
    words = re.findall(r"[a-z']+", rest)
    leftovers = re.sub(r"[a-z'\s.,:;!?=()\[\]{}]", "", rest)
    return not leftovers and all(w in vocabulary for w in words)


# --- arithmetic: a small exact parser ------------------------------------------------------

_TOKEN_RE = re.compile(rf"\s*(?:({_NUMBER})|([-+*/()]))")


class _Refused(Exception):
    """The text is not a bounded calculation this module evaluates."""


def _tokens(expression: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    expression = expression.rstrip()
    while position < len(expression):
        match = _TOKEN_RE.match(expression, position)
        if not match:
            raise _Refused(expression[position:])
        tokens.append(match.group(1) or match.group(2))
        position = match.end()
    numbers = [t for t in tokens if t[0].isdigit()]
    if not numbers or len(numbers) > MAX_NUMBERS:
        raise _Refused("number count")
    if any(len(n.replace(".", "")) > MAX_DIGITS for n in numbers):
        raise _Refused("number size")
    return tokens


class _Parser:
    """expression := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*;
    factor := ('-'|'+') factor | number | '(' expression ')'. Exact, depth-bounded."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0
        self.depth = 0

    def parse(self) -> Fraction:
        value = self.expression()
        if self.position != len(self.tokens):
            raise _Refused("trailing tokens")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise _Refused("unexpected end")
        self.position += 1
        return token

    def expression(self) -> Fraction:
        value = self.term()
        while self._peek() in ("+", "-"):
            value = value + self.term() if self._take() == "+" else value - self.term()
        return value

    def term(self) -> Fraction:
        value = self.factor()
        while self._peek() in ("*", "/"):
            operator = self._take()
            right = self.factor()
            if operator == "*":
                value *= right
            elif right == 0:
                raise _Refused("division by zero")
            else:
                value /= right
        return value

    def factor(self) -> Fraction:
        token = self._take()
        if token in ("-", "+"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Refused("too deep")
            value = self.factor()
            self.depth -= 1
            return -value if token == "-" else value
        if token == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Refused("too deep")
            value = self.expression()
            if self._take() != ")":
                raise _Refused("unbalanced")
            self.depth -= 1
            return value
        if token[0].isdigit():
            return Fraction(token)
        raise _Refused(f"unexpected {token!r}")


def evaluate_expression(expression: str) -> Fraction:
    """The exact value of `+ - * /` arithmetic with brackets; ValueError when it is not one
    (or exceeds the bounds)."""
    try:
        return _Parser(_tokens(expression)).parse()
    except _Refused as refusal:
        raise ValueError(f"not a bounded calculation: {refusal}") from None


_EXPRESSION_RE = re.compile(rf"[-+(]*\s*{_NUMBER}(?:\s*[-+*/()]+\s*\(?\s*-?\s*{_NUMBER}\s*\)*)+")


def _arithmetic(text: str) -> Calculation | None:
    candidates = list(_EXPRESSION_RE.finditer(text))
    if len(candidates) != 1:
        return None
    match = candidates[0]
    expression = match.group().strip()
    rest = text[: match.start()] + " " + text[match.end() :]
    if not _only_asking_words(rest, _ASKING_WORDS):
        return None
    try:
        value = evaluate_expression(expression)
    except ValueError:
        return None
    shown = re.sub(r"\s*([-+*/])\s*", r" \1 ", expression).replace("( ", "(").replace(" )", ")")
    shown = re.sub(r"\(- ", "(-", shown)
    # Whole numbers divided make fractions ("3/4 + 1/8 = 7/8"); decimals stay decimals.
    fraction = "/" in expression and "." not in expression
    result = format_value(value, as_fraction=fraction)
    return Calculation("arithmetic", f"{shown.strip()} = {result}", value, as_fraction=fraction)


_PERCENT_RE = re.compile(rf"({_NUMBER})\s*%\s*of\s*({_NUMBER})")


def _percentage(text: str) -> Calculation | None:
    match = _PERCENT_RE.search(text)
    if not match or len(_PERCENT_RE.findall(text)) != 1:
        return None
    rest = text[: match.start()] + " " + text[match.end() :]
    if not _only_asking_words(rest, _ASKING_WORDS):
        return None
    p, n = match.group(1), match.group(2)
    if len(p) > MAX_DIGITS or len(n) > MAX_DIGITS:
        return None
    value = Fraction(p) * Fraction(n) / 100
    return Calculation("percentage", f"{p}% of {n} = {format_value(value)}", value)


# --- linear equations ---------------------------------------------------------------------

_SIDE_TERM_RE = re.compile(rf"([-+])?\s*({_NUMBER})?\s*\*?\s*(x)?")


def _linear_side(side: str) -> tuple[Fraction, Fraction]:
    """(coefficient of x, constant) of a sum of terms `3x`, `-x`, `7`, `x/2`, `2*x`."""
    side = side.replace(" ", "").strip(".")
    side = re.sub(rf"x/({_NUMBER})", r"(1/\1)x", side)
    if not side or len(side) > 80:
        raise _Refused("side")
    coefficient = constant = Fraction(0)
    terms = re.findall(r"[-+]?[^-+]+", side)
    if len(terms) > MAX_NUMBERS:
        raise _Refused("terms")
    for term in terms:
        sign = -1 if term.startswith("-") else 1
        body = term.lstrip("+-")
        frac = re.fullmatch(r"\((\d+)/(\d+)\)x", body)
        if frac:
            coefficient += sign * Fraction(int(frac.group(1)), int(frac.group(2)))
            continue
        match = re.fullmatch(rf"({_NUMBER})?\*?(x)?", body)
        if not match or (match.group(1) is None and match.group(2) is None):
            raise _Refused(f"term {term!r}")
        number = Fraction(match.group(1)) if match.group(1) else Fraction(1)
        if match.group(2):
            coefficient += sign * number
        else:
            constant += sign * number
    return coefficient, constant


_EQUATION_RE = re.compile(r"([-+*/().\d\sx]+)=([-+*/().\d\sx]+)")


def _linear_equation(text: str) -> Calculation | None:
    if text.count("=") != 1 or "x" not in text:
        return None
    text = re.sub(r"\bsolve for x\s*:?", " solve ", text)
    match = _EQUATION_RE.search(text)
    if not match or "x" not in match.group():
        return None
    rest = text[: match.start()] + " " + text[match.end() :]
    if not _only_asking_words(rest, _EQUATION_WORDS):
        return None
    try:
        a, b = _linear_side(match.group(1))
        c, d = _linear_side(match.group(2))
    except _Refused:
        return None
    if a == c:
        return None
    value = (d - b) / (a - c)
    equation = re.sub(r"\s+", " ", match.group().strip()).rstrip(".")
    return Calculation("linear_equation", f"{equation} gives x = {format_value(value)}", value)


# --- unit conversions ---------------------------------------------------------------------

# Each unit as an exact multiple of its quantity's base unit (m, g, s, L, m/s).
_UNITS: dict[str, tuple[str, Fraction]] = {}


def _add_units(quantity: str, factor: Fraction, *names: str) -> None:
    for name in names:
        _UNITS[name] = (quantity, factor)


_add_units("length", Fraction(1000), "km", "kilometre", "kilometres", "kilometer", "kilometers")
_add_units("length", Fraction(1), "m", "metre", "metres", "meter", "meters")
_add_units("length", Fraction(1, 100), "cm", "centimetre", "centimetres", "centimeter")
_add_units("length", Fraction(1, 100), "centimeters")
_add_units("length", Fraction(1, 1000), "mm", "millimetre", "millimetres", "millimeters")
_add_units("mass", Fraction(1000), "kg", "kilogram", "kilograms", "kilos")
_add_units("mass", Fraction(1), "g", "gram", "grams")
_add_units("mass", Fraction(1, 1000), "mg", "milligram", "milligrams")
_add_units("time", Fraction(3600), "h", "hr", "hrs", "hour", "hours")
_add_units("time", Fraction(60), "min", "mins", "minute", "minutes")
_add_units("time", Fraction(1), "s", "sec", "secs", "second", "seconds")
_add_units("volume", Fraction(1), "l", "litre", "litres", "liter", "liters")
_add_units("volume", Fraction(1, 1000), "ml", "millilitre", "millilitres", "milliliters")
_add_units("speed", Fraction(1), "m/s", "metres per second", "meters per second")
_add_units("speed", Fraction(5, 18), "km/h", "kilometres per hour", "kilometers per hour", "kph")
_UNIT_NAMES = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_CONVERT_RES = (
    re.compile(rf"({_NUMBER})\s*({_UNIT_NAMES})\s+(?:to|into|in)\s+({_UNIT_NAMES})(?![\w/])"),
    re.compile(
        rf"how many\s+({_UNIT_NAMES})\s+(?:are\s+)?(?:in|is|are|make)\s+({_NUMBER})\s*"
        rf"({_UNIT_NAMES})(?![\w/])"
    ),
)


def _unit_conversion(text: str) -> Calculation | None:
    for index, pattern in enumerate(_CONVERT_RES):
        match = pattern.search(text)
        if not match:
            continue
        if index == 0:
            number, source, target = match.group(1), match.group(2), match.group(3)
        else:
            target, number, source = match.group(1), match.group(2), match.group(3)
        rest = text[: match.start()] + " " + text[match.end() :]
        if not _only_asking_words(rest, _CONVERSION_WORDS) or len(number) > MAX_DIGITS:
            return None
        (q1, f1), (q2, f2) = _UNITS[source], _UNITS[target]
        if q1 != q2:
            return None
        value = Fraction(number) * f1 / f2
        return Calculation(
            "unit_conversion",
            f"{number} {source} = {format_value(value)} {target}",
            value,
            unit=target,
        )
    return None


def recognise_calculation(statement: str) -> Calculation | None:
    """The calculation a statement asks for and its exact value, or None when the statement is
    not (only) a bounded calculation of a supported kind."""
    if not statement or len(statement) > MAX_CHARS:
        return None
    text = _normalise(statement).strip()
    for recognise in (_unit_conversion, _percentage, _linear_equation, _arithmetic):
        found = recognise(text)
        if found is not None:
            return found
    return None
