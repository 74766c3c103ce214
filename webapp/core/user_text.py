"""User text on its way in: the one normalisation every typed or uploaded text goes through.

Students type problems, answers and feedback; teachers type or upload statements, reference
answers, choices, solutions, tags, set titles and descriptions, file names and class names; admins
give promotion reasons. All of it passes `normalise_user_text` (or, where the caller strips and
bounds the text itself, `remove_bidi_controls`) before it is checked or stored, and `is_blank`
decides whether what is left shows anything.

Explicit bidirectional controls are removed, not refused. The embeddings and overrides (U+202A LRE,
U+202B RLE, U+202D LRO, U+202E RLO and their terminator U+202C PDF) and the isolates (U+2066 LRI,
U+2067 RLI, U+2068 FSI and their terminator U+2069 PDI) carry no content: they only tell a browser to
draw the characters around them in another order than the one they are stored in. The model, the
answer checker, duplicate detection and search all read the stored (logical) order, so a statement
whose override makes it show "x = 21" while it holds "x = 12" is read as 12 by everything but the
student's eyes ("Trojan Source"). Removing the controls makes what is shown what is read, and it
changes nothing any reader of the text relies on; refusing them instead would turn away legitimate
right-to-left text pasted from word processors and web pages, which may wrap Arabic and Hebrew runs
in embeddings (RLE … PDF) that are not needed once the page isolates each user text (`<bdi>` or
`dir="auto"`: it takes its direction from its own first strong letter). The marks U+200E LRM,
U+200F RLM and U+061C ALM are kept: they are invisible strong characters rather than controls, they
open or close no embedding, and right-to-left writers need them. The upload preview says which
fields had controls removed (`importers.validation`); typed text loses them without a message,
since every character the user meant to type is kept. Rows stored before all this lose them in data
migrations (`remove_bidi_controls_from_rows`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

# The explicit embedding, override and isolate controls of the Unicode bidirectional algorithm
# (UAX #9, section 2): U+202A-U+202E and U+2066-U+2069. The same class serves Python's `re` and
# PostgreSQL's `~` (`remove_bidi_controls_from_rows`).
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")

# Characters that show nothing on their own: controls, format characters (zero-width space and
# joiners, direction marks, the byte-order mark), separators and combining marks.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"})


def bidi_controls_in(text: str) -> set[str]:
    """The distinct bidirectional controls `text` holds (empty for almost every text)."""
    return set(_BIDI_CONTROL.findall(text))


def remove_bidi_controls(text: str) -> str:
    """`text` without its explicit bidirectional controls (every other character kept, in order;
    a text without any is returned as it is)."""
    return _BIDI_CONTROL.sub("", text)


def without_bidi_controls(value: Any) -> Any:
    """A text, or a list of texts (an item's choices or tags), without the controls; any other
    value as it is."""
    if isinstance(value, str):
        return remove_bidi_controls(value)
    if isinstance(value, list):
        return [without_bidi_controls(item) for item in value]
    return value


def normalise_user_text(text: str) -> str:
    """The text as stored: bidirectional controls removed, then white space stripped from both
    ends (the controls come first, so " \u202e 5 " is "5")."""
    return remove_bidi_controls(text).strip()


def is_blank(text: str) -> bool:
    """True when `text` shows nothing. `str.strip()` keeps zero-width and format characters, so a
    statement of "\u200b\u200b" passed the empty check and was queued for the model as a problem
    the student saw as blank; linear in the text, which the forms bound first."""
    return all(unicodedata.category(char) in _INVISIBLE_CATEGORIES for char in text)


def remove_bidi_controls_from_rows(
    model: Any,
    text_fields: tuple[str, ...],
    json_fields: tuple[str, ...] = (),
    *,
    also: Callable[[Any], tuple[str, ...]] | None = None,
) -> int:
    """Remove the controls from rows stored before the services removed them on the way in (the
    data migrations call it with their historical models). Only rows that hold one are read, by a
    regular expression in the database, so a big table costs one scan; `json_fields` are lists of
    strings (choices, tags). `also(row)` updates fields that derive from the cleaned text and
    names them (a problem's duplicate key). Returns the number of rows changed."""
    from django.db.models import Q, TextField
    from django.db.models.functions import Cast

    holds_one = Q()
    as_text = {}
    for name in text_fields:
        holds_one |= Q(**{f"{name}__regex": _BIDI_CONTROL.pattern})
    for name in json_fields:
        as_text[f"{name}_as_text"] = Cast(name, TextField())
        holds_one |= Q(**{f"{name}_as_text__regex": _BIDI_CONTROL.pattern})
    changed = 0
    for row in model.objects.annotate(**as_text).filter(holds_one).order_by("pk").iterator():
        for name in (*text_fields, *json_fields):
            setattr(row, name, without_bidi_controls(getattr(row, name)))
        derived = also(row) if also is not None else ()
        row.save(update_fields=[*text_fields, *json_fields, *derived])
        changed += 1
    return changed
