"""SQLite: ``seen_id`` as a WITHOUT ROWID table (one B-tree instead of two).

A snapshot pass writes one ``seen_id`` row per listed record and deletes them all at the
end; keyed by its primary key alone, each row costs half the B-tree work. The table only
holds the ids of a pass under way, and migrations run before any pass: it is recreated
empty.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _create(*, with_rowid: bool) -> None:
    op.drop_table("seen_id")
    op.create_table(
        "seen_id",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("lead_id", sa.String(255), primary_key=True),
        sqlite_with_rowid=with_rowid,
    )


def upgrade() -> None:
    """Recreate ``seen_id`` without rowid on SQLite."""
    if op.get_bind().dialect.name == "sqlite":
        _create(with_rowid=False)


def downgrade() -> None:
    """Recreate ``seen_id`` as a rowid table on SQLite."""
    if op.get_bind().dialect.name == "sqlite":
        _create(with_rowid=True)
