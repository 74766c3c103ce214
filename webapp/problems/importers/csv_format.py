"""CSV (and Excel's semicolon- or tab-separated variants) to raw items, one row per problem.

The first non-empty row names the columns; any spelling `validation.canonical_field` knows is
accepted ("Question", "Answer type", "Option A"…). The delimiter is whichever of comma, semicolon
and tab makes the header name the most known columns, because Excel in many European locales
saves "CSV" with semicolons. Each item remembers the line where its row starts, so a statement
spanning several lines inside quotes still gets the right line number. A row that is not valid CSV
(an unclosed quote) is an item with an error on its own line; the rows after it are read as usual.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from webapp.problems.importers.records import Issue, ParsedFile, RawItem, UploadRefused
from webapp.problems.importers.validation import canonical_field

_DELIMITERS = [",", ";", "\t"]
# The unknown column names a file's warning lists.
_UNKNOWN_LISTED = 10
_TEMPLATE_HINT = (
    "The first line must name the columns, for example: statement,answer,answer_type,choices. "
    "Download the CSV template from the upload page to start from one that works."
)


def parse_csv(text: str, *, max_items: int) -> ParsedFile:
    lines = text.split("\n")
    header_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        raise UploadRefused("The file is empty.")
    delimiter = _pick_delimiter(lines[header_index])

    cells, problem = _read_row(lines[header_index], delimiter)
    if problem is not None:
        raise UploadRefused(
            f"Line {header_index + 1}: the first line is not valid CSV ({problem}). "
            f"{_TEMPLATE_HINT}",
            details=[f"Line {header_index + 1}: {problem}"],
        )
    header = [canonical_field(cell) for cell in cells]
    unknown = [cell.strip() for cell, name in zip(cells, header, strict=True) if name is None]
    if "statement" not in header:
        raise UploadRefused(
            f"Line {header_index + 1}: no “statement” (or “question”) column. {_TEMPLATE_HINT}"
        )
    items: list[RawItem] = []
    for start_line, row, problem in _records(lines, header_index + 1, delimiter, len(header)):
        if len(items) >= max_items:
            raise UploadRefused(
                f"The file holds more than {max_items:,} problems; split it into smaller files."
            )
        number = len(items) + 1
        if problem is not None:
            # One broken row is one item with an error: the rows after it are still read.
            items.append(
                RawItem(
                    number=number,
                    line=start_line,
                    fields={},
                    issues=[Issue("", f"This line is not valid CSV: {problem}.")],
                )
            )
            continue
        items.append(_item(row, header, number=number, line=start_line))

    warnings = []
    if unknown:
        # The first few names only: every one of a header's 400,000 unknown columns was named,
        # a 5 MB warning stored with the upload and sent with every view of its preview.
        named = [name for name in unknown if name]
        names = ", ".join(f"“{name}”" for name in named[:_UNKNOWN_LISTED]) or "(unnamed)"
        if len(named) > _UNKNOWN_LISTED:
            names += f" and {len(named) - _UNKNOWN_LISTED:,} more"
        warnings.append(f"These columns are not Ring Tutor fields and were ignored: {names}.")
    if delimiter != ",":
        warnings.append(
            f"Columns are separated by {'semicolons' if delimiter == ';' else 'tabs'}; read as such."
        )
    return ParsedFile(format="csv", items=items, file_warnings=warnings)


def _records(
    lines: list[str], first: int, delimiter: str, width: int
) -> Iterator[tuple[int, list[str], str | None]]:
    """(line number, cells, problem) for each non-empty row; problem is None for a good row.

    A row ends at the first line where its double quotes are balanced, so a quoted statement may
    span lines. A row that cannot be read (a quote never closed, or closed only by a quote of a
    later row, which glues rows into one with the wrong number of values) is reported on its first
    line alone,
    and reading starts again at the next line: one broken line costs one row, not the file.
    """
    index = first
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        end = index
        quotes = lines[index].count('"')
        while quotes % 2 and end + 1 < len(lines):
            end += 1
            quotes += lines[end].count('"')
        row, problem = _read_row("\n".join(lines[index : end + 1]), delimiter)
        if quotes % 2 or (end > index and problem is None and len(row) != width):
            problem = "a double quote opened here is never closed"
        if problem is not None and end > index:
            # Spanning lines made it worse: report this line alone and go on with the next.
            row, problem = _read_row(lines[index], delimiter)
            problem = problem or "a double quote opened here is never closed"
            end = index
        yield index + 1, row, problem
        index = end + 1


def _read_row(text: str, delimiter: str) -> tuple[list[str], str | None]:
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True))
    except csv.Error as exc:
        return [], _explain(exc)
    if len(rows) != 1:
        return [], "a double quote opened here is never closed"
    return rows[0], None


def _item(row: list[str], header: list[str | None], *, number: int, line: int) -> RawItem:
    item = RawItem(number=number, line=line, fields={})
    if len(row) > len(header):
        extra = row[len(header) :]
        if any(cell.strip() for cell in extra):
            item.issues.append(
                Issue(
                    "",
                    f"This row has {len(row)} values but the first line names {len(header)} "
                    "columns. A comma inside a statement needs the statement in double quotes.",
                )
            )
    for name, cell in zip(header, row, strict=False):
        if name is None:
            continue
        if name in item.fields and item.fields[name] not in ("", None):
            if cell.strip():
                item.issues.append(Issue("", f"Two columns give the {name.replace('_', ' ')}."))
            continue
        item.fields[name] = cell
    return item


def _pick_delimiter(header_line: str) -> str:
    def known_columns(delimiter: str) -> int:
        # A header too long for one cell under this delimiter names no column with it. Uncaught,
        # csv's field limit raised out of the reader ("unexpected error" for a big file, on
        # every try); the header is then read, and refused if need be, by `_read_row`.
        try:
            cells = next(csv.reader([header_line], delimiter=delimiter), [])
        except csv.Error:
            return -1
        return sum(canonical_field(cell) is not None for cell in cells)

    return max(_DELIMITERS, key=lambda d: (known_columns(d), d == ","))


def _explain(exc: csv.Error) -> str:
    message = str(exc)
    if "unexpected end of data" in message:
        return "a double quote opened here is never closed"
    if "expected after" in message:
        return 'a double quote inside a quoted value must be doubled, like ""'
    if "field larger than field limit" in message:
        return "one value is far too long"
    return message
