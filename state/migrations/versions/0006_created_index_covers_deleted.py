"""The ``created_at`` index also holds ``deleted_at``: lists walk it without the rows.

A list of live leads in creation order (the API's default) walks this index and skips
its OFFSET entries; it used to read each skipped lead's row only to see that it is not
a tombstone. Holding ``deleted_at`` in the index answers that from the index itself,
and counts the live leads from it too.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NAME = "ix_lead_created_at_id"


def upgrade() -> None:
    """Rebuild the index on ``(created_at, id, deleted_at)``."""
    op.drop_index(_NAME, table_name="lead")
    op.create_index(_NAME, "lead", ["created_at", "id", "deleted_at"])


def downgrade() -> None:
    """Rebuild the index on ``(created_at, id)``."""
    op.drop_index(_NAME, table_name="lead")
    op.create_index(_NAME, "lead", ["created_at", "id"])
