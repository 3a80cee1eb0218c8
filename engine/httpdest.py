"""The HTTP destination: push leads to a remote lead API (contract §5 sync endpoints).

Upserts go to ``POST {url}/v1/leads/sync`` and deletes to ``/v1/leads/sync/delete``,
at most ``batch_size`` (<= 100) per request, with ``X-API-Key``. The remote's limits are
kept client-side (requests and leads per minute, paced evenly) and a 429 waits for its
``Retry-After``. Per-item errors of the response come back as ``BatchResult.errors``,
so the syncer logs them in the failure log. ``apply`` raises when the remote did not
acknowledge a batch, so the local transaction (payloads, failures, cursor) rolls back:
the cursor moves only past leads the remote has.

The local ``lead`` table stays empty with this destination, so the hashes that let a
re-sync skip unchanged records come from ``lead_payload`` alone, and a delete drops the
payload so a record that reappears is sent again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import httpx
import sqlalchemy as sa
import structlog
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

from connectors.errors import LeadSyncError, RetriableSourceError
from connectors.http import Backoff, parse_retry_after, retry_call
from engine.destinations import Batch, BatchResult
from state.models import LeadPayload
from state.store import SEEN as _SEEN
from state.store import chunked

__all__ = ["DestinationError", "HttpDestination"]

log = structlog.get_logger("leadsync.destination")
_PAYLOAD: sa.Table = SQLModel.metadata.tables[LeadPayload.__tablename__]
_RETRIED = frozenset({429, 500, 502, 503, 504})


class DestinationError(LeadSyncError):
    """Raised when the remote lead API does not acknowledge a batch."""


class _Pacer:
    """Spreads ``per_minute`` units evenly over the minute, thread-safe."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self._step = 60.0 / per_minute
        self._next = 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()

    def take(self, units: int = 1) -> None:
        """Wait for ``units`` units of the budget."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + units * self._step
        if start > now:
            self._sleep(start - now)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


class HttpDestination:
    """Pushes batches to a remote lead API; see the module docstring."""

    name = "http"

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        batch_size: int = 100,
        requests_per_minute: int = 50,
        leads_per_minute: int = 5000,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        backoff: Backoff | None = None,
    ) -> None:
        self.batch_size = min(max(batch_size, 1), 100)
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"X-API-Key": api_key, "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        self._requests = _Pacer(requests_per_minute, clock, sleep)
        self._leads = _Pacer(leads_per_minute, clock, sleep)
        self._sleep = sleep
        self._clock = clock
        self._backoff = backoff or Backoff(base=1.0, cap=60.0, max_attempts=8)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def unseen_lead_ids(
        self, session: Session, *, origin: str, run_id: str
    ) -> tuple[list[str], int]:
        """Pushed leads a snapshot pass did not list, and how many were pushed.

        The payload table is this destination's record of what the remote holds (a
        delete forwarded to the remote removes the payload row).
        """
        seen = sa.exists().where(
            _SEEN.c.run_id == run_id, _SEEN.c.lead_id == _PAYLOAD.c.lead_id
        )
        missing = session.execute(
            sa.select(_PAYLOAD.c.lead_id).where(_PAYLOAD.c.origin == origin, ~seen)
        ).scalars()
        pushed = session.execute(
            sa.select(sa.func.count())
            .select_from(_PAYLOAD)
            .where(_PAYLOAD.c.origin == origin)
        ).scalar_one()
        return list(missing), int(pushed)

    def apply(self, session: Session, batch: Batch, *, now: datetime) -> BatchResult:  # noqa: ARG002 (the remote stamps its own times)
        """Push the batch; raises ``DestinationError`` unless the remote took it all."""
        result = BatchResult()
        for start in range(0, len(batch.upserts), self.batch_size):
            self._upsert(
                batch.origin, batch.upserts[start : start + self.batch_size], result
            )
        for start in range(0, len(batch.deletes), self.batch_size):
            ids = list(batch.deletes[start : start + self.batch_size])
            body = self._post(
                "/v1/leads/sync/delete",
                {"origin": batch.origin, "lead_ids": ids},
                len(ids),
            )
            result.deleted += int(body.get("deleted", 0))
            for part in chunked(ids):
                session.execute(
                    _PAYLOAD.delete().where(
                        _PAYLOAD.c.origin == batch.origin,
                        _PAYLOAD.c.lead_id.in_(part),
                    )
                )
        return result

    def _upsert(
        self, origin: str, leads: Sequence[Mapping[str, Any]], result: BatchResult
    ) -> None:
        payload = [{k: _jsonable(v) for k, v in lead.items()} for lead in leads]
        body = self._post(
            "/v1/leads/sync", {"origin": origin, "leads": payload}, len(payload)
        )
        result.created += int(body.get("created", 0))
        result.updated += int(body.get("updated", 0))
        result.unchanged += int(body.get("unchanged", 0))
        for error in body.get("errors") or []:
            index = error.get("index")
            lead_id = error.get("lead_id")
            if lead_id is None and isinstance(index, int) and 0 <= index < len(leads):
                lead_id = leads[index].get("lead_id")
            result.errors.append(
                (
                    str(lead_id),
                    str(error.get("code") or "rejected"),
                    str(error.get("message") or "rejected by the destination"),
                )
            )

    def _post(self, path: str, body: dict[str, Any], units: int) -> dict[str, Any]:
        self._leads.take(units)

        def call() -> dict[str, Any]:
            self._requests.take()
            try:
                response = self._client.post(path, json=body)
            except httpx.TransportError as exc:
                raise RetriableSourceError(
                    f"destination unreachable: {type(exc).__name__}"
                ) from exc
            if response.status_code in _RETRIED:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                raise RetriableSourceError(
                    f"destination answered {response.status_code} on {path}",
                    retry_after=wait,
                )
            if response.status_code != 200:
                raise DestinationError(
                    f"destination refused {path}: HTTP {response.status_code} "
                    f"{_error_code(response)}"
                )
            data = response.json()
            if not isinstance(data, dict):
                raise DestinationError(f"destination sent no JSON object on {path}")
            return data

        try:
            return retry_call(
                call,
                backoff=self._backoff,
                sleep=self._sleep,
                clock=self._clock,
                what=f"destination {path}",
            )
        except RetriableSourceError as exc:
            raise DestinationError(f"{exc} (gave up retrying)") from exc


def _error_code(response: httpx.Response) -> str:
    # Only the error code: the message of a remote error may echo lead data.
    try:
        data = response.json()
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return f"({code})" if isinstance(code, str) else ""
