"""JSON and JSONL (one JSON object per line) to raw items.

JSON may be a list of problem objects, or an object with "title", "description" and a "problems"
list (the set's metadata travels with it). Items remember the line where they start: the text is
first parsed whole (so a syntax error gets JSON's own line and column, explained in plain words),
then walked item by item to find where each starts. Nesting deeper than a problem file needs is
refused, and so is a document that nests so deep that Python's parser gives up.

LaTeX typed into JSON with single backslashes is the most common mistake: "\\frac" decodes to a
form feed followed by "rac". Such strings are reported with the fix (write "\\\\frac").
"""

from __future__ import annotations

import json
import math
import re

from webapp.problems.importers.records import Issue, ParsedFile, RawItem, UploadRefused
from webapp.problems.importers.validation import FIELD_LABELS, canonical_field

# {"problems": [{"choices": ["..."]}]} is four levels; anything much deeper is not a problem file.
MAX_DEPTH = 6
_PROBLEM_LIST_KEYS = ("problems", "items", "questions")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# Numbers are read as text (the validation reads every field as text anyway) where Python's own
# reading fails or loses the value: more than 4,300 digits is a ValueError, not a JSONDecodeError
# (a server error on the upload page, "unexpected error" in the background reader), and 1e999
# decodes to inf, which became the expression answer "inf" (so did Python's NaN and Infinity, which
# JSON itself does not have). As text, each is read as in a CSV file: an error of its item and
# line ("longer than 500 characters", "not a finite number").
_LONGEST_INT = 100


def _parse_int(text: str) -> int | str:
    return int(text) if len(text) <= _LONGEST_INT else text


def _parse_float(text: str) -> float | str:
    value = float(text)
    return value if math.isfinite(value) else text


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=str)
# C0 controls other than tab, newline and carriage return (as `decoding` refuses in raw text);
# backspace and form feed are left to _LATEX_MISTAKE, which explains them ("\\frac").
_ESCAPED_CONTROL = re.compile(r"[\x00-\x07\x0b\x0e-\x1f\x7f]")
# Half of a UTF-16 surrogate pair written as an escape ("\ud800" without its other half): json
# decodes it to a str that UTF-8 cannot encode and PostgreSQL cannot store (a server error on the
# upload page). A whole pair ("\ud83d\ude00") decodes to its one character and never matches.
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Control characters that only appear in a JSON string when a LaTeX backslash was not doubled.
_LATEX_MISTAKE = re.compile(
    r"[\x08\x0c]|\r(?!\n)|\t(?:imes|heta|au|an|ext|frac|o|riangle|op|ilde)\b"
    r"|\n(?:abla|eq|ot|otin|ewline|exists|eg|leq|geq)\b"
)
_EXPLAIN = [
    ("Expecting ',' delimiter", "a comma is missing between two values, or a quote is not closed"),
    (
        "Expecting property name enclosed in double quotes",
        "a name must be in double quotes, and JSON allows no comma after the last value",
    ),
    ("Expecting value", "a value is missing here (JSON allows no comma after the last item)"),
    ("Unterminated string", "a text in double quotes is never closed"),
    ("Invalid control character", "a line break inside quotes must be written \\n"),
    ("Invalid \\escape", "a backslash inside quotes must be doubled: write \\\\frac for \\frac"),
    ("Expecting ':' delimiter", "a colon is missing after a name"),
    ("Extra data", "there is more text after the end; for one problem per line, use JSONL"),
]


def parse_json(text: str, *, max_items: int) -> ParsedFile:
    data = _loads(text, line_offset=0)
    _check_structure(data, where="The file")
    title = description = ""
    offsets: list[int] = []
    if isinstance(data, list):
        items_data = data
        offsets = _array_offsets(text, _WHITESPACE.match(text).end())
    elif isinstance(data, dict) and any(key in data for key in _PROBLEM_LIST_KEYS):
        keys = [key for key in _PROBLEM_LIST_KEYS if key in data]
        if len(keys) > 1:
            # Reading one of them would drop the other's problems without a word.
            named = " and ".join(f"“{key}”" for key in keys)
            raise UploadRefused(f"The file has both {named} lists; put every problem in one list.")
        key = keys[0]
        items_data = data[key]
        if not isinstance(items_data, list):
            raise UploadRefused(f"“{key}” must be a list of problems, in square brackets [ … ].")
        title = data.get("title") if isinstance(data.get("title"), str) else ""
        description = data.get("description") if isinstance(data.get("description"), str) else ""
        offsets = _object_list_offsets(text, key)
    elif isinstance(data, dict):
        items_data = [data]  # one problem on its own
        offsets = [_WHITESPACE.match(text).end()]
    else:
        raise UploadRefused(
            "The file must hold a list of problems [ {…}, {…} ] or an object with a "
            "“problems” list."
        )
    if len(items_data) > max_items:
        raise UploadRefused(
            f"The file holds {len(items_data):,} problems; the limit is {max_items:,}. "
            "Split it into smaller files."
        )
    lines = _lines_of(text, offsets) if len(offsets) == len(items_data) else []
    unknown: set[str] = set()
    items = [
        _item(value, number=index + 1, line=lines[index] if lines else None, unknown=unknown)
        for index, value in enumerate(items_data)
    ]
    return ParsedFile(
        format="json",
        items=items,
        file_warnings=_unknown_warning(unknown),
        title=title.strip()[:200],
        description=description.strip(),
    )


def parse_jsonl(text: str, *, max_items: int) -> ParsedFile:
    items: list[RawItem] = []
    unknown: set[str] = set()
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        if len(items) >= max_items:
            raise UploadRefused(
                f"The file holds more than {max_items:,} problems; split it into smaller files."
            )
        number = len(items) + 1
        try:
            value = _DECODER.decode(line)
        except json.JSONDecodeError as exc:
            item = RawItem(number=number, line=line_number, fields={})
            item.issues.append(Issue("", f"This line is not valid JSON: {_explain(exc.msg)}."))
            items.append(item)
            continue
        except RecursionError as exc:
            raise UploadRefused(
                f"Line {line_number} is nested too deeply to be a problem.",
                details=[f"Line {line_number}: nested too deeply"],
            ) from exc
        _check_structure(value, where=f"Line {line_number}")
        items.append(_item(value, number=number, line=line_number, unknown=unknown))
    if not items:
        raise UploadRefused("The file is empty.")
    return ParsedFile(format="jsonl", items=items, file_warnings=_unknown_warning(unknown))


def _item(value: object, *, number: int, line: int | None, unknown: set[str]) -> RawItem:
    item = RawItem(number=number, line=line, fields={})
    if not isinstance(value, dict):
        item.issues.append(Issue("", "This item is not a problem: expected an object { … }."))
        return item
    for key, field_value in value.items():
        name = canonical_field(key)
        if name is None:
            unknown.add(str(key))
            continue
        if name in item.fields:
            item.issues.append(Issue("", f"Two keys give the {FIELD_LABELS.get(name, name)}."))
            continue
        item.fields[name] = field_value
        for text in field_value if isinstance(field_value, list) else [field_value]:
            if isinstance(text, str) and _LATEX_MISTAKE.search(text):
                item.issues.append(
                    Issue(
                        FIELD_LABELS.get(name, name),
                        "A LaTeX command lost its backslash: inside JSON text write every "
                        "backslash twice (\\\\frac, \\\\times, \\\\theta).",
                    )
                )
                break
    return item


def _loads(text: str, *, line_offset: int) -> object:
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        line = exc.lineno + line_offset
        raise UploadRefused(
            f"Line {line}, column {exc.colno}: the file is not valid JSON — {_explain(exc.msg)}.",
            details=[f"Line {line}, column {exc.colno}: {_explain(exc.msg)}"],
        ) from exc
    except RecursionError as exc:
        raise UploadRefused("The file is nested too deeply to be a problem file.") from exc


def _check_structure(value: object, *, where: str) -> None:
    """Refuse nesting deeper than a problem file needs, and control characters written as JSON
    escapes ("\\u0000"): the decoder refuses them in raw text, and PostgreSQL stores no NUL."""
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UploadRefused(
                f"{where} nests lists or objects {MAX_DEPTH}+ levels deep; a problem file "
                "needs at most four ({ “problems”: [ { “choices”: [ … ] } ] })."
            )
        if isinstance(current, dict):
            stack.extend((key, depth) for key in current)
            stack.extend((child, depth + 1) for child in current.values())
        elif isinstance(current, list):
            stack.extend((child, depth + 1) for child in current)
        elif isinstance(current, str) and (bad := _ESCAPED_CONTROL.search(current)):
            raise UploadRefused(
                f"{where} holds a control character (\\u{ord(bad.group()):04x}) in a text; a "
                "problem file never needs one. Remove it and upload again."
            )
        elif isinstance(current, str) and (bad := _LONE_SURROGATE.search(current)):
            raise UploadRefused(
                f"{where} holds \\u{ord(bad.group()):04x}, half of a character written as a "
                "JSON escape (its other half is missing). Write the character itself, or both "
                "halves, and upload again."
            )


def _array_offsets(text: str, start: int) -> list[int]:
    """Where each element of the JSON array opening at `start` begins (the text is valid JSON)."""
    offsets: list[int] = []
    index = _WHITESPACE.match(text, start + 1).end()
    if text[index] == "]":
        return offsets
    while True:
        offsets.append(index)
        _, index = _DECODER.raw_decode(text, index)
        index = _WHITESPACE.match(text, index).end()
        if text[index] != ",":
            return offsets
        index = _WHITESPACE.match(text, index + 1).end()


def _object_list_offsets(text: str, wanted: str) -> list[int]:
    """Element offsets of the list under top-level key `wanted` (the text is valid JSON)."""
    index = _WHITESPACE.match(text, _WHITESPACE.match(text).end() + 1).end()
    offsets: list[int] = []
    while text[index] != "}":
        key, index = _DECODER.raw_decode(text, index)
        index = _WHITESPACE.match(text, index).end() + 1  # past the colon
        index = _WHITESPACE.match(text, index).end()
        if key == wanted and text[index] == "[":
            offsets = _array_offsets(text, index)
        _, index = _DECODER.raw_decode(text, index)
        index = _WHITESPACE.match(text, index).end()
        if text[index] == ",":
            index = _WHITESPACE.match(text, index + 1).end()
    return offsets


def _lines_of(text: str, offsets: list[int]) -> list[int]:
    lines, line, previous = [], 1, 0
    for offset in offsets:
        line += text.count("\n", previous, offset)
        lines.append(line)
        previous = offset
    return lines


def _explain(message: str) -> str:
    for prefix, plain in _EXPLAIN:
        if message.startswith(prefix):
            return plain
    return message


def _unknown_warning(unknown: set[str]) -> list[str]:
    if not unknown:
        return []
    names = ", ".join(f"“{name}”" for name in sorted(unknown)[:10])
    return [f"These keys are not Ring Tutor fields and were ignored: {names}."]
