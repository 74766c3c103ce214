"""Join codes: how they are drawn and how what a student typed is read.

Eight characters from an alphabet without look-alikes (no 0/O, 1/I/L), so a code read aloud or
copied from a whiteboard still works; students may type it in any case, with spaces or dashes.
"""

from __future__ import annotations

import re
import secrets

JOIN_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
JOIN_CODE_LENGTH = 8


def normalise_join_code(code: str) -> str:
    """What a student typed ("demo-1234 ") as it is stored ("DEMO1234")."""
    return re.sub(r"[\s\-_]", "", code or "").upper()


def draw_join_code() -> str:
    return "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(JOIN_CODE_LENGTH))
