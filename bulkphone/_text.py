"""Text that leaves bulkphone: spreadsheet cells that can't run as formulas, and messages that
can't flood or take over a terminal.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel and
LibreOffice (OWASP "CSV injection"), so every CSV bulkphone writes puts an apostrophe before
it; reading a CSV back takes the apostrophe off, so a value survives the round trip exactly.
Numbers in Graph's own shape (`+44 7911123456`, `+1 4255550100x12`) are only digits, a space
and an `x`, can't call anything, and are written as they are.
"""

from __future__ import annotations

import re

__all__ = ["clip", "defuse", "defuse_row", "printable", "restore"]

_FORMULA_STARTS = frozenset("=+-@\t\r")
_RISKY_STARTS = _FORMULA_STARTS | {"'"}
_GRAPH_NUMBER = re.compile(r"\+\d{1,3} \d+(?:x\d+)?\Z")
# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a terminal shows.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
CLIP = 200  # characters of a value quoted in a message; the rest is counted, not shown


def _needs_apostrophe(value: str) -> bool:
    first = value.lstrip("'")[:1]
    return first in _FORMULA_STARTS and not (value[0] == "+" and _GRAPH_NUMBER.match(value))


def defuse(value):
    """A cell as written to CSV: formula-like text gets a leading apostrophe (so does text that
    already starts with apostrophes before such a character, so `restore` can undo it exactly)."""
    if value.__class__ is not str or value[:1] not in _RISKY_STARTS:
        return value
    if value[0] == "+":
        return value if _GRAPH_NUMBER.match(value) else "'" + value
    return "'" + value if _needs_apostrophe(value) else value


def defuse_row(row) -> list:
    """Every cell of a row defused; the common safe cell costs no call (reports have millions)."""
    return [defuse(value) if value.__class__ is str and value[:1] in _RISKY_STARTS else value for value in row]


def restore(value: str) -> str:
    """A cell as read back from a CSV bulkphone (or a careful person) defused."""
    if value[:1] == "'" and _needs_apostrophe(value[1:]):
        return value[1:]
    return value


def clip(text: str, limit: int = CLIP) -> str:
    """At most `limit` characters of a value quoted in a message, saying how much was left out."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def printable(text: str) -> str:
    """Text for a terminal: control characters and escape sequences shown as `\\x1b`, never obeyed."""
    text = str(text)
    if text.isascii() and text.isprintable():
        return text
    return _CONTROL.sub(lambda found: found.group().encode("unicode_escape").decode("ascii"), text)
