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
since every character the user meant to type is kept.
"""

from __future__ import annotations

import re
import unicodedata

# The explicit embedding, override and isolate controls of the Unicode bidirectional algorithm
# (UAX #9, section 2): U+202A-U+202E and U+2066-U+2069.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_BIDI_CONTROL = re.compile("[\u202a-\u202e\u2066-\u2069]")

# Characters that show nothing on their own: controls, format characters (zero-width space and
# joiners, direction marks, the byte-order mark), separators and combining marks.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"})


def has_bidi_controls(text: str) -> bool:
    """True when `text` holds an explicit embedding, override or isolate control."""
    return _BIDI_CONTROL.search(text) is not None


def bidi_controls_in(text: str) -> set[str]:
    """The distinct bidirectional controls `text` holds (empty for almost every text)."""
    if not has_bidi_controls(text):
        return set()
    return set(_BIDI_CONTROL.findall(text))


def remove_bidi_controls(text: str) -> str:
    """`text` without its explicit bidirectional controls (every other character kept, in order)."""
    if not has_bidi_controls(text):
        return text
    return _BIDI_CONTROL.sub("", text)


def normalise_user_text(text: str) -> str:
    """The text as stored: bidirectional controls removed, then white space stripped from both
    ends (the controls come first, so " \u202e 5 " is "5")."""
    return remove_bidi_controls(text).strip()


def is_blank(text: str) -> bool:
    """True when `text` shows nothing. `str.strip()` keeps zero-width and format characters, so a
    statement of "\u200b\u200b" passed the empty check and was queued for the model as a problem
    the student saw as blank; linear in the text, which the forms bound first."""
    return all(unicodedata.category(char) in _INVISIBLE_CATEGORIES for char in text)
