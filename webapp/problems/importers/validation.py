"""Checks one raw item the same way whatever file format it came from, in a teacher's words.

A raw item maps field names (any of the accepted spellings: "question" or "statement", "key" or
"answer") to raw values. `validate_item` turns it into the values of a `Problem` row, the errors that
keep it out, the warnings that let it in with a flag (a reference answer the verifier cannot parse is
one), and "hostile" findings (script tags, spreadsheet formulas) that refuse the whole file. The
single-problem form uses the same function, so a problem typed in and one uploaded obey one set of
rules.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from training.answers import parse_exact_number
from training.units import unit_from_statement
from webapp.core.answer_checks import (
    REFERENCE_PATIENCE_S,
    UNAVAILABLE_REFERENCE,
    reference_problem,
)
from webapp.core.user_text import (
    bidi_controls_in,
    is_blank,
    remove_bidi_controls,
    without_bidi_controls,
)
from webapp.problems.importers.records import Issue, RawItem

MAX_STATEMENT_CHARS = 20_000
MAX_SOLUTION_CHARS = 50_000
MAX_ANSWER_CHARS = 500
MAX_UNIT_CHARS = 32
MAX_CHOICE_CHARS = 1_000
MAX_CHOICES = 10
MAX_TAGS = 20
MAX_TAG_CHARS = 40
CHOICE_LETTERS = "ABCDEFGHIJ"

# Every spelling a teacher's spreadsheet or an LMS export might use, mapped to one field name.
_ALIASES = {
    "statement": "statement",
    "question": "statement",
    "question_text": "statement",
    "questiontext": "statement",
    "problem": "statement",
    "text": "statement",
    "prompt": "statement",
    "stem": "statement",
    "domain": "domain",
    "subject": "domain",
    "answer_kind": "answer_kind",
    "answer_type": "answer_kind",
    "answerkind": "answer_kind",
    "answertype": "answer_kind",
    "kind": "answer_kind",
    "type": "answer_kind",
    "answer": "answer",
    "reference_answer": "answer",
    "reference": "answer",
    "correct_answer": "answer",
    "correct": "answer",
    "key": "answer",
    "answer_key": "answer",
    "solution_answer": "answer",
    "tolerance": "tolerance",
    "tol": "tolerance",
    "margin": "tolerance",
    "error_margin": "tolerance",
    "unit": "unit",
    "units": "unit",
    "choices": "choices",
    "options": "choices",
    "solution": "solution",
    "worked_solution": "solution",
    "explanation": "solution",
    "working": "solution",
    "steps": "solution",
    "difficulty": "difficulty",
    "level": "difficulty",
    "tags": "tags",
    "tag": "tags",
    "topic": "tags",
    "topics": "tags",
    "category": "tags",
}
_OPTION_FIELD = re.compile(r"^(?:option|choice)?_?([a-j])$")
FIELD_LABELS = {
    "statement": "statement",
    "domain": "domain",
    "answer_kind": "answer type",
    "answer": "answer",
    "tolerance": "tolerance",
    "unit": "unit",
    "choices": "choices",
    "solution": "solution",
    "difficulty": "difficulty",
    "tags": "tags",
}

_DOMAINS = {
    "math": ("math", None),
    "maths": ("math", None),
    "mathematics": ("math", None),
    "science": ("science", None),
    "physics": ("science", "physics"),
    "chemistry": ("science", "chemistry"),
    "biology": ("science", "biology"),
}
_KINDS = {
    "expression": "expression",
    "expr": "expression",
    "symbolic": "expression",
    "formula": "expression",
    "short": "expression",
    "short answer": "expression",
    "number": "number",
    "numeric": "number",
    "numerical": "number",
    "num": "number",
    "choice": "choice",
    "mc": "choice",
    "mcq": "choice",
    "multiple choice": "choice",
    "multiple_choice": "choice",
    "multichoice": "choice",
    "none": "none",
    "open": "none",
    "essay": "none",
    "no answer": "none",
}
_DIFFICULTY_WORDS = {"easy": 1, "medium": 3, "hard": 5}

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER_RE = re.compile(rf"^{_NUMBER}$")
# "9.81 m/s^2", "12 N", "20°C", "15 %": a number, then a unit that starts with a letter or symbol.
_NUMBER_UNIT_RE = re.compile(rf"^({_NUMBER})(\s*)([A-Za-zµμΩ°%][\w/^·*.°⁻¹²³\- ]*)$")

# Tags that run code or load content when a page renders them; no maths or science text needs them.
# These three read the case-folded text (`hostile_reason`): matching without IGNORECASE is several
# times faster, and the whole upload goes through them. The script-link pattern starts with a
# letter rather than \b, so the regex engine skips to the candidate letters in C.
_DANGEROUS_TAG = re.compile(
    r"</?(script|style|iframe|frame|frameset|object|embed|applet|link|meta|base|form|input|button"
    r"|textarea|select|svg|img|image|video|audio|source|template|marquee|html|body|head)\b"
)
# Linear although [^<>]* backtracks: each "<" start scans only up to the next "<" or ">".
_EVENT_HANDLER = re.compile(r"<[a-z][^<>]*\bon[a-z]++\s*+=")
_SCRIPT_URL = re.compile(r"(?:javascript|vbscript)\s*+:|data\s*+:\s*+text/html")
# Cells a spreadsheet would run as a formula (OWASP "CSV injection"): =FUNC(, @FUNC(, DDE pipes,
# and the functions that reach the network. "-3", "-sin(x)" and "= 5" stay ordinary answers.
# Possessive quantifiers (*+) never give back what they matched, so each pattern runs in time
# linear in the text; the DDE pipe ("=cmd|' /C calc'!A0") is found with str.find in
# `_dde_pipe`, because as a regex (".*\|.*!") it backtracked quadratically on "-" + "|" * 40000.
_FORMULA = re.compile(
    r"\s*+(?:[=@]\s*+[A-Za-z_][\w.]*+\s*+\("
    r"|[=+\-@]\s*+(?:HYPERLINK|IMPORT\w*+|WEBSERVICE|FILTERXML|DDE\w*+|CALL|REGISTER|EXEC|CMD)\b)",
    re.IGNORECASE,
)
_FORMULA_SIGILS = "=+-@"


@dataclass
class ValidatedItem:
    """An item after checking: `data` holds Problem field values when `errors` is empty."""

    number: int
    line: int | None
    data: dict
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    hostile: list[Issue] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"Line {self.line}" if self.line is not None else f"Item {self.number}"


def canonical_field(name: str) -> str | None:
    """The field a column or key stands for ("Question Text" → "statement"), None if unknown."""
    key = re.sub(r"[\s\-]+", "_", remove_bidi_controls(str(name)).strip().lower())
    if key in _ALIASES:
        return _ALIASES[key]
    match = _OPTION_FIELD.match(key)
    if match:
        return f"option_{match.group(1)}"
    return None


def validate_item(
    raw: RawItem, *, default_domain: str = "math", defer_slow_checks: bool = False
) -> ValidatedItem:
    """Check one raw item; never raises for bad values, it reports them.

    With `defer_slow_checks`, a symbolic reference answer is marked `data["reference_pending"]`
    instead of being parsed now; `check_reference` finishes it later (see services).
    """
    item = ValidatedItem(
        number=raw.number,
        line=raw.line,
        data={},
        errors=list(raw.issues),
        warnings=list(raw.warnings),
    )
    values = _without_bidi_controls(raw.fields, item)
    _find_hostile(values, item)
    if raw.issues and not values:
        return item  # the parser could not read the item at all; its issues say why

    statement = _text(values.get("statement"), "statement", item)
    if is_blank(statement):  # "" or only invisible characters (zero-width spaces, marks)
        item.errors.append(Issue("statement", "The statement is empty: every problem needs one."))
    elif len(statement) > MAX_STATEMENT_CHARS:
        item.errors.append(
            Issue("statement", f"The statement is longer than {MAX_STATEMENT_CHARS:,} characters.")
        )
        # The item is refused; its preview needs no more than the limit (a staged upload would
        # otherwise carry megabytes of it into every save and page).
        statement = statement[:MAX_STATEMENT_CHARS] + "…"

    domain, extra_tag = _domain(values.get("domain"), default_domain, item)
    tags = _tags(values.get("tags"), item)
    if extra_tag and extra_tag not in tags:
        tags.append(extra_tag)

    solution = _text(values.get("solution"), "solution", item)
    if len(solution) > MAX_SOLUTION_CHARS:
        item.errors.append(
            Issue("solution", f"The solution is longer than {MAX_SOLUTION_CHARS:,} characters.")
        )
        solution = solution[:MAX_SOLUTION_CHARS] + "…"

    answer_fields = _answer(values, item)
    _unit_from_statement(statement, answer_fields, item)
    # A parser's own finding about a field (a GIFT key, an Aiken option) says more than what
    # the generic checks add about the same field, so the generic ones are dropped.
    parser_fields = {issue.field for issue in raw.issues}
    item.errors = list(raw.issues) + [
        issue for issue in item.errors[len(raw.issues) :] if issue.field not in parser_fields
    ]
    item.data = {
        "statement": statement,
        "domain": domain,
        "solution": solution,
        "difficulty": _difficulty(values.get("difficulty"), item),
        "tags": tags,
        "reference_error": "",
        **answer_fields,
    }
    if not item.errors and item.data["answer_kind"] != "none":
        if defer_slow_checks and needs_slow_check(item.data):
            item.data["reference_pending"] = True
        else:
            warning = check_reference(item.data)
            if warning:
                item.warnings.append(warning)
    elif not item.errors:
        item.warnings.append(
            Issue(
                "answer",
                "No reference answer: students can practise with it, but answers cannot be "
                "checked and it will not be used for training.",
            )
        )
    return item


def needs_slow_check(data: dict) -> bool:
    """True when the verifier must parse the answer symbolically (math-verify, ~10-30 ms);
    numbers, fractions and choice letters are read in microseconds."""
    return (
        data["answer_kind"] == "expression" and parse_exact_number(data["reference_answer"]) is None
    )


# How long a reference answer's check waits for a free checker process (see `check_reference`).
ReferenceWait = Literal["request", "if_free", "background"]
_PATIENCE: dict[str, float | None] = {
    "request": None,  # the site's ANSWER_CHECK_WAIT_SECONDS
    "if_free": 0.0,
    "background": REFERENCE_PATIENCE_S,
}


def check_reference(data: dict, *, wait: ReferenceWait = "request") -> Issue | None:
    """Ask the verifier whether it can read the item's reference answer; on failure record why in
    `data["reference_error"]` (which keeps the problem out of the training pool) and return the
    warning for the teacher.

    `wait` is how long the check waits for a free checker process, which students' answers share:
    "request" (the single-problem form) `ANSWER_CHECK_WAIT_SECONDS`, then the reason "not
    available"; "if_free" (an upload's answers read in the request or by the read task) not in
    line: with no checker free at once (or still starting when that wait is up), the item stays
    `reference_pending` for the background check (`problems.check_upload_answers`) and None is
    returned, so a teacher's upload only uses checkers nobody is waiting for; "background" (that
    Celery task) `REFERENCE_PATIENCE_S`.
    """
    data.pop("reference_pending", None)
    message = reference_problem(
        data["reference_answer"],
        data["answer_kind"],
        options=data["choices"] or None,
        patience_s=_PATIENCE[wait],
    )
    if wait == "if_free" and message == UNAVAILABLE_REFERENCE:
        data["reference_pending"] = True
        return None
    if not message:
        data["reference_error"] = ""
        return None
    data["reference_error"] = message[:300]
    return Issue(
        "answer",
        f"The answer checker cannot read “{data['reference_answer']}” ({message.rstrip('.')}). "
        "The problem can be used, but not for training until the answer is fixed.",
    )


def _answer(values: dict, item: ValidatedItem) -> dict:
    answer = _text(values.get("answer"), "answer", item)
    unit = _text(values.get("unit"), "unit", item)
    result = {
        "answer_kind": "none",
        "reference_answer": "",
        "tolerance": None,
        "unit": "",
        "choices": [],
    }
    if len(answer) > MAX_ANSWER_CHARS:  # before any pattern reads it
        item.errors.append(
            Issue("answer", f"The answer is longer than {MAX_ANSWER_CHARS} characters.")
        )
        return result
    choices = _choices(values, item)
    kind_raw = _text(values.get("answer_kind"), "answer type", item)
    kind = _KINDS.get(kind_raw.lower()) if kind_raw else None
    if kind_raw and kind is None:
        item.errors.append(
            Issue(
                "answer type",
                f"“{kind_raw}” is not an answer type: use expression, number, choice or none.",
            )
        )
        kind = "none"
    if kind is None:
        kind = _infer_kind(answer, unit, choices)

    result["answer_kind"] = kind
    if choices and kind != "choice":
        item.errors.append(
            Issue(
                "choices", f"Choices are given but the answer type is {kind}: remove one of them."
            )
        )
        return result

    if kind == "none":
        if answer:
            item.warnings.append(
                Issue("answer", "The answer type is “none”, so the answer given is ignored.")
            )
        return result
    if kind == "choice":
        return result | _choice_answer(answer, choices, item)
    if not answer:
        item.errors.append(
            Issue("answer", f"The answer is empty; a {kind} problem needs its reference answer.")
        )
        return result
    if kind == "number":
        return result | _number_answer(answer, unit, values.get("tolerance"), item)
    if values.get("tolerance") not in (None, ""):
        item.warnings.append(
            Issue("tolerance", "A tolerance only applies to number answers; ignored.")
        )
    return result | {"reference_answer": answer, "unit": _unit(unit, item)}


def _unit_from_statement(statement: str, answer_fields: dict, item: ValidatedItem) -> None:
    """A number key without a unit takes the unit its statement asks for ("… in metres?"), so
    "0.135 km" is right and "135 kg" wrong for a key of 135; the preview says so."""
    if answer_fields.get("answer_kind") != "number" or answer_fields.get("unit"):
        return
    if not answer_fields.get("reference_answer"):
        return
    unit = unit_from_statement(statement)
    if unit is None:
        return
    answer_fields["unit"] = unit
    item.warnings.append(
        Issue(
            "unit",
            f"The answer {answer_fields['reference_answer']} has no unit; the statement asks for "
            f"{unit}, so it is checked as {answer_fields['reference_answer']} {unit} (answers in "
            f"other units of the same quantity are converted, others are wrong).",
        )
    )


def _infer_kind(answer: str, unit: str, choices: list[str]) -> str:
    if choices:
        return "choice"
    if not answer:
        return "none"
    if _NUMBER_RE.match(answer) or unit:
        return "number"
    match = _NUMBER_UNIT_RE.match(answer)
    if match and match.group(2):  # "12 N" is a number with a unit; "2x" is an expression
        return "number"
    return "expression"


def _number_answer(answer: str, unit: str, tolerance_raw: object, item: ValidatedItem) -> dict:
    compact = answer
    if not _NUMBER_RE.match(compact):
        match = _NUMBER_UNIT_RE.match(answer)
        if match is None:
            hint = ""
            if re.fullmatch(r"[+-]?[\d.]*,\d+", answer):
                hint = " Write decimals with a dot (2.5) and no thousands separators."
            item.errors.append(Issue("answer", f"“{answer}” is not a number.{hint}"))
            return {}
        compact, found_unit = match.group(1), match.group(3).strip()
        if unit and unit != found_unit:
            item.errors.append(
                Issue("unit", f"The answer says “{found_unit}” but the unit column says “{unit}”.")
            )
            return {}
        unit = found_unit
    value = float(compact)
    if not math.isfinite(value):
        item.errors.append(Issue("answer", f"“{answer}” is not a finite number."))
        return {}
    return {
        "reference_answer": compact,
        "unit": _unit(unit, item),
        "tolerance": _tolerance(tolerance_raw, value, item),
    }


def parse_tolerance(raw: object, value: float) -> tuple[float | None, str | None]:
    """(relative tolerance, error): "0.05" is ± 0.05 in the answer's unit, "1%" is ± 1 %.

    Teachers think in Moodle's and Canvas's terms, a margin in the answer's own unit, or a
    percentage; the verifier (`training.answers.verify`) takes a relative tolerance, so both are
    stored as the fraction of the answer they allow.
    """
    if raw is None or raw == "":
        return None, None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        return None, "The tolerance must be a number such as 0.05 or 1%."
    text = str(raw).strip()
    percent = text.endswith("%")
    number = text[:-1].strip() if percent else text
    if not _NUMBER_RE.match(number):
        return (
            None,
            f"“{text}” is not a tolerance: write a margin such as 0.05, or a percentage such as 1%.",
        )
    margin = float(number)
    if margin < 0 or not math.isfinite(margin):
        return None, "The tolerance must be zero or positive."
    if percent:
        return margin / 100, None
    if margin == 0:
        return 0.0, None
    if value == 0:
        return None, "An answer of 0 cannot have a ± margin; leave the tolerance empty."
    return margin / abs(value), None


def _tolerance(raw: object, value: float, item: ValidatedItem) -> float | None:
    tolerance, error = parse_tolerance(raw, value)
    if error:
        item.errors.append(Issue("tolerance", error))
    return tolerance


def _unit(unit: str, item: ValidatedItem) -> str:
    if len(unit) > MAX_UNIT_CHARS:
        item.errors.append(Issue("unit", f"The unit is longer than {MAX_UNIT_CHARS} characters."))
        return ""
    return unit


def _choices(values: dict, item: ValidatedItem) -> list[str]:
    listed = values.get("choices")
    option_values = {
        name[-1].upper(): value
        for name, value in values.items()
        if name.startswith("option_") and value not in (None, "")
    }
    if listed not in (None, "", []) and option_values:
        item.errors.append(
            Issue("choices", "Give the choices either in “choices” or in option columns, not both.")
        )
        return []
    if option_values:
        last = max(CHOICE_LETTERS.index(letter) for letter in option_values)
        missing = [letter for letter in CHOICE_LETTERS[: last + 1] if letter not in option_values]
        if missing:
            item.errors.append(
                Issue(
                    "choices",
                    f"Option {missing[0]} is empty but option {CHOICE_LETTERS[last]} is filled.",
                )
            )
            return []
        listed = [option_values[letter] for letter in CHOICE_LETTERS[: last + 1]]
    if listed in (None, "", []):
        return []
    if isinstance(listed, str):
        separator = "|" if "|" in listed else "\n"
        listed = [part for part in listed.split(separator)]
    if not isinstance(listed, list):
        item.errors.append(Issue("choices", "The choices must be a list of texts."))
        return []
    choices = []
    for index, value in enumerate(listed):
        text = _text(value, "choices", item)
        if not text:
            item.errors.append(Issue("choices", f"Choice {index + 1} is empty."))
            return []
        if len(text) > MAX_CHOICE_CHARS:
            item.errors.append(
                Issue(
                    "choices", f"Choice {index + 1} is longer than {MAX_CHOICE_CHARS} characters."
                )
            )
            return []
        choices.append(text)
    if len(choices) > MAX_CHOICES:
        item.errors.append(
            Issue("choices", f"There are {len(choices)} choices; at most {MAX_CHOICES}.")
        )
        return []
    normalised = [choice.casefold() for choice in choices]
    for index, text in enumerate(normalised):
        if text in normalised[:index]:
            first = normalised.index(text)
            item.errors.append(
                Issue(
                    "choices",
                    f"Choices {CHOICE_LETTERS[first]} and {CHOICE_LETTERS[index]} are the same.",
                )
            )
            return []
    return choices


def _choice_answer(answer: str, choices: list[str], item: ValidatedItem) -> dict:
    if len(choices) < 2:
        item.errors.append(
            Issue("choices", "A multiple-choice problem needs at least two choices.")
        )
        return {}
    letters = CHOICE_LETTERS[: len(choices)]
    if not answer:
        item.errors.append(
            Issue(
                "answer",
                f"Which choice is right? Put its letter ({letters[0]}–{letters[-1]}) in answer.",
            )
        )
        return {}
    letter = answer.strip().rstrip(").").upper()
    if len(letter) == 1 and letter in CHOICE_LETTERS:
        if letter not in letters:
            item.errors.append(
                Issue(
                    "answer",
                    f"The answer is {letter} but there are only choices {letters[0]}–{letters[-1]}.",
                )
            )
            return {}
        return {"reference_answer": letter, "choices": choices}
    for index, choice in enumerate(choices):
        if choice.casefold() == answer.casefold():
            return {"reference_answer": letters[index], "choices": choices}
    item.errors.append(
        Issue(
            "answer",
            f"“{answer}” is neither a choice letter ({letters[0]}–{letters[-1]}) nor one of the choices.",
        )
    )
    return {}


def _domain(raw: object, default: str, item: ValidatedItem) -> tuple[str, str | None]:
    text = _text(raw, "domain", item).lower()
    if not text:
        return default, None
    if text in _DOMAINS:
        domain, tag = _DOMAINS[text]
        if tag:
            item.warnings.append(
                Issue(
                    "domain",
                    f"“{text}” is not one of the site's domains (math, science): imported as "
                    f"{domain}, tagged “{tag}”.",
                )
            )
        return domain, tag
    item.errors.append(Issue("domain", f"“{text}” is not a domain: use math or science."))
    return default, None


def _difficulty(raw: object, item: ValidatedItem) -> int | None:
    if raw is None or raw == "":
        return None
    text = str(raw).strip().lower()
    if text in _DIFFICULTY_WORDS:
        return _DIFFICULTY_WORDS[text]
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if isinstance(raw, bool) or not value.is_integer() or not 1 <= value <= 5:
        item.errors.append(
            Issue("difficulty", f"“{raw}” is not a difficulty: use 1 to 5, or easy, medium, hard.")
        )
        return None
    return int(value)


def _tags(raw: object, item: ValidatedItem) -> list[str]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        parts = re.split(r"[,;|]", raw)
    elif isinstance(raw, list):
        parts = raw
    else:
        item.errors.append(Issue("tags", "The tags must be a list or a comma-separated text."))
        return []
    tags: list[str] = []
    for part in parts:
        tag = _text(part, "tags", item)
        if not tag or tag in tags:
            continue
        if len(tag) > MAX_TAG_CHARS:
            item.errors.append(
                Issue("tags", f"The tag “{tag[:20]}…” is longer than {MAX_TAG_CHARS} characters.")
            )
            return []
        tags.append(tag)
    if len(tags) > MAX_TAGS:
        item.errors.append(Issue("tags", f"There are {len(tags)} tags; at most {MAX_TAGS}."))
        return []
    return tags


def _text(raw: object, label: str, item: ValidatedItem) -> str:
    """A field's text. Numbers are accepted where a spreadsheet or JSON writer made them numbers."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw.strip()
    if isinstance(raw, bool):
        item.errors.append(Issue(label, f"Expected text, found {str(raw).lower()}."))
        return ""
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, float):
        return repr(raw) if math.isfinite(raw) else str(raw)
    kind = (
        "a list" if isinstance(raw, list) else "an object" if isinstance(raw, dict) else "a value"
    )
    item.errors.append(Issue(label, f"Expected text, found {kind}."))
    return ""


def _without_bidi_controls(fields: dict, item: ValidatedItem) -> dict:
    """The item's values with explicit bidirectional controls removed from every text (see
    webapp.core.user_text for why they are removed rather than refused), and one warning for each
    field that had them, so the preview says what changed. Before every other check: hidden behind
    an override, "=HYPERLINK(" or "<script" would pass the hostile checks and be stored whole."""
    values: dict = {}
    found: dict[str, set[str]] = {}
    for name, value in fields.items():
        texts = value if isinstance(value, list) else [value]
        controls = {
            char for text in texts if isinstance(text, str) for char in bidi_controls_in(text)
        }
        if controls:
            label = "choices" if name.startswith("option_") else FIELD_LABELS.get(name, name)
            found.setdefault(label, set()).update(controls)
        values[name] = without_bidi_controls(value)
    for label, controls in found.items():
        codes = ", ".join(f"U+{ord(char):04X}" for char in sorted(controls))
        item.warnings.append(
            Issue(
                label,
                f"Invisible direction controls ({codes}) were removed: they made the text show "
                "in a different order from the one it is stored and checked in. Nothing else "
                "was changed.",
            )
        )
    return values


def _find_hostile(values: dict, item: ValidatedItem) -> None:
    for name, value in values.items():
        label = FIELD_LABELS.get(name, name.replace("_", " "))
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str):
                continue
            reason = hostile_reason(text)
            if reason:
                item.hostile.append(Issue(label, reason))


def hostile_reason(text: str) -> str | None:
    """Why a text may not be stored (a script tag, a spreadsheet formula), or None.

    Every check is linear in the text; the `in` tests skip a pattern whose first character the
    text lacks, which is most text."""
    folded = text.casefold() if "<" in text or ":" in text else ""
    if "<" in folded:
        tag = _DANGEROUS_TAG.search(folded)
        if tag:
            return f"It contains an HTML <{tag.group(1)}> tag, which is not allowed."
        if _EVENT_HANDLER.search(folded):
            return "It contains an HTML event handler (on…=), which is not allowed."
    if ":" in folded and _SCRIPT_URL.search(folded):
        return "It contains a script link (javascript:), which is not allowed."
    if _FORMULA.match(text) or _dde_pipe(text):
        return "It starts like a spreadsheet formula (=, +, -, @ with a function), which is not allowed."
    return None


def _dde_pipe(text: str) -> bool:
    """A formula sigil, then on the same line a "|" and after it a "!" (a DDE call)."""
    start = len(text) - len(text.lstrip())
    if start == len(text) or text[start] not in _FORMULA_SIGILS:
        return False
    line_end = text.find("\n", start)
    if line_end < 0:
        line_end = len(text)
    pipe = text.find("|", start + 1, line_end)
    return pipe >= 0 and text.find("!", pipe + 1, line_end) >= 0
