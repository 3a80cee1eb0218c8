"""The raw hash of a record under one mapping: to skip what did not change."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

__all__ = ["raw_hash", "raw_hashes", "row_hashes"]


def raw_hash(fingerprint: str, raw: dict[str, Any]) -> str:
    """Hash of a raw record under one mapping: equal means mapping it again is moot.

    A flat record of strings (a CSV row) is hashed as its keys and values joined by a
    separator, unless a value holds the separator; anything else (an API's nested
    record) as its JSON in the source's key order, by orjson. A source that reorders
    keys only costs a needless re-map (the content hash prevents a spurious update).
    """
    return raw_hashes(fingerprint, [raw])[0]


def raw_hashes(fingerprint: str, raws: Iterable[dict[str, Any]]) -> list[str]:
    """``raw_hash`` of many records (one loop: a page costs no call per record)."""
    sep, blake, dumps = _SEP, hashlib.blake2b, orjson.dumps
    nested = f"{fingerprint}\n".encode()
    out = []
    for raw in raws:
        try:
            values = sep.join(raw.values())
        except TypeError:  # not all strings: a nested record
            values = None
        if values is not None and values.count(sep) == len(raw) - 1:
            data = f"{_flat_head(fingerprint, raw)}{values}".encode()
        else:
            try:  # orjson: several times cheaper than repr for a nested record
                data = nested + dumps(raw)
            except TypeError:  # what orjson refuses (ints over 64 bits, odd types)
                data = nested + repr(raw).encode()
        out.append(blake(data, digest_size=20).hexdigest())
    return out


def row_hashes(
    fingerprint: str, keys: Sequence[str], rows: Iterable[Sequence[str]]
) -> list[str]:
    """``raw_hashes`` of the records ``dict(zip(keys, row))``, without their dicts.

    For flat rows of strings under unique keys (what ``FlatRecords`` holds): the
    same hashes, at a fraction of the cost, since no dict is built.
    """
    sep, blake = _SEP, hashlib.blake2b
    head = _flat_head(fingerprint, keys)
    most = len(keys) - 1
    out = []
    for row in rows:
        values = sep.join(row)
        if values.count(sep) == most:
            out.append(blake(f"{head}{values}".encode(), digest_size=20).hexdigest())
        else:  # a value holds the separator: hash it as ``raw_hashes`` would
            out.append(raw_hashes(fingerprint, [dict(zip(keys, row, strict=True))])[0])
    return out


def _flat_head(fingerprint: str, keys: Iterable[str]) -> str:
    # what the hash of a flat record covers before its joined values
    return f"{fingerprint}\x1e{_SEP.join(keys)}\x1e"


_SEP = "\x1f"
