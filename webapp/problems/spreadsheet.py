"""CSV that opens safely in Excel, LibreOffice and Google Sheets (no formula injection).

A cell that starts with = + - @, a tab or a carriage return is run as a formula by spreadsheets,
so a student named "=HYPERLINK(…)" or a statement "-2+3" could turn an export into an attack.
Such text cells get a leading apostrophe, which spreadsheets show as plain text (OWASP's advice).
Numbers stay numbers. A UTF-8 byte-order mark makes Excel read accents correctly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def csv_bytes(header: list[str], rows: Iterable[Iterable[object]]) -> bytes:
    """A whole CSV document, every text cell made safe, as UTF-8 with a BOM."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(name) for name in header])
    for row in rows:
        writer.writerow([safe_cell(value) for value in row])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")
