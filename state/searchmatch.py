"""Which field a search hit matched (``match_field``), and the query's words.

The same folding and tokens as the SQLite index (FTS5 ``unicode61`` with
``remove_diacritics``): a query word matches a field when it starts one of its words.
Decided on a page's rows, in Python (``state.leadread``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["match_field", "match_fields", "query_words"]

_WORD = re.compile(r"[^\W_]+")
_FIELDS = (
    ("email", "email"),
    ("name", "name"),
    ("first_name", "name"),
    ("last_name", "name"),
    ("company", "company"),
)


def _fold(text: str) -> str:
    # The same folding as FTS5's unicode61 with remove_diacritics: "José" is "jose".
    if text.isascii():  # nothing to fold: skip the costly normalisation
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def query_words(q: str) -> list[str]:
    """The words of a search query, lower-cased and without diacritics."""
    return _WORD.findall(_fold(q))


def _field_words(value: Any) -> list[str]:
    if value is None or isinstance(value, dict):
        return []
    if isinstance(value, list):
        return [w for item in value for w in _field_words(item)]
    return _WORD.findall(_fold(str(value)))


@functools.lru_cache(maxsize=4096)  # compiling costs more than a short search
def _word_starts(words: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    # A query word prefixes a token where it follows no token character: words are
    # made of token characters only.
    return tuple(re.compile(rf"(?<![^\W_]){re.escape(w)}") for w in words)


def _string_hits(pairs: tuple[tuple[str, re.Pattern[str]], ...], value: str) -> int:
    folded = value.lower() if value.isascii() else _fold(value)
    # A word must occur before it can start a token: the substring test (cheap)
    # spares the pattern (dear) for the fields that do not hold the word at all.
    hits = 0
    for word, start in pairs:
        if word in folded and start.search(folded):
            hits += 1
    return hits


class _Matcher:
    """``match_field`` for one query, its words and patterns looked up once."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = tuple(words)
        self.pairs = tuple(zip(self.words, _word_starts(self.words), strict=True))

    def hits(self, value: Any) -> int:
        """How many query words ``value`` matches (None: none)."""
        if value is None:
            return 0
        if isinstance(value, str):  # the common case
            return _string_hits(self.pairs, value)
        tokens = _field_words(value)  # a number, a list
        return sum(1 for w in self.words if any(t.startswith(w) for t in tokens))

    def best(self, lead: Mapping[str, Any]) -> str:
        best, best_hits, every = "name", 0, len(self.words)
        pairs = self.pairs
        for field, label in _FIELDS:
            value = lead.get(field)
            if value is None:
                continue
            if value.__class__ is str:  # the common case, without two calls a field
                hits = _string_hits(pairs, value)
            else:
                hits = self.hits(value)
            if hits > best_hits:
                best, best_hits = label, hits
                if hits == every:
                    return best
        for key, value in (lead.get("custom_fields") or {}).items():
            hits = self.hits(value)
            if hits > best_hits:
                best, best_hits = f"custom_fields.{key}", hits
                if hits == every:
                    return best
        return best


def match_field(lead: Mapping[str, Any], words: Iterable[str]) -> str:
    """The field a search hit matched: the one matching most query words, by priority.

    Priority: email, name (first/last name count as name), company, then custom fields
    as ``custom_fields.<key>``.
    """
    return _Matcher(words).best(lead)


def match_fields(leads: Iterable[Mapping[str, Any]], words: Iterable[str]) -> list[str]:
    """``match_field`` of each lead of a page, for the same query words."""
    best = _Matcher(words).best
    return [best(lead) for lead in leads]
