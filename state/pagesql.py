"""A page of leads as JSON written by SQLite itself (the SQL text; ``state.leadread``).

Text columns have TEXT affinity (a number given to them is stored as text), and
json_object quotes text exactly as orjson does. What could differ is checked per row
(``clean_sql``), and one row that fails sends the page down the row path: a datetime
not in the format ``state.leadread`` rewrites as text; a score that is not an integer
(floats print differently); tags or custom fields that are not an array or object
(``null`` reads as [] or {}), or whose text holds a token json() copies as stored
where the row path re-writes it: an escape, an exponent, ``-0``, an integer of 19
digits or more. orjson (state.store) and json.dumps (SQLAlchemy) write none of these
for plain text and numbers, and both write fractions as the shortest repr. The checks
read the text, so a string that only looks like such a token takes the row path:
slower, never different.
"""

from __future__ import annotations

import functools

from state.models import CONTENT_FIELDS

__all__ = ["LEAD_COLUMNS", "LEAD_COLUMNS_SQL", "SEPARATOR", "TIMES", "page_json_sql"]

#: The lead's datetime columns.
TIMES = ("created_at", "updated_at", "source_updated_at", "deleted_at")
#: The columns of a lead, in the order of its JSON object (contract §4).
LEAD_COLUMNS = ("id", "origin", "lead_id", *CONTENT_FIELDS, *TIMES)
#: ``LEAD_COLUMNS`` of table ``lead``, as a SELECT list.
LEAD_COLUMNS_SQL = ", ".join(f"lead.{c}" for c in LEAD_COLUMNS)
_JSON_COLUMNS = ("tags", "custom_fields")
#: Between a search page's objects; JSON text escapes control characters, so no
#: object holds one unless stored text does (``clean_sql`` sends such a page down the
#: row path).
SEPARATOR = "\x1e"
_SEPARATOR_SQL = f"char({ord(SEPARATOR)})"
_DIGITS_19 = "[0-9]" * 19


def _time_sql(c: str) -> str:
    return (
        f"CASE WHEN {c} IS NULL THEN NULL"
        f" WHEN substr({c}, 20) = '.000000'"
        f" THEN substr({c}, 1, 10) || 'T' || substr({c}, 12, 8) || 'Z'"
        f" ELSE substr({c}, 1, 10) || 'T' || substr({c}, 12) || 'Z' END"
    )


def _value_sql(row: str, column: str) -> str:
    if column in TIMES:
        return _time_sql(f"{row}.{column}")
    if column in _JSON_COLUMNS:
        return f"json({row}.{column})"
    return f"{row}.{column}"


def _object_sql(row: str) -> str:
    """The lead's JSON object, from the ``LEAD_COLUMNS`` of table or alias ``row``."""
    pairs = ", ".join(f"'{c}', {_value_sql(row, c)}" for c in LEAD_COLUMNS)
    return f"json_object({pairs})"


def _clean_sql(row: str) -> str:
    """1 when ``_object_sql`` writes the bytes the row path would, else 0."""
    text = f"({row}.tags || {row}.custom_fields)"
    # Most tags and custom fields hold no digit nor escape: one pass over the text,
    # and the token checks only for the others.
    plain = f"NOT {text} GLOB '*[0-9\\' || {_SEPARATOR_SQL} || ']*'"
    checked = " AND ".join(
        [
            f"instr({text}, '\\') = 0 AND instr({text}, {_SEPARATOR_SQL}) = 0",
            f"NOT {text} GLOB '*[0-9][eE][-+0-9]*'",
            f"NOT {text} GLOB '*[[:, ]-0[]}}, ]*'",
            f"NOT {text} GLOB '*{_DIGITS_19}*'",
        ]
    )
    rules = [
        *(
            f"({row}.{c} IS NULL OR {row}.{c} GLOB '????-??-?? ??:??:??.??????')"
            for c in TIMES
        ),
        f"typeof({row}.score) IN ('integer', 'null')",
        f"{row}.tags GLOB '[[]*' AND {row}.custom_fields GLOB '{{*'",
        f"(({plain}) OR ({checked}))",
    ]
    return f"CASE WHEN {' AND '.join(rules)} THEN 1 ELSE 0 END"


# A statement that sorts and limits its rows before it reads a lead's columns (a
# search, a lookup by id) writes each lead's JSON in its own select list: that copies
# one value per row out of it instead of all the lead's columns. A list sorts the
# lead rows themselves: there, every row the sort looks at would be written, so the
# JSON is written by an aggregate over its page.
_IN_PLACE = f"{_object_sql('lead')} AS obj, {_clean_sql('lead')} AS clean"


@functools.lru_cache(maxsize=256)
def page_json_sql(page_sql: str, *, search: bool, in_place: bool) -> str:
    """One row: the page's objects as JSON and 1 if all of them are clean, else 0.

    ``page_sql`` selects ``LEAD_COLUMNS_SQL`` and ends in ``ORDER BY ... LIMIT``. A
    search's objects are separated by ``SEPARATOR``, for their match_field; any other
    page is a JSON array. ``in_place``: the statement reads only its page's rows.
    """
    if in_place and page_sql.count(LEAD_COLUMNS_SQL) == 1:
        inner = page_sql.replace(LEAD_COLUMNS_SQL, _IN_PLACE)
        objects, clean = "hit.obj", "min(hit.clean)"
    else:
        inner = page_sql
        objects, clean = _object_sql("hit"), f"min({_clean_sql('hit')})"
    # The aggregate takes the rows in the order the subquery gives them: its ORDER BY
    # comes with a LIMIT, so SQLite can neither drop nor flatten it.
    if search:
        agg = f"group_concat({objects}, {_SEPARATOR_SQL}), {clean}"
    else:
        agg = f"'[' || coalesce(group_concat({objects}, ','), '') || ']', {clean}"
    return f"SELECT {agg} FROM ({inner}) AS hit"  # noqa: S608 # constant SQL
