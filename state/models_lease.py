"""The ``lease`` table: which daemon runs a connector, until when, under which token."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from state.types import UTCDateTime

__all__ = ["Lease"]


class Lease(SQLModel, table=True):
    """One connector's lease: its holder, a fencing token and an expiry."""

    __tablename__ = "lease"

    connector: str = Field(primary_key=True, max_length=100)
    owner: str = Field(max_length=200)
    # Grows by one each time another daemon takes the lease: a cursor write that
    # carries an older token comes from a daemon that lost it, and is refused.
    token: int = Field(default=1)
    expires_at: datetime = Field(
        sa_column=sa.Column(UTCDateTime(), nullable=False, index=True)
    )
    acquired_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
