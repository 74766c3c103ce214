"""Bytes to text for uploaded problem files: size, binary and archive checks, encodings.

Teachers save files from Excel, Word, Notepad and LMS exports, so the same problems arrive as UTF-8
with or without a byte-order mark, UTF-16 ("Unicode text" from Excel) or Windows-1252. Anything that
is not text (a ZIP such as .xlsx/.docx, a PDF, an image, an old .xls, a file with NUL bytes) is
refused here, with a message that says what the file seems to be and what to save it as instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from webapp.problems.importers.records import UploadRefused

# Leading bytes of the binary files teachers most often pick by mistake.
_MAGIC = [
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx or Word .docx file is one)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an old Microsoft Office file (.xls or .doc)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"{\\rtf", "a Rich Text (RTF) document"),
]
_SAVE_AS = (
    "Save it as CSV UTF-8 (Excel: File → Save As → CSV UTF-8) or as plain text, then upload that."
)

# C0 control characters other than tab, newline and carriage return: a text editor never writes them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class DecodedText:
    text: str  # newlines normalised to "\n"
    encoding: str  # what the bytes turned out to be, shown in the preview


def check_upload_size(data: bytes, *, max_bytes: int) -> None:
    """Refuse a file over the size limit (before anything else looks at it)."""
    if len(data) > max_bytes:
        raise UploadRefused(
            f"The file is {_size(len(data))}; the limit is {_size(max_bytes)}. "
            "Split it into smaller files."
        )


def decode_upload(data: bytes, *, max_bytes: int) -> DecodedText:
    """Decode an uploaded file, or raise `UploadRefused` saying why it is not a text file."""
    check_upload_size(data, max_bytes=max_bytes)
    if not data.strip():
        raise UploadRefused("The file is empty.")
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise UploadRefused(f"This file is {what}, not a text file. {_SAVE_AS}")

    text, encoding = _decode_text(data)
    # A byte-order mark left after decoding (a file saved twice with one, or files joined) is
    # invisible in an editor but made the header's first name "\ufeffstatement": "no statement
    # column". At the start of a file it means nothing else.
    text = text.lstrip("\ufeff")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    bad = _CONTROL.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise UploadRefused(
            f"This does not look like a text file: line {line} holds a control character "
            f"(code {ord(bad.group()):#04x}). {_SAVE_AS}"
        )
    return DecodedText(text=text, encoding=encoding)


def _decode_text(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xef\xbb\xbf"):
        return _strict(data[3:], "utf-8", "UTF-8 with BOM")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _strict(data, "utf-16", "UTF-16")
    if b"\x00" in data:
        raise UploadRefused(f"This file holds NUL bytes, so it is not a text file. {_SAVE_AS}")
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        # Notepad and Excel on Windows still write this by default.
        return data.decode("cp1252"), "Windows-1252"
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UploadRefused(
            f"Line {line} holds bytes that are neither UTF-8 nor Windows-1252 text. "
            "Save the file as UTF-8 and upload it again."
        ) from exc


def _strict(data: bytes, codec: str, label: str) -> tuple[str, str]:
    try:
        return data.decode(codec), label
    except UnicodeDecodeError as exc:
        raise UploadRefused(
            f"The file says it is {label} but is not valid {label} (byte {exc.start}). "
            "Save it as UTF-8 and upload it again."
        ) from exc


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"
