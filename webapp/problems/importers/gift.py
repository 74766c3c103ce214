"""Moodle GIFT to raw items: multiple choice, true/false, short answer, numerical, essay.

Follows Moodle's GIFT import (question/format/gift): questions separated by blank lines, `//`
comment lines, optional `::name::` and `[markdown]`/`[html]` markers, the answer in braces, `\\`
escapes for `~ = # { } :`, `$CATEGORY:` lines (the last part becomes a tag), `####` general feedback
(kept as the worked solution). Two things are kinder than Moodle: LaTeX braces such as `\\frac{1}{2}`
need no escaping (only a brace group that looks like an answer counts as the answer), a blank
line inside an unclosed answer does not split the question, and questions written one after the
other without a blank line are split after each line that ends with an answer (with a warning,
since Moodle itself would refuse the file). Matching questions have no place in a
tutor that checks one answer, so they are reported, not silently dropped.
"""

from __future__ import annotations

import re

from webapp.problems.importers.records import Issue, ParsedFile, RawItem, UploadRefused

_ESCAPABLE = "~=#{}:"
_TITLE = re.compile(r"^\s*::((?:[^:\\]|\\.|:(?!:))*)::", re.DOTALL)
_FORMAT = re.compile(r"^\s*\[(html|moodle|plain|markdown)\]", re.IGNORECASE)
_TRUE_FALSE = re.compile(r"^\s*(T|TRUE|F|FALSE)\s*(#.*)?$", re.IGNORECASE | re.DOTALL)
_WEIGHT = re.compile(r"^\s*%(-?\d+(?:\.\d+)?)%")
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*\.\.\s*({_NUMBER})\s*$")
_TOLERANCE = re.compile(rf"^\s*({_NUMBER})\s*:\s*({_NUMBER})\s*$")
_SINGLE = re.compile(rf"^\s*({_NUMBER})\s*$")
# Formatting tags an [html] question may carry; anything else is left for the hostile-content check.
_HARMLESS_TAG = re.compile(r"</?(?:p|br|b|i|em|strong|u|sub|sup|span|div)\b[^<>]*>", re.IGNORECASE)
BLANK = "_____"
_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)


def parse_gift(text: str, *, max_items: int) -> ParsedFile:
    items: list[RawItem] = []
    category = ""
    for start_line, block in _blocks(text):
        stripped = block.strip()
        if stripped.upper().startswith("$CATEGORY:"):
            category = stripped.split(":", 1)[1].strip().rstrip("/").split("/")[-1].strip()
            continue
        for line, question, run_on in _run_together(block, start_line):
            if len(items) >= max_items:
                raise UploadRefused(
                    f"The file holds more than {max_items:,} questions; split it into smaller "
                    "files."
                )
            item = _question(question, number=len(items) + 1, line=line, category=category)
            if run_on:
                item.warnings.append(
                    Issue(
                        "",
                        "No blank line before this question; read as a new question because the "
                        "one above ends with its answer. Moodle needs a blank line between "
                        "questions: add one before importing the file there.",
                    )
                )
            items.append(item)
    if not items:
        raise UploadRefused(
            "The file holds no GIFT questions (each needs an answer in braces {…})."
        )
    return ParsedFile(format="gift", items=items)


def _blocks(text: str) -> list[tuple[int, str]]:
    """Questions as (first line, text): split at blank lines unless a brace is still open.

    The depth of open braces is kept line by line: re-counting the whole question at each blank
    line was quadratic in a question that never closes its brace."""
    blocks: list[tuple[int, str]] = []
    current: list[str] = []
    depth = 0
    start = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if line.lstrip().startswith("//"):
            continue
        if line.lstrip().upper().startswith("$CATEGORY:"):
            if current:
                blocks.append((start, "\n".join(current)))
                current, depth = [], 0
            blocks.append((number, line))
            continue
        if not line.strip():
            if current and depth <= 0:
                blocks.append((start, "\n".join(current)))
                current, depth = [], 0
            elif current:
                current.append(line)
            continue
        if not current:
            start = number
        current.append(line)
        depth += _open_braces(line)
    if current:
        blocks.append((start, "\n".join(current)))
    return blocks


def _run_together(block: str, first_line: int) -> list[tuple[int, str, bool]]:
    """A block holding several questions with no blank line between them, cut after each line
    that ends with an answer in braces: (first line, text, whether it followed another one)."""
    groups, unclosed = _brace_groups(block)
    answers = [end for start, end in groups if _looks_like_answer(block[start + 1 : end])]
    if unclosed is not None or len(answers) < 2:
        return [(first_line, block, False)]
    parts: list[tuple[int, str, bool]] = []
    begin = 0
    for end in answers[:-1]:
        newline = block.find("\n", end)
        if newline == -1 or block[end + 1 : newline].strip():
            continue  # text after the answer on its line: a missing-word question goes on
        if not block[newline + 1 :].strip():
            break
        parts.append((first_line + block.count("\n", 0, begin), block[begin:newline], bool(parts)))
        begin = newline + 1
    parts.append((first_line + block.count("\n", 0, begin), block[begin:], bool(parts)))
    return parts


def _open_braces(text: str) -> int:
    if "\\" not in text:  # most lines: counted in C, not character by character
        return text.count("{") - text.count("}")
    depth, index = 0, 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        depth += char == "{"
        depth -= char == "}"
        index += 1
    return depth


def _question(block: str, *, number: int, line: int, category: str) -> RawItem:
    item = RawItem(number=number, line=line, fields={})
    if category:
        item.fields["tags"] = [category]
    body = block
    title = _TITLE.match(body)
    if title:
        body = body[title.end() :]

    groups, unclosed = _brace_groups(body)
    if unclosed is not None:
        item.issues.append(
            Issue("answer", f"Line {_line_at(block, body, unclosed, line)}: a {{ is never closed.")
        )
        return item
    answers = [(start, end) for start, end in groups if _looks_like_answer(body[start + 1 : end])]
    if not answers:
        item.fields["statement"] = _statement(body)
        item.issues.append(
            Issue("answer", "No answer in braces: write it like {=42}, {#3.14:0.01} or {~a =b ~c}.")
        )
        return item
    if len(answers) > 1:
        item.fields["statement"] = _statement(body[: answers[0][0]])
        item.issues.append(
            Issue(
                "answer",
                "This question has more than one answer in braces {…}. Put each question in its "
                "own paragraph (a blank line between questions).",
            )
        )
        return item

    start, end = answers[0]
    before, after = body[:start], body[end + 1 :]
    statement = _statement(before)
    if after.strip():  # Moodle's "missing word" format: the answer sits inside the sentence
        rest = _statement(after)
        joiner = "" if rest[:1] in ".,;:!?)" else " "
        statement = f"{statement} {BLANK}{joiner}{rest}".strip()
    item.fields["statement"] = statement
    brace_line = _line_at(block, body, start, line)
    _answer(body[start + 1 : end], item, brace_line)
    return item


def _brace_groups(text: str) -> tuple[list[tuple[int, int]], int | None]:
    groups, depth, start = [], 0, 0
    # Only escapes and braces matter: the regex skips the text between them in C.
    for match in _BRACE_OR_ESCAPE.finditer(text):
        char = match.group()
        if char == "{":
            if depth == 0:
                start = match.start()
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                groups.append((start, match.start()))
    return groups, (start if depth > 0 else None)


def _looks_like_answer(content: str) -> bool:
    stripped = content.strip()
    return not stripped or stripped[0] in "~=#" or bool(_TRUE_FALSE.match(stripped))


def _answer(content: str, item: RawItem, brace_line: int) -> None:
    content, feedback = _split_unescaped(content, "####")
    if feedback is not None:
        item.fields["solution"] = _unescape(feedback).strip()
    stripped = content.strip()
    if not stripped:
        item.fields["answer_kind"] = "none"  # an essay question: nothing to check
        return
    true_false = _TRUE_FALSE.match(stripped)
    if true_false:
        item.fields["answer_kind"] = "choice"
        item.fields["choices"] = ["True", "False"]
        item.fields["answer"] = "A" if true_false.group(1).upper().startswith("T") else "B"
        return
    if stripped.startswith("#"):
        _numerical(stripped[1:], item, brace_line)
        return
    tokens = _answer_tokens(stripped)
    if tokens is None:
        item.issues.append(
            Issue("answer", f"Line {brace_line}: text before the first = or ~ inside the braces.")
        )
        return
    if any("->" in text for _, _, text in tokens):
        item.issues.append(
            Issue("answer", f"Line {brace_line}: matching questions (a -> b) are not supported.")
        )
        return
    if any(prefix == "~" for prefix, _, _ in tokens):
        _multiple_choice(tokens, item, brace_line)
    else:
        _short_answer(tokens, item)


def _answer_tokens(content: str) -> list[tuple[str, float | None, str]] | None:
    """Split "~a =b ~%50%c#feedback" into (prefix, weight, text) with feedback dropped."""
    pieces: list[tuple[str, str]] = []
    index, current_prefix, current = 0, None, []
    while index < len(content):
        char = content[index]
        if char == "\\" and index + 1 < len(content):
            current.append(content[index : index + 2])
            index += 2
            continue
        if char in "~=":
            if current_prefix is None and "".join(current).strip():
                return None
            if current_prefix is not None:
                pieces.append((current_prefix, "".join(current)))
            current_prefix, current = char, []
        else:
            current.append(char)
        index += 1
    if current_prefix is None:
        return None
    pieces.append((current_prefix, "".join(current)))
    tokens = []
    for prefix, raw in pieces:
        weight = None
        match = _WEIGHT.match(raw)
        if match:
            weight = float(match.group(1))
            raw = raw[match.end() :]
        text, _feedback = _split_unescaped(raw, "#")
        tokens.append((prefix, weight, _unescape(text).strip()))
    return tokens


def _multiple_choice(tokens, item: RawItem, brace_line: int) -> None:
    right = [
        index
        for index, (prefix, weight, _) in enumerate(tokens)
        if (prefix == "=" and weight in (None, 100.0)) or (prefix == "~" and weight == 100.0)
    ]
    if any(weight not in (None, 0.0, 100.0) for _, weight, _ in tokens):
        item.warnings.append(
            Issue(
                "answer", "Partial-credit weights (%50%) are ignored; the 100% answer is the key."
            )
        )
    item.fields["answer_kind"] = "choice"
    item.fields["choices"] = [text for _, _, text in tokens]
    if not right:
        item.issues.append(
            Issue("answer", f"Line {brace_line}: no right answer; mark it with = (like {{=4 ~5}}).")
        )
    elif len(right) > 1:
        item.issues.append(
            Issue(
                "answer",
                f"Line {brace_line}: {len(right)} answers are marked right; a multiple-choice "
                "problem here has exactly one key.",
            )
        )
    else:
        item.fields["answer"] = "ABCDEFGHIJ"[right[0]] if right[0] < 10 else ""


def _short_answer(tokens, item: RawItem) -> None:
    accepted = [text for _, weight, text in tokens if weight in (None, 100.0)]
    if not accepted:
        accepted = [tokens[0][2]]
    item.fields["answer"] = accepted[0]
    if len(accepted) > 1:
        others = ", ".join(f"“{text}”" for text in accepted[1:4])
        item.warnings.append(
            Issue("answer", f"Only the first answer “{accepted[0]}” is kept; {others} not used.")
        )


def _numerical(content: str, item: RawItem, brace_line: int) -> None:
    item.fields["answer_kind"] = "number"
    stripped = content.strip()
    candidates = [stripped]
    if stripped.startswith("="):
        tokens = _answer_tokens(stripped) or []
        full = [text for _, weight, text in tokens if weight in (None, 100.0)]
        candidates = full or [text for _, _, text in tokens]
    else:
        candidates = [_split_unescaped(stripped, "#")[0]]
    spec = _unescape(candidates[0]) if candidates else ""
    if match := _RANGE.match(spec):
        low, high = sorted((float(match.group(1)), float(match.group(2))))
        item.fields["answer"] = _format_number((low + high) / 2)
        item.fields["tolerance"] = _format_number((high - low) / 2)
    elif match := _TOLERANCE.match(spec):
        item.fields["answer"] = match.group(1)
        item.fields["tolerance"] = match.group(2)
    elif match := _SINGLE.match(spec):
        item.fields["answer"] = match.group(1)
    else:
        item.issues.append(
            Issue(
                "answer",
                f"Line {brace_line}: “{spec.strip()}” is not a number answer; write it like "
                "{#3.14:0.01} or {#1..5}.",
            )
        )


def _statement(text: str) -> str:
    text = text.strip()
    marker = _FORMAT.match(text)
    if marker:
        text = text[marker.end() :].strip()
        if marker.group(1).lower() == "html":
            text = _HARMLESS_TAG.sub(" ", text)
    return _unescape(text).strip()


def _split_unescaped(text: str, separator: str) -> tuple[str, str | None]:
    index = 0
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text.startswith(separator, index):
            return text[:index], text[index + len(separator) :]
        index += 1
    return text, None


def _unescape(text: str) -> str:
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            if following in _ESCAPABLE or following == "\\":
                out.append(following)
                index += 2
                continue
            if following == "n" and not text[index + 2 : index + 3].isalpha():
                out.append("\n")
                index += 2
                continue
        out.append(char)
        index += 1
    return "".join(out)


def _line_at(block: str, body: str, offset_in_body: int, first_line: int) -> int:
    absolute = len(block) - len(body) + offset_in_body
    return first_line + block.count("\n", 0, absolute)


def _format_number(value: float) -> str:
    return f"{value:.12g}"
