"""Leases: one row per connector naming the daemon that runs it, and until when.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from state.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the lease table."""
    op.create_table(
        "lease",
        sa.Column("connector", sa.String(100), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("token", sa.Integer(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_lease_expires_at", "lease", ["expires_at"])


def downgrade() -> None:
    """Drop the lease table."""
    op.drop_index("ix_lease_expires_at", table_name="lease")
    op.drop_table("lease")
