"""Moodle's Aiken format to raw items: a question, lettered options, then "ANSWER: X".

    What is 7 × 8?
    A. 54
    B. 56
    C. 64
    ANSWER: B

Moodle refuses a whole file for a lower-case "answer:" or a question on two lines; here those are
accepted (the question may span several lines; "Answer: b" works), and each real mistake — a key
that is not one of the options, options out of order, a question with no ANSWER line — is reported
at its own line while the other questions still read.
"""

from __future__ import annotations

import re

from webapp.problems.importers.records import Issue, ParsedFile, RawItem, UploadRefused

# Lines arrive stripped, and the value is stripped in code: a lazy "(.*?)\s*$" backtracked
# quadratically on a long run of inner spaces. Possessive quantifiers keep both patterns linear.
_OPTION = re.compile(r"([A-Za-z])[.)]\s++(.*+)")
_ANSWER = re.compile(r"ANSWER\s*+:(.*+)", re.IGNORECASE)
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class _Question:
    def __init__(self, line: int, text: str) -> None:
        self.line = line
        self.question_lines = [text]
        self.options: list[tuple[int, str, str]] = []  # (line, letter, text)
        self.issues: list[Issue] = []


def parse_aiken(text: str, *, max_items: int) -> ParsedFile:
    items: list[RawItem] = []
    current: _Question | None = None

    def close(question: _Question, answer: str | None, answer_line: int | None) -> None:
        if len(items) >= max_items:
            raise UploadRefused(
                f"The file holds more than {max_items:,} questions; split it into smaller files."
            )
        items.append(_item(question, answer, answer_line, number=len(items) + 1))

    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        answer = _ANSWER.match(stripped)
        if answer:
            if current is None:
                items.append(
                    RawItem(
                        number=len(items) + 1,
                        line=number,
                        fields={},
                        issues=[Issue("answer", "An ANSWER: line with no question above it.")],
                    )
                )
            else:
                close(current, answer.group(1).strip(), number)
                current = None
            continue
        option = _OPTION.match(stripped)
        if current is not None and option:
            current.options.append((number, option.group(1), option.group(2).strip()))
            continue
        if current is not None and current.options:
            # A new question starts while the previous one still waits for its ANSWER line.
            close(current, None, None)
            current = None
        if current is None:
            current = _Question(number, stripped)
        else:
            current.question_lines.append(stripped)
    if current is not None:
        close(current, None, None)
    if not items:
        raise UploadRefused("The file holds no Aiken questions.")
    return ParsedFile(format="aiken", items=items)


def _item(question: _Question, answer: str | None, answer_line: int | None, *, number: int):
    item = RawItem(
        number=number,
        line=question.line,
        fields={"statement": "\n".join(question.question_lines), "answer_kind": "choice"},
    )
    if not question.options:
        item.issues.append(
            Issue("choices", "No options: write each on its own line as “A. text” or “A) text”.")
        )
        return item
    for index, (line, letter, _) in enumerate(question.options):
        expected = _LETTERS[index]
        if letter.upper() != expected:
            item.issues.append(
                Issue(
                    "choices",
                    f"Line {line}: option {letter.upper()} where {expected} was expected.",
                )
            )
            return item
    item.fields["choices"] = [text for _, _, text in question.options]
    if answer is None:
        last_line = question.options[-1][0]
        item.issues.append(
            Issue(
                "answer",
                f"No “ANSWER: X” line after the options (expected after line {last_line}).",
            )
        )
        return item
    letter = answer.rstrip(").").strip().upper()
    letters = _LETTERS[: len(question.options)]
    if len(letter) != 1 or letter not in letters:
        item.issues.append(
            Issue(
                "answer",
                f"Line {answer_line}: “ANSWER: {answer}” is not one of the options "
                f"{letters[0]}–{letters[-1]}.",
            )
        )
        return item
    item.fields["answer"] = letter
    return item
