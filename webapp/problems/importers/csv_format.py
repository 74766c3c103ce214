"""CSV (and Excel's semicolon- or tab-separated variants) to raw items, one row per problem.

The first non-empty row names the columns; any spelling `validation.canonical_field` knows is
accepted ("Question", "Answer type", "Option A"…). The delimiter is whichever of comma, semicolon
and tab makes the header name the most known columns, because Excel in many European locales
saves "CSV" with semicolons. Each item remembers the line where its row starts, so a statement
spanning several lines inside quotes still gets the right line number.
"""

from __future__ import annotations

import csv
import io

from webapp.problems.importers.records import Issue, ParsedFile, RawItem, UploadRefused
from webapp.problems.importers.validation import canonical_field

_DELIMITERS = [",", ";", "\t"]
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
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)

    header: list[str | None] | None = None
    unknown: list[str] = []
    items: list[RawItem] = []
    while True:
        start_line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise UploadRefused(
                f"Line {start_line}: the file is not valid CSV ({_explain(exc)}).",
                details=[f"Line {start_line}: {_explain(exc)}"],
            ) from exc
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [canonical_field(cell) for cell in row]
            unknown = [cell.strip() for cell, name in zip(row, header, strict=True) if name is None]
            if "statement" not in header:
                raise UploadRefused(
                    f"Line {start_line}: no “statement” (or “question”) column. {_TEMPLATE_HINT}"
                )
            continue
        if len(items) >= max_items:
            raise UploadRefused(
                f"The file holds more than {max_items:,} problems; split it into smaller files."
            )
        items.append(_item(row, header, number=len(items) + 1, line=start_line))

    if header is None:
        raise UploadRefused("The file is empty.")
    warnings = []
    if unknown:
        names = ", ".join(f"“{name}”" for name in unknown if name) or "(unnamed)"
        warnings.append(f"These columns are not Ring Tutor fields and were ignored: {names}.")
    if delimiter != ",":
        warnings.append(
            f"Columns are separated by {'semicolons' if delimiter == ';' else 'tabs'}; read as such."
        )
    return ParsedFile(format="csv", items=items, file_warnings=warnings)


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
        cells = next(csv.reader([header_line], delimiter=delimiter), [])
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
