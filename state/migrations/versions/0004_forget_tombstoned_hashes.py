"""A tombstoned lead's payload keeps no hash: the unchanged check reads payloads alone.

Syncs recognise an unchanged record by its payload hash. They used to join ``lead`` to
exclude tombstoned leads; tombstoning now clears the payload's hash instead, and this
migration does the same for the tombstones already stored.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Clear the payload hash of every tombstoned lead."""
    op.execute(
        "UPDATE lead_payload SET raw_hash = '' WHERE EXISTS (SELECT 1 FROM lead"
        " WHERE lead.origin = lead_payload.origin"
        " AND lead.lead_id = lead_payload.lead_id AND lead.deleted_at IS NOT NULL)"
    )


def downgrade() -> None:
    """Nothing to undo: an empty hash only costs one re-map of the record."""
