"""The first schema: leads, payloads, cursors, runs, failures, API keys, seen ids.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from state.types import JSONType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("origin", sa.String(100), nullable=False),
        sa.Column("lead_id", sa.String(255), nullable=False),
        *(
            sa.Column(name, sa.String(), nullable=True)
            for name in (
                "email",
                "first_name",
                "last_name",
                "name",
                "company",
                "title",
                "phone",
                "owner",
                "status",
            )
        ),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("custom_fields", JSONType, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("source_updated_at", UTCDateTime(), nullable=True),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("origin", "lead_id", name="uq_lead_origin_lead_id"),
    )
    op.create_index("ix_lead_updated_at_id", "lead", ["updated_at", "id"])
    op.create_index("ix_lead_created_at_id", "lead", ["created_at", "id"])
    op.create_index("ix_lead_email", "lead", ["email"])
    op.create_index("ix_lead_phone", "lead", ["phone"])
    op.create_index("ix_lead_status", "lead", ["status"])
    op.create_index("ix_lead_score", "lead", ["score"])
    op.create_index("ix_lead_source", "lead", ["source"])

    op.create_table(
        "lead_payload",
        sa.Column("origin", sa.String(100), primary_key=True),
        sa.Column("lead_id", sa.String(255), primary_key=True),
        sa.Column("raw", JSONType, nullable=False),
        sa.Column("raw_hash", sa.String(64), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "cursor",
        sa.Column("connector", sa.String(100), primary_key=True),
        sa.Column("ts", UTCDateTime(), nullable=True),
        sa.Column("record_id", sa.String(255), nullable=False),
        sa.Column("state", JSONType, nullable=False),
        sa.Column("fence", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "run",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("connector", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        *(
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                "read",
                "created",
                "updated",
                "unchanged",
                "deleted",
                "failed",
                "retried",
                "resolved",
            )
        ),
        sa.Column("error", sa.String(), nullable=True),
    )
    op.create_index("ix_run_connector_started", "run", ["connector", "started_at"])
    op.create_table(
        "failure",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("connector", sa.String(100), nullable=False),
        sa.Column("item_key", sa.String(255), nullable=False),
        sa.Column("lead_id", sa.String(255), nullable=True),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("code", sa.String(60), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("position", sa.String(), nullable=True),
        sa.Column("raw", JSONType, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("last_run_id", sa.String(40), nullable=True),
        sa.Column("first_failed_at", UTCDateTime(), nullable=False),
        sa.Column("last_failed_at", UTCDateTime(), nullable=False),
        sa.Column("next_retry_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("connector", "item_key", name="uq_failure_connector_item"),
    )
    op.create_index(
        "ix_failure_due", "failure", ["connector", "status", "next_retry_at"]
    )
    op.create_table(
        "api_key",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("prefix", sa.String(20), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_index("ix_api_key_prefix", "api_key", ["prefix"])
    op.create_table(
        "seen_id",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("lead_id", sa.String(255), primary_key=True),
    )


def downgrade() -> None:
    for table in (
        "seen_id",
        "api_key",
        "failure",
        "run",
        "cursor",
        "lead_payload",
        "lead",
    ):
        op.drop_table(table)
