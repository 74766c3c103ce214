"""The normalised identity of a problem statement, used to find duplicates.

Two statements that differ only in case, white space or trailing punctuation are the same problem.
"""

import hashlib
import re
import unicodedata

_SPACE = re.compile(r"\s+")


def normalise_statement(statement: str) -> str:
    text = unicodedata.normalize("NFKC", statement).casefold()
    text = _SPACE.sub(" ", text).strip()
    return text.rstrip(" .?!")


def problem_content_key(statement: str) -> str:
    return hashlib.sha256(normalise_statement(statement).encode("utf-8")).hexdigest()
