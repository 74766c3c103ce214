"""The records every importer produces: raw items with their line, issues, and a refused file.

A parser turns text into `RawItem`s (field name → raw value, plus the line or item number where the
item starts) without judging the values; `validation.py` then checks each item the same way
whatever the format. A file that cannot be read at all (binary, too big, broken JSON, hostile
content) raises `UploadRefused`, whose `details` name the lines so the teacher can fix them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from webapp.core.errors import ServiceError


@dataclass(frozen=True)
class Issue:
    """One thing wrong (or worth a warning) with an item: the field it is about and why."""

    field: str  # the teacher-facing field name ("answer", "choices"), "" for the whole item
    message: str


@dataclass
class RawItem:
    """One problem as read from a file, before its values are checked."""

    number: int  # 1-based position of the item in the file
    line: int | None  # the line where the item starts (None when the format has no lines)
    fields: dict[str, object]
    # Problems the parser itself found (GIFT syntax, an Aiken key that is not an option, ...).
    issues: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    @property
    def where(self) -> str:
        """Where the item is, in the words shown to the teacher: "Line 12" or "Item 3"."""
        return f"Line {self.line}" if self.line is not None else f"Item {self.number}"


@dataclass
class ParsedFile:
    """What a parser read: the items, warnings about the whole file, and set metadata if given."""

    format: str
    items: list[RawItem]
    file_warnings: list[str] = field(default_factory=list)
    title: str = ""
    description: str = ""


class UploadRefused(ServiceError):
    """The whole file is refused: nothing is staged or saved. `details` are "Line N: ..." lines."""

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message, code="upload_refused", status=400)
        self.details = details or []
