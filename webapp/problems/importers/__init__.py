"""Reading a teacher's problem file: CSV, JSON, JSONL, Moodle GIFT or Aiken, in one call.

`read_problem_file` decodes the bytes (`decoding`), picks the format (from the chosen format, else
the file name, else the content), parses it into raw items (one module per format), and checks
every item the same way (`validation`). It never touches the database: duplicates against stored
problems and staging the preview are the services' job. A file that cannot be read, or that holds
hostile content anywhere (script tags, spreadsheet formulas), raises `UploadRefused` naming each
line, so nothing of it is ever stored.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from webapp.core.user_text import bidi_controls_in, normalise_user_text
from webapp.problems.importers.aiken import parse_aiken
from webapp.problems.importers.csv_format import parse_csv
from webapp.problems.importers.decoding import decode_upload
from webapp.problems.importers.gift import parse_gift
from webapp.problems.importers.json_format import parse_json, parse_jsonl
from webapp.problems.importers.records import Issue, ParsedFile, RawItem, UploadRefused
from webapp.problems.importers.validation import (
    ReferenceWait,
    ValidatedItem,
    check_reference,
    validate_item,
)

__all__ = [
    "FORMAT_CHOICES",
    "Issue",
    "ParsedFile",
    "PROGRESS_EVERY",
    "RawItem",
    "ReadFile",
    "UploadRefused",
    "ValidatedItem",
    "detect_format",
    "read_problem_file",
]

FORMAT_CHOICES = [
    ("csv", "CSV (spreadsheet)"),
    ("json", "JSON"),
    ("jsonl", "JSONL (one JSON problem per line)"),
    ("gift", "Moodle GIFT"),
    ("aiken", "Moodle Aiken"),
]
_PARSERS = {
    "csv": parse_csv,
    "json": parse_json,
    "jsonl": parse_jsonl,
    "gift": parse_gift,
    "aiken": parse_aiken,
}
_EXTENSIONS = {
    "csv": "csv",
    "tsv": "csv",
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "gift": "gift",
    "aiken": "aiken",
}
# Whitespace inside one line only ([^\S\n]) and possessive quantifiers: "^\s*" under MULTILINE
# re-scanned every following blank line from every line start, quadratic on a file of newlines.
_AIKEN_ANSWER = re.compile(
    r"^[^\S\n]*+ANSWER[^\S\n]*+:[^\S\n]*+[A-Za-z][^\S\n]*+$", re.MULTILINE | re.IGNORECASE
)
_GIFT_ANSWER = re.compile(r"\{\s*+(?:[~=#]|T\s*+\}|F\s*+\}|TRUE\s*+\}|FALSE\s*+\})", re.IGNORECASE)
# More hostile findings than this are summarised rather than listed one by one.
_MAX_LISTED = 50
# `read_problem_file` reports its progress after every this many checked items.
PROGRESS_EVERY = 250
# The clock of `slow_checks_budget_s` (a test replaces it).
_clock = time.monotonic


@dataclass
class ReadFile:
    format: str
    encoding: str
    items: list[ValidatedItem]
    file_warnings: list[str] = field(default_factory=list)
    title: str = ""
    description: str = ""
    pending_checks: int = 0  # symbolic answers left for `validation.check_reference`


def detect_format(filename: str, text: str) -> str | None:
    """The format named by the file's extension, else guessed from its content, else None."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension in _EXTENSIONS:
        return _EXTENSIONS[extension]
    stripped = text.lstrip()
    if stripped.startswith("["):
        return "json"
    if stripped.startswith("{"):
        lines = [line for line in stripped.split("\n") if line.strip()]
        if len(lines) > 1 and all(line.lstrip().startswith("{") for line in lines[:3]):
            return "jsonl"
        return "json"
    if _AIKEN_ANSWER.search(text) and not _GIFT_ANSWER.search(text):
        return "aiken"
    if _GIFT_ANSWER.search(text):
        return "gift"
    first = stripped.split("\n", 1)[0]
    if "," in first or ";" in first or "\t" in first:
        return "csv"
    return None


def read_problem_file(
    data: bytes,
    *,
    filename: str,
    format: str = "auto",
    default_domain: str = "math",
    max_bytes: int,
    max_items: int,
    max_slow_checks: int | None = None,
    slow_checks_budget_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReadFile:
    """Decode, parse and check a whole file; raise `UploadRefused` if it cannot be imported at all.

    Symbolic reference answers are parsed by the verifier here when there are at most
    `max_slow_checks` of them (None: always); otherwise they are left pending, counted in
    `pending_checks`, for a background task; so are those left when checking them has taken
    `slow_checks_budget_s` seconds (None: no limit), or once no checker process is free at once
    (with `max_slow_checks`). `progress(done, total)` is called once the file is parsed and after
    every `PROGRESS_EVERY` checked items (the background reader saves it for the preview; an
    exception it raises stops the reading).
    """
    decoded = decode_upload(data, max_bytes=max_bytes)
    chosen = format if format in _PARSERS else detect_format(filename, decoded.text)
    if chosen is None:
        raise UploadRefused(
            "Ring Tutor cannot tell which format this file is in. Choose the format on the upload "
            "page, or name the file .csv, .json, .jsonl, .gift or .aiken."
        )
    parsed = _PARSERS[chosen](decoded.text, max_items=max_items)
    _remove_bidi_controls_from_metadata(parsed)
    total = len(parsed.items)
    if progress is not None:
        progress(0, total)
    items = []
    for raw in parsed.items:
        items.append(validate_item(raw, default_domain=default_domain, defer_slow_checks=True))
        if progress is not None and len(items) % PROGRESS_EVERY == 0:
            progress(len(items), total)
    _refuse_hostile(items)
    pending = [item for item in items if item.data.get("reference_pending")]
    if max_slow_checks is None or len(pending) <= max_slow_checks:
        # A count alone did not bound the time: each check may run to the checker's limit (1 s),
        # so 150 answers that each run out of time held the upload request for 150 s (a 16 KiB
        # file). Past the budget, the answers left stay pending for the background task.
        # Each check takes a checker process only if one is free at once ("if_free"): the
        # checkers are shared with students' answers, and a teacher's upload that waited its turn
        # (it used to wait up to 60 s a check) held the request, and with several uploads at once
        # kept the checkers from students. Once none is free, the rest go to the background too.
        # Without `max_slow_checks` (a script, a test) every answer is read here, however long.
        wait: ReferenceWait = "background" if max_slow_checks is None else "if_free"
        deadline = None if slow_checks_budget_s is None else _clock() + slow_checks_budget_s
        left: list[ValidatedItem] = []
        for item in pending:
            if left or (deadline is not None and _clock() >= deadline):
                left.append(item)
                continue
            warning = check_reference(item.data, wait=wait)
            if item.data.get("reference_pending"):  # no checker was free
                left.append(item)
            elif warning:
                item.warnings.append(warning)
        pending = left
    if not items:
        raise UploadRefused("The file holds no problems.")
    return ReadFile(
        format=chosen,
        encoding=decoded.encoding,
        items=items,
        file_warnings=parsed.file_warnings,
        title=parsed.title,
        description=parsed.description,
        pending_checks=len(pending),
    )


def _remove_bidi_controls_from_metadata(parsed: ParsedFile) -> None:
    """The set's title and description as the file gives them (JSON), without direction controls
    (webapp.core.user_text), and a file warning that says so; the items' fields are cleaned, with
    their own warnings, by `validate_item`."""
    controls = bidi_controls_in(parsed.title) | bidi_controls_in(parsed.description)
    if not controls:
        return
    parsed.title = normalise_user_text(parsed.title)
    parsed.description = normalise_user_text(parsed.description)
    codes = ", ".join(f"U+{ord(char):04X}" for char in sorted(controls))
    parsed.file_warnings.append(
        f"Invisible direction controls ({codes}) were removed from the set's title or "
        "description: they made the text show in a different order from the one it is stored in."
    )


def _refuse_hostile(items: list[ValidatedItem]) -> None:
    findings = [
        f"{item.where}, {issue.field}: {issue.message}" for item in items for issue in item.hostile
    ]
    if not findings:
        return
    listed = findings[:_MAX_LISTED]
    if len(findings) > _MAX_LISTED:
        listed.append(f"… and {len(findings) - _MAX_LISTED} more.")
    raise UploadRefused(
        f"This file was refused: {len(findings)} place(s) hold content that could run in a browser "
        "or a spreadsheet (HTML scripts, formulas). Nothing was imported. Remove it and upload again.",
        details=listed,
    )
