"""Full-text search over live leads: names, email, company and custom field values.

SQLite: a contentless FTS5 table ``lead_search`` (rowid = the lead's rowid) kept in sync
by triggers on ``lead``. Only live leads are indexed; a tombstone is an UPDATE that
removes the row from the index. The triggers fire only when an indexed column or
``deleted_at`` really changes, so an unchanged upsert costs nothing.

PostgreSQL: a partial GIN expression index ``ix_lead_search`` over the tsvector that
``state.leadsearch`` queries (``simple`` configuration: no stemming, no extension).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Keep in step with state/leadsearch.py (PG_DOCUMENT, SQLITE_COLUMNS).
_PG_DOCUMENT = (
    "to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(first_name, '')"
    " || ' ' || coalesce(last_name, '') || ' ' || coalesce(company, '') || ' '"
    " || translate(coalesce(email, ''), '@._+-', '     '))"
    " || jsonb_to_tsvector('simple', custom_fields, '[\"string\", \"numeric\"]')"
)
_COLUMNS = "email, name, first_name, last_name, company, custom"


def _values(row: str) -> str:
    custom = (
        f"(SELECT group_concat(value, ' ') FROM json_tree({row}.custom_fields)"  # noqa: S608 # constant SQL
        " WHERE type IN ('text', 'integer', 'real'))"
    )
    return (
        f"{row}.rowid, {row}.email, {row}.name, {row}.first_name, {row}.last_name,"
        f" {row}.company, {custom}"
    )


def _changed() -> str:
    cols = ("email", "name", "first_name", "last_name", "company", "custom_fields")
    diffs = " OR ".join(f"old.{c} IS NOT new.{c}" for c in cols)
    return f"({diffs} OR (old.deleted_at IS NULL) <> (new.deleted_at IS NULL))"


def _sqlite_upgrade() -> None:
    op.execute(
        f"CREATE VIRTUAL TABLE lead_search USING fts5({_COLUMNS}, content='',"
        " tokenize='unicode61 remove_diacritics 2')"
    )
    # A contentless table deletes a row by being handed the exact values it indexed:
    # old.* are those values, since a row is indexed iff it is live.
    op.execute(
        "CREATE TRIGGER lead_search_ai AFTER INSERT ON lead"  # noqa: S608 # constant SQL
        " WHEN new.deleted_at IS NULL BEGIN"
        f" INSERT INTO lead_search(rowid, {_COLUMNS}) VALUES ({_values('new')});"
        " END"
    )
    op.execute(
        "CREATE TRIGGER lead_search_ad AFTER DELETE ON lead"  # noqa: S608 # constant SQL
        " WHEN old.deleted_at IS NULL BEGIN"
        f" INSERT INTO lead_search(lead_search, rowid, {_COLUMNS})"
        f" VALUES ('delete', {_values('old')});"
        " END"
    )
    op.execute(
        "CREATE TRIGGER lead_search_au AFTER UPDATE ON lead"
        f" WHEN {_changed()} BEGIN"
        f" INSERT INTO lead_search(lead_search, rowid, {_COLUMNS})"
        f" SELECT 'delete', {_values('old')} WHERE old.deleted_at IS NULL;"
        f" INSERT INTO lead_search(rowid, {_COLUMNS})"
        f" SELECT {_values('new')} WHERE new.deleted_at IS NULL;"
        " END"
    )
    op.execute(
        f"INSERT INTO lead_search(rowid, {_COLUMNS})"  # noqa: S608 # constant SQL
        f" SELECT {_values('lead')} FROM lead WHERE lead.deleted_at IS NULL"
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _sqlite_upgrade()
    elif dialect == "postgresql":
        op.execute(
            f"CREATE INDEX ix_lead_search ON lead USING gin (({_PG_DOCUMENT}))"
            " WHERE deleted_at IS NULL"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("lead_search_ai", "lead_search_ad", "lead_search_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS lead_search")
    elif dialect == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_lead_search")
