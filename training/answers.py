"""Final-answer extraction and rule-based verification: the reward of C3PO and the grader of
the site.

`extract_final_answer` takes the last `\\boxed{…}` after `</think>` (an answer that never closed
its reasoning is unfinished and has none). `verify` compares it with a reference: expressions
through math-verify (gold first, then prediction: its comparison is not symmetric), numbers with
a tolerance and an optional unit (stripped, or converted when the prediction states another unit
of the same quantity), and multiple-choice letters. Plain numbers and fractions take an exact
fast path before math-verify, which costs milliseconds per call. Hostile inputs (huge, deeply
nested, giant exponents or factorials) are refused before parsing; math-verify's own timeout is a
signal that only works in a main thread, so the site never calls the symbolic path in its own
threads: with `symbolic=False`, `verify` and `check_reference_parses` settle what they can cheaply
and raise `SymbolicCheckNeeded` for the rest, which `training.answer_pool` then runs in a separate
process under a hard wall-clock limit.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
import unicodedata
from fractions import Fraction
from typing import TYPE_CHECKING

from training.problems.base import CHOICE_LETTERS, AnswerKind
from training.units import convert, normalise_unit, unit_mismatch

if TYPE_CHECKING:
    from training.problems.base import Problem

logger = logging.getLogger(__name__)

THINK_END = "</think>"
BOXED = "\\boxed"

# Answers longer than this are refused outright: no reference in this project comes close, and
# a long string is the cheapest way to make a symbolic parser hang.
MAX_ANSWER_CHARS = 300
MAX_BRACE_DEPTH = 12
# math-verify's timeouts are whole seconds of signal.alarm (main thread only).
MATH_VERIFY_TIMEOUT_S = 2
DEFAULT_NUMBER_TOLERANCE = 1e-6
DEFAULT_ABS_TOLERANCE = 1e-9


# --- extraction ----------------------------------------------------------------------------


def _boxed_contents(text: str) -> list[str]:
    """Contents of every complete `\\boxed{…}` in text, in order (balanced braces)."""
    found = []
    start = text.find(BOXED)
    while start >= 0:
        i = start + len(BOXED)
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                if text[j] == "{" and (j == 0 or text[j - 1] != "\\"):
                    depth += 1
                elif text[j] == "}" and text[j - 1] != "\\":
                    depth -= 1
                    if depth == 0:
                        found.append(text[i + 1 : j])
                        break
        start = text.find(BOXED, start + len(BOXED))
    return found


def extract_final_answer(completion: str) -> str | None:
    """The last complete `\\boxed{…}` after the last `</think>`, stripped; None when the
    reasoning never ended (no `</think>`) or no complete box follows it."""
    end = completion.rfind(THINK_END)
    if end < 0:
        return None
    boxes = _boxed_contents(completion[end + len(THINK_END) :])
    if not boxes:
        return None
    return boxes[-1].strip()


# --- fast exact parsing of numbers ---------------------------------------------------------

_LATEX_NOISE = (
    ("\\left", ""),
    ("\\right", ""),
    ("\\!", ""),
    ("\\,", ""),
    ("\\;", ""),
    ("\\:", ""),
    ("\\ ", " "),
    ("~", " "),
    ("{,}", ""),
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
    ("\\cdot", "*"),
    ("\\times", "*"),
    ("\\%", "%"),
    ("−", "-"),
    ("²", "^2"),
    ("³", "^3"),
)
# A phone keyboard's fractions: "1¾" and "1 ¾" are the mixed number 1 3/4, "½" is 1/2 (NFKC writes
# each as digits around the fraction slash U+2044).
_VULGAR_FRACTIONS = {
    char: " " + unicodedata.normalize("NFKC", char).replace("\u2044", "/")
    for char in "½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅐⅛⅜⅝⅞⅑⅒"
}
_VULGAR_FRACTIONS["\u2044"] = "/"
_VULGAR_FRACTION_RE = re.compile("[" + "".join(_VULGAR_FRACTIONS) + "]")
_WRAPPER_RE = re.compile(r"\\(?:text|mathrm|textrm|mbox|operatorname)\s*\{([^{}]*)\}")
_FRAC_RE = re.compile(r"^([-+]?)\\frac\s*\{\s*([-+]?\d+)\s*\}\s*\{\s*([-+]?\d+)\s*\}")
_FRAC_SHORT_RE = re.compile(r"^([-+]?)\\frac(\d)(\d)")
# A mixed number: "1 3/4" and "1\\frac{3}{4}" are 7/4 (a whole part, a space, a proper fraction).
_MIXED_RE = re.compile(
    r"^([-+]?)(\d+)(?:\s+(\d+)\s*/\s*(\d+)(?![\d.])|\s*\\frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\})"
)
_SLASH_RE = re.compile(r"^([-+]?\d+)\s*/\s*(\d+)(?![\d.])")
_DECIMAL_RE = re.compile(r"^[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|^[-+]?\.\d+")
_SCIENTIFIC_RE = re.compile(
    r"^(?:[eE]([-+]?\d+)|\s*[*xX]\s*10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?|\s*[*xX]\s*10(?![\d.]))"
)
_ASSIGNMENT_RE = re.compile(r"^\s*[a-zA-Z]\s*=\s*")


def _clean(text: str) -> str:
    text = text.strip().strip("$").strip()
    for old, new in _LATEX_NOISE:
        text = text.replace(old, new)
    text = _VULGAR_FRACTION_RE.sub(lambda match: _VULGAR_FRACTIONS[match.group()], text)
    # \text{m/s} -> m/s; repeated because wrappers may nest (\text{\mathrm{m}}).
    for _ in range(3):
        text = _WRAPPER_RE.sub(r"\1", text)
    text = text.strip()
    while text.startswith("{") and text.endswith("}") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for c in text:
        depth += (c == "{") - (c == "}")
        if depth < 0:
            return False
    return depth == 0


def _split_number(text: str) -> tuple[Fraction, str] | None:
    """Exact value of a leading number (integer, decimal, a/b, \\frac{a}{b}, a mixed number,
    scientific notation) and the rest of the text, or None when the text does not start with one."""
    text = text.strip()
    match = _MIXED_RE.match(text)
    if match:
        sign, whole = match.group(1), int(match.group(2))
        num, den = int(match.group(3) or match.group(5)), int(match.group(4) or match.group(6))
        if 0 < num < den:
            value = (whole + Fraction(num, den)) * (-1 if sign == "-" else 1)
            return value, text[match.end() :]
    match = _FRAC_RE.match(text) or _FRAC_SHORT_RE.match(text)
    if match:
        sign, num, den = match.groups()
        if int(den) == 0:
            return None
        value = Fraction(int(num), int(den)) * (-1 if sign == "-" else 1)
        return value, text[match.end() :]
    match = _SLASH_RE.match(text)
    if match:
        num, den = match.groups()
        if int(den) == 0:
            return None
        return Fraction(int(num), int(den)), text[match.end() :]
    match = _DECIMAL_RE.match(text)
    if not match or not any(c.isdigit() for c in match.group()):
        return None
    value = Fraction(match.group().replace(",", ""))
    rest = text[match.end() :]
    sci = _SCIENTIFIC_RE.match(rest)
    if sci:
        exponent = int(sci.group(1) or sci.group(2) or 1)
        if abs(exponent) > 300:
            return None
        value *= Fraction(10) ** exponent
        rest = rest[sci.end() :]
    return value, rest


def parse_exact_number(text: str) -> Fraction | None:
    """The exact value of text when it is nothing but a number (see `_split_number`)."""
    text = _ASSIGNMENT_RE.sub("", _clean(text))
    split = _split_number(text)
    if split is None or split[1].strip():
        return None
    return split[0]


# --- guards and math-verify ----------------------------------------------------------------


class SymbolicCheckNeeded(Exception):  # noqa: N818 - a signal to the caller, not a failure
    """Raised with `symbolic=False` when only math-verify (sympy) can settle the answer."""


# Three-digit exponents, a factorial of a number of four digits or more, and factorials applied
# to a factorial or to a bracket holding a power or a big number ("(10!)!", "(9!+30000)!"): each
# is a number too large to compute in a request. Stacked powers are `_stacked_power`'s.
_HUGE_EXPONENT_RE = re.compile(r"(?:\^|\*\*)\s*\{?\s*[-+]?\s*\d{3,}|\d{4,}\s*!|!\s*[)}\]]*\s*!")
_CLOSING = {")": "(", "}": "{", "]": "["}
_OPENING = {opening: closing for closing, opening in _CLOSING.items()}
_LETTER_RE = re.compile(r"[A-Za-z]")
_POWER_RE = re.compile(r"\^|\*\*")


def _stacked_power(text: str) -> bool:
    """A power whose exponent holds a power ("9^9^9", "2**3**4", "e^{e^{e}}", "9^(9^9)"), or a
    power of a bracket of numbers alone that holds a power ("((9^99)^99)^99"): a tower.

    It replaced a pattern that took any two powers for a tower, so "x^2+y^2" was "too large or
    nested to verify safely": a teacher's key flagged (kept out of training) and a student's
    right answer wrong. Only towers are refused; other expressions go to the checker."""
    for power in _POWER_RE.finditer(text):
        start = power.start() - 1
        while start >= 0 and text[start].isspace():
            start -= 1
        if start >= 0 and text[start] in _CLOSING:
            group = _group_before(text, start)
            if _POWER_RE.search(group) and not _LETTER_RE.search(group):
                return True
        index = power.end()
        while index < len(text) and text[index].isspace():
            index += 1
        if index < len(text) and text[index] in _OPENING:
            end = _group_end(text, index)
            if _POWER_RE.search(text[index + 1 : end]):
                return True
            index = end + 1
        else:
            if index < len(text) and text[index] in "+-":
                index += 1
            while index < len(text) and (text[index].isalnum() or text[index] in ".\\"):
                index += 1
        while index < len(text) and text[index].isspace():
            index += 1
        if _POWER_RE.match(text, index):
            return True
    return False


def _group_before(text: str, end: int) -> str:
    """The content of the bracket group that closes at `end`."""
    opening, depth, start = _CLOSING[text[end]], 0, end
    while start >= 0:
        depth += (text[start] == text[end]) - (text[start] == opening)
        if depth == 0:
            break
        start -= 1
    return text[start + 1 : end]


def _group_end(text: str, start: int) -> int:
    """Where the bracket group that opens at `start` closes (the text's end if it never does)."""
    closing, depth, end = _OPENING[text[start]], 0, start
    while end < len(text):
        depth += (text[end] == text[start]) - (text[end] == closing)
        if depth == 0:
            break
        end += 1
    return end


def _factorial_of_big_group(text: str) -> bool:
    """A bracket group followed by "!" whose content holds a factorial, a number of four digits or
    more, or a power of numbers alone: its value could have millions of digits."""
    for index, char in enumerate(text):
        if char != "!" or index == 0:
            continue
        end = index - 1
        while end >= 0 and text[end].isspace():
            end -= 1
        if end < 0 or text[end] not in _CLOSING:
            continue
        group = _group_before(text, end)
        power = "^" in group or "**" in group
        if "!" in group or re.search(r"\d{4,}", group) or (power and not _LETTER_RE.search(group)):
            return True
    return False


def _looks_expensive(text: str) -> bool:
    """Inputs that could make a symbolic parser or simplifier run for a long time. A cheap first
    guard only: the hard limit is the separate process of `training.answer_pool`."""
    if len(text) > MAX_ANSWER_CHARS:
        return True
    depth = deepest = 0
    for c in text:
        if c in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "})]":
            depth -= 1
    return (
        deepest > MAX_BRACE_DEPTH
        or bool(_HUGE_EXPONENT_RE.search(text))
        or _stacked_power(text)
        or _factorial_of_big_group(text)
    )


def _timeout_seconds() -> int | None:
    # math-verify's timeout is signal.alarm, which only works in the main thread; elsewhere
    # (Celery thread pools, Channels' sync_to_async) the input guards above are the protection.
    return MATH_VERIFY_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str, timeout: int | None) -> tuple:
    """math-verify's parse of a boxed expression; cached because one reference is checked
    against every sampled response of its group."""
    from math_verify import parse

    return tuple(parse(f"\\boxed{{{text}}}", parsing_timeout=timeout))


def _math_verify(reference: str, prediction: str) -> bool:
    from math_verify import verify as mv_verify

    timeout = _timeout_seconds()
    gold = list(_parse_cached(reference, timeout))
    pred = list(_parse_cached(prediction, timeout))
    if not gold or not pred:
        return False
    return bool(mv_verify(gold, pred, timeout_seconds=timeout))


def _math_verify_number(text: str) -> float | None:
    """A numeric value for what the fast path could not read (\\sqrt{2}, 2\\pi, 3^2)."""
    import sympy

    parsed = _parse_cached(text, _timeout_seconds())
    for item in parsed:
        if isinstance(item, sympy.Basic) and item.is_number:
            try:
                value = complex(item.evalf())
            except (TypeError, ValueError):
                continue
            if value.imag == 0 and math.isfinite(value.real):
                return value.real
    return None


# --- verification --------------------------------------------------------------------------

_CHOICE_RE = re.compile(r"^\(?\s*([A-Za-z])\s*(?:\)|\.|:|$|\s)")


def _choice_letter(text: str) -> str | None:
    text = _clean(text).replace("{", "").replace("}", "")
    match = _CHOICE_RE.match(text)
    if not match:
        return None
    letter = match.group(1)
    # A lone lower-case word start ("a 5 N force") is not a choice; "(b)" or "b" alone is.
    if letter.islower() and not (text.startswith("(") or len(text) == 1):
        return None
    return letter.upper()


def _verify_choice(reference: str, prediction: str, options: tuple[str, ...] | None) -> bool:
    key = _choice_letter(reference)
    if key is None:
        return False
    letter = _choice_letter(prediction)
    if letter is None and options:
        # The text of an option instead of its letter ("32 N" for "(D) 32 N").
        wanted = _clean(prediction).lower()
        for i, option in enumerate(options):
            if _clean(option).lower() == wanted:
                letter = CHOICE_LETTERS[i]
                break
    return letter == key


_UNIT_TEXT_RE = re.compile(r"[A-Za-zµμ%][A-Za-zµμ%/^*\d\-\s.]*")
_LATEX_COMMAND_RE = re.compile(r"\\(?:text|mathrm|textrm|mbox|operatorname)")


def _read_number_with_unit(text: str, symbolic: bool = True) -> tuple[float, str] | None:
    """A number and the unit written after it ("" when none); None when unreadable."""
    cleaned = _ASSIGNMENT_RE.sub("", _clean(text))
    split = _split_number(cleaned)
    if split is not None:
        value, rest = split
        rest = _LATEX_COMMAND_RE.sub("", rest).replace("{", "").replace("}", "").strip()
        if not rest or _UNIT_TEXT_RE.fullmatch(rest):
            return float(value), rest
    # Not a plain number ("2\pi", "\sqrt{2}", "3^2"): ask math-verify for its value.
    if _looks_expensive(cleaned):
        return None
    if not symbolic:
        raise SymbolicCheckNeeded(cleaned)
    numeric = _math_verify_number(cleaned)
    return (numeric, "") if numeric is not None else None


def _verify_number(
    reference: str,
    prediction: str,
    tolerance: float | None,
    abs_tolerance: float | None,
    unit: str | None,
    symbolic: bool = True,
) -> bool:
    ref = _read_number_with_unit(reference, symbolic)
    pred = _read_number_with_unit(prediction, symbolic)
    if ref is None or pred is None:
        return False
    ref_value, ref_unit_text = ref
    pred_value, pred_unit_text = pred
    target_unit = normalise_unit(unit) if unit else normalise_unit(ref_unit_text) or None
    if target_unit and ref_unit_text and normalise_unit(ref_unit_text) != target_unit:
        converted = convert(ref_value, normalise_unit(ref_unit_text), target_unit)
        if converted is None:
            return False
        ref_value = converted
    if target_unit and pred_unit_text:
        pred_unit = normalise_unit(pred_unit_text)
        converted = convert(pred_value, pred_unit, target_unit)
        if converted is None:
            return False
        pred_value = converted
    rel = DEFAULT_NUMBER_TOLERANCE if tolerance is None else tolerance
    absolute = DEFAULT_ABS_TOLERANCE if abs_tolerance is None else abs_tolerance
    return math.isclose(pred_value, ref_value, rel_tol=rel, abs_tol=absolute)


def answer_unit_mismatch(
    reference: str, prediction: str | None, *, kind: AnswerKind, unit: str | None = None
) -> str | None:
    """For a wrong number answer: the sentence saying its unit measures another quantity than the
    key's ("kg measures a mass, but the question asks for a length (m)."), else None. Reads the
    numbers without math-verify, so it costs microseconds."""
    if kind != "number" or not prediction or len(prediction) > MAX_ANSWER_CHARS:
        return None
    try:
        pred = _read_number_with_unit(prediction, symbolic=False)
        ref = _read_number_with_unit(reference, symbolic=False)
    except SymbolicCheckNeeded:
        return None
    if pred is None or not pred[1]:
        return None
    wanted = unit or (ref[1] if ref else "")
    return unit_mismatch(pred[1], wanted) if wanted else None


def _verify_expression(reference: str, prediction: str, symbolic: bool = True) -> bool:
    ref_exact = parse_exact_number(reference)
    if ref_exact is not None:
        pred_exact = parse_exact_number(prediction)
        if pred_exact is not None:
            return pred_exact == ref_exact
    if _looks_expensive(prediction) or _looks_expensive(reference):
        return False
    if not symbolic:
        raise SymbolicCheckNeeded(prediction)
    return _math_verify(_clean(reference), _clean(prediction))


def verify(
    reference: str,
    prediction: str | None,
    *,
    kind: AnswerKind,
    tolerance: float | None = None,
    unit: str | None = None,
    options: tuple[str, ...] | list[str] | None = None,
    abs_tolerance: float | None = None,
    symbolic: bool = True,
) -> bool:
    """True when prediction is equivalent to the reference.

    - "expression": exact for numbers and fractions (1/2 == 0.5 == \\frac{1}{2}), otherwise
      math-verify with the reference as gold (sets, intervals, symbolic expressions).
    - "number": |pred - ref| within `tolerance` (relative, default 1e-6) or `abs_tolerance`;
      a unit on the prediction is converted to `unit` (or the reference's own unit) when both
      measure the same quantity, and a prediction in another quantity's unit is wrong.
    - "choice": the letter ("B", "(B)", "B) text") or an option's exact text against the key.
    A missing prediction (None or empty) is never correct. With `symbolic=False` an answer that
    only math-verify can settle raises `SymbolicCheckNeeded` instead (see `training.answer_pool`).
    """
    if prediction is None or not prediction.strip() or len(prediction) > MAX_ANSWER_CHARS:
        return False
    try:
        if kind == "choice":
            return _verify_choice(reference, prediction, tuple(options) if options else None)
        if kind == "number":
            return _verify_number(reference, prediction, tolerance, abs_tolerance, unit, symbolic)
        if kind == "expression":
            return _verify_expression(reference, prediction, symbolic)
    except (ValueError, ZeroDivisionError, OverflowError, RecursionError) as error:
        logger.debug("verification failed for %r: %s", prediction, error)
        return False
    raise ValueError(f"unknown answer kind {kind!r}")


def reward(completion: str, problem: Problem) -> float:
    """C3PO's reward: 1.0 when the final boxed answer verifies, else 0.0 (unfinished = 0)."""
    prediction = extract_final_answer(completion)
    correct = verify(
        problem.answer,
        prediction,
        kind=problem.kind,
        tolerance=problem.tolerance,
        unit=problem.unit,
        options=problem.options,
    )
    return 1.0 if correct else 0.0


def check_reference_parses(
    reference: str,
    kind: AnswerKind,
    *,
    options: tuple[str, ...] | list[str] | None = None,
    symbolic: bool = True,
) -> str | None:
    """None when the verifier can read a teacher's reference answer; otherwise why not.
    With `symbolic=False`, raises `SymbolicCheckNeeded` where math-verify would have to parse it."""
    if not reference or not reference.strip():
        return "the reference answer is empty"
    if len(reference) > MAX_ANSWER_CHARS:
        return f"the reference answer is longer than {MAX_ANSWER_CHARS} characters"
    if kind == "choice":
        letter = _choice_letter(reference)
        if letter is None:
            return f"{reference!r} is not a choice letter such as 'B'"
        if options is not None and ord(letter) - ord("A") >= len(options):
            return f"choice {letter} is beyond the {len(options)} options given"
        return None
    if kind == "number":
        try:
            parsed = _read_number_with_unit(reference, symbolic)
        except (ValueError, ZeroDivisionError, OverflowError):
            parsed = None
        return None if parsed is not None else f"{reference!r} is not a number"
    if kind == "expression":
        if parse_exact_number(reference) is not None:
            return None
        if _looks_expensive(reference):
            return f"{reference!r} is too large or nested to verify safely"
        if not symbolic:
            raise SymbolicCheckNeeded(reference)
        import sympy

        parsed = _parse_cached(_clean(reference), _timeout_seconds())
        if any(isinstance(item, sympy.Basic | sympy.MatrixBase) for item in parsed):
            return None
        return f"math-verify cannot parse {reference!r} as an expression"
    return f"unknown answer kind {kind!r}"
