"""Counts in messages a person reads: `count(1, "record")` is "1 record", `count(3, "entry")` is "3 entries"."""

from __future__ import annotations


def plural(noun: str) -> str:
    """The English plural of the nouns these messages count (the last word is inflected: "keyed hash")."""
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(("s", "sh", "ch", "x")) else "s")


def count(n: int, noun: str) -> str:
    """`n` and the noun, singular for exactly one."""
    return f"{n} {noun if n == 1 else plural(noun)}"
