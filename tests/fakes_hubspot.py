"""A small fake HubSpot CRM v3 server on loopback, written to the documented shapes.

Used only to record cassettes (``VCR_RECORD_MODE=once``) and by the benchmark; tests
replay cassettes. Shapes follow crm-notes §1 and §5: list pages (``paging.next.after`` =
next id, repeated or comma-separated ``properties``, ``archived=False``/``true`` in any
case), search (``total``, integer offsets, 400 past 10,000, ``null`` for requested but
empty properties, filters on epoch-ms strings, ISO strings or numbers, sorts as objects
or ``"-prop"`` strings), batch read, the OAuth token endpoint, error bodies and the
``X-HubSpot-RateLimit-*`` headers.

Each object's JSON is rendered once per property list and kept until the object
changes, so the benchmark measures the connector rather than this server: on a 2-core
machine the fake shares the CPU with the process under test.
"""

from __future__ import annotations

import bisect
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MODIFIED = {
    "contacts": "lastmodifieddate",
    "companies": "hs_lastmodifieddate",
    "deals": "hs_lastmodifieddate",
}
DEFAULTS = {
    "contacts": [
        "createdate",
        "email",
        "firstname",
        "hs_object_id",
        "lastmodifieddate",
        "lastname",
    ],
    "companies": [
        "createdate",
        "domain",
        "hs_lastmodifieddate",
        "hs_object_id",
        "name",
    ],
    "deals": [
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    ],
}
CAP = 10_000


def iso(ms: int) -> str:
    """HubSpot's timestamp format: ``2024-09-11T13:27:39.356Z``."""
    # isoformat ends in "+00:00" for an aware UTC datetime; HubSpot writes "Z".
    return (EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")[
        :-6
    ] + "Z"


def ms_of(value: Any) -> int | None:
    """Epoch ms from a filter value: ms string, number or ISO string."""
    if isinstance(value, int | float):
        return int(value)
    text = str(value)
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return int((parsed.astimezone(UTC) - EPOCH) / timedelta(milliseconds=1))


@dataclass
class Obj:
    id: int
    modified: int
    created: int
    props: dict[str, str] = field(default_factory=dict)
    archived_at: int | None = None
    # Rendered JSON by (requested properties, nulls); cleared whenever the object changes.
    rendered: dict[tuple[tuple[str, ...] | None, bool], orjson.Fragment] = field(
        default_factory=dict, repr=False, compare=False
    )


@dataclass
class Scripted:
    """A canned answer for the next request whose method and path match."""

    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FakeHubSpot:
    """In-memory objects plus the HTTP server that serves them."""

    def __init__(self, *, tokens: tuple[str, ...] = ("pat-test-token",)) -> None:
        self.objects: dict[str, dict[int, Obj]] = {k: {} for k in MODIFIED}
        self.tokens = set(tokens)
        self.scripted: list[Scripted] = []
        self.requests: list[tuple[str, str]] = []
        self.rate_headers = False  # send the 10-second burst headers on non-search
        self.daily_remaining: int | None = None
        self.nulls = True  # search: requested but empty properties come as null
        self.latency = 0.0  # seconds added to every answer (a real API's round trip)
        self.hooks: list[Callable[[FakeHubSpot, str, str], None]] = []
        self.oauth_clients: dict[str, tuple[str, str]] = {}  # id -> (secret, refresh)
        self._sorted: dict[str, list[tuple[int, int]] | None] = dict.fromkeys(MODIFIED)
        self._ids: dict[str, list[int] | None] = dict.fromkeys(MODIFIED)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # -- data ------------------------------------------------------------------------

    def put(
        self,
        kind: str,
        oid: int,
        modified: int,
        created: int | None = None,
        **props: str,
    ) -> Obj:
        with self._lock:
            obj = self.objects[kind].get(oid)
            if obj is None:
                obj = Obj(oid, modified, created if created is not None else modified)
                self.objects[kind][oid] = obj
                self._ids[kind] = None
            obj.modified = modified
            obj.props.update(props)
            obj.rendered.clear()
            self._sorted[kind] = None
            return obj

    def archive(self, kind: str, oid: int, at: int) -> None:
        with self._lock:
            # Archiving does not bump the modification time (crm-notes §1.4).
            obj = self.objects[kind][oid]
            obj.archived_at = at
            obj.rendered.clear()
            self._sorted[kind] = None

    def merge(self, kind: str, primary: int, merged: int, at: int) -> None:
        with self._lock:
            gone = self.objects[kind][merged]
            gone.archived_at = at
            survivor = self.objects[kind][primary]
            old = survivor.props.get("hs_merged_object_ids")
            survivor.props["hs_merged_object_ids"] = ";".join(
                x for x in (old, str(merged)) if x
            )
            survivor.modified = at
            gone.rendered.clear()
            survivor.rendered.clear()
            self._sorted[kind] = None

    def render(
        self, kind: str, obj: Obj, props: list[str] | None, *, nulls: bool
    ) -> dict[str, Any]:
        modified, created = iso(obj.modified), iso(obj.created)
        values = dict(obj.props)
        values["hs_object_id"] = str(obj.id)
        values[MODIFIED[kind]] = modified
        values["createdate"] = created
        names = props or DEFAULTS[kind]
        out = {n: values.get(n) for n in names if nulls or values.get(n) is not None}
        body: dict[str, Any] = {
            "id": str(obj.id),
            "properties": out,
            "createdAt": created,
            "updatedAt": modified,
            "archived": obj.archived_at is not None,
        }
        if obj.archived_at is not None:
            body["archivedAt"] = iso(obj.archived_at)
        return body

    def rendered(
        self, kind: str, obj: Obj, props: list[str] | None, *, nulls: bool
    ) -> orjson.Fragment:
        """``render`` as ready JSON, cached on the object until it changes."""
        key = (tuple(props) if props else None, nulls)
        fragment = obj.rendered.get(key)
        if fragment is None:
            fragment = orjson.Fragment(
                orjson.dumps(self.render(kind, obj, props, nulls=nulls))
            )
            obj.rendered[key] = fragment
        return fragment

    # -- server ----------------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        self.requests.append((method, url.path))
        for hook in list(self.hooks):
            hook(self, method, url.path)
        status, body, headers = self._answer(handler, method, url.path, url.query, raw)
        if self.latency:
            time.sleep(self.latency)
        data = orjson.dumps(body) if body is not None else b""
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json;charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(
        self,
        handler: BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: str,
        raw: bytes,
    ) -> tuple[int, Any, dict[str, str]]:
        for i, canned in enumerate(self.scripted):
            if canned.method == method and path.endswith(canned.path):
                del self.scripted[i]
                return canned.status, canned.body, canned.headers
        if path == "/oauth/v1/token":
            return self._token(parse_qs(raw.decode()))
        auth = handler.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return (
                401,
                error(
                    "INVALID_AUTHENTICATION", "Authentication credentials not found."
                ),
                {},
            )
        parts = path.strip("/").split("/")
        if parts[:3] != ["crm", "v3", "objects"] or parts[3] not in MODIFIED:
            return 404, error("OBJECT_NOT_FOUND", "resource not found"), {}
        kind = parts[3]
        headers = self._limit_headers(search=len(parts) > 4 and parts[4] == "search")
        with self._lock:
            if len(parts) == 4 and method == "GET":
                status, body = self._list(kind, parse_qs(query))
                return status, body, headers
            payload = json.loads(raw or b"{}")
            if parts[4:] == ["search"]:
                status, body = self._search(kind, payload)
                return status, body, headers
            if parts[4:] == ["batch", "read"]:
                status, body = self._batch_read(kind, payload)
                return status, body, headers
        return 404, error("OBJECT_NOT_FOUND", "resource not found"), {}

    def _limit_headers(self, *, search: bool) -> dict[str, str]:
        headers: dict[str, str] = {"X-HubSpot-Correlation-Id": str(uuid.uuid4())}
        if self.daily_remaining is not None:
            self.daily_remaining = max(0, self.daily_remaining - 1)
            headers["X-HubSpot-RateLimit-Daily"] = "250000"
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(self.daily_remaining)
        if self.rate_headers and not search:
            headers.update(
                {
                    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                    "X-HubSpot-RateLimit-Max": "100",
                    "X-HubSpot-RateLimit-Remaining": "99",
                }
            )
        return headers

    def _token(self, form: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        cid = (form.get("client_id") or [""])[0]
        known = self.oauth_clients.get(cid)
        if (
            (form.get("grant_type") or [""])[0] != "refresh_token"
            or known is None
            or ([known[0]], [known[1]])
            != (form.get("client_secret"), form.get("refresh_token"))
        ):
            return (
                400,
                error("BAD_REFRESH_TOKEN", "missing or unknown refresh token"),
                {},
            )
        token = f"oauth-access-{len(self.tokens)}"
        self.tokens.add(token)
        return (
            200,
            {
                "token_type": "bearer",
                "refresh_token": known[1],
                "access_token": token,
                "expires_in": 1800,
            },
            {},
        )

    def _list(self, kind: str, q: dict[str, list[str]]) -> tuple[int, Any]:
        limit = min(int((q.get("limit") or ["10"])[0]), 100)
        props = [p for v in q.get("properties", []) for p in v.split(",") if p]
        archived = (q.get("archived") or ["false"])[0].lower() == "true"
        ids = self._ids[kind]
        if ids is None:
            ids = self._ids[kind] = sorted(self.objects[kind])
        start = bisect.bisect_left(ids, int((q.get("after") or ["0"])[0]))
        objs = self.objects[kind]
        results, nxt = [], None
        for pos in range(start, len(ids)):
            obj = objs[ids[pos]]
            if (obj.archived_at is not None) != archived:
                continue
            if len(results) == limit:
                nxt = obj.id
                break
            results.append(self.rendered(kind, obj, props, nulls=False))
        body: dict[str, Any] = {"results": results}
        if nxt is not None:
            body["paging"] = {"next": {"after": str(nxt), "link": f"?after={nxt}"}}
        return 200, body

    def _search(self, kind: str, req: dict[str, Any]) -> tuple[int, Any]:
        after = int(req.get("after") or 0)
        limit = int(req.get("limit") or 10)
        if after + limit > CAP or limit > 200:
            return 400, error(
                "VALIDATION_ERROR",
                "Paging through more than 10000 results is not allowed.",
            )
        modified = MODIFIED[kind]
        live = self._sorted[kind]
        if live is None:
            live = sorted(
                (o.modified, o.id)
                for o in self.objects[kind].values()
                if o.archived_at is None
            )
            self._sorted[kind] = live
        groups = req.get("filterGroups") or [{"filters": []}]
        matched: list[tuple[int, int]] = []
        for group in groups:
            part = self._narrow(live, modified, group.get("filters", []))
            rest = [
                f for f in group.get("filters", []) if f["propertyName"] != modified
            ]
            matched.extend(m for m in part if all(self._test(kind, m, f) for f in rest))
        if len(groups) > 1:
            matched = sorted(set(matched))
        sort = (req.get("sorts") or [{"propertyName": modified}])[0]
        if isinstance(sort, str):
            sort = {
                "propertyName": sort.lstrip("-"),
                "direction": "DESCENDING" if sort.startswith("-") else "ASCENDING",
            }
        if sort["propertyName"] == "hs_object_id":
            matched.sort(key=lambda m: m[1])
        if sort.get("direction") == "DESCENDING":
            matched.reverse()
        page = matched[after : after + limit]
        objs = self.objects[kind]
        body: dict[str, Any] = {
            "total": len(matched),
            "results": [
                self.rendered(kind, objs[i], req.get("properties"), nulls=self.nulls)
                for _, i in page
            ],
        }
        if after + limit < len(matched):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return 200, body

    @staticmethod
    def _narrow(
        live: list[tuple[int, int]], modified: str, filters: list[dict[str, Any]]
    ) -> list[tuple[int, int]]:
        """The slice of ``live`` (sorted by modified) that the time filters allow."""
        lo, hi = 0, len(live)
        for f in filters:
            if f["propertyName"] != modified:
                continue
            value, op = ms_of(f.get("value")), f["operator"]
            if value is None:
                return []
            if op in ("GTE", "EQ"):
                lo = max(lo, bisect.bisect_left(live, (value, -1)))
            if op == "GT":
                lo = max(lo, bisect.bisect_left(live, (value + 1, -1)))
            if op in ("LTE", "EQ"):
                hi = min(hi, bisect.bisect_left(live, (value + 1, -1)))
            if op == "LT":
                hi = min(hi, bisect.bisect_left(live, (value, -1)))
        return live[lo:hi]

    def _test(self, kind: str, m: tuple[int, int], f: dict[str, Any]) -> bool:
        name, op = f["propertyName"], f["operator"]
        if name == MODIFIED[kind]:
            have, want = m[0], ms_of(f.get("value"))
        elif name == "hs_object_id":
            have, want = m[1], int(f.get("value"))
        else:
            have, want = self.objects[kind][m[1]].props.get(name), f.get("value")
        if have is None or want is None:
            return op == "NOT_HAS_PROPERTY" and have is None
        return {
            "EQ": have == want,
            "NEQ": have != want,
            "LT": have < want,
            "LTE": have <= want,
            "GT": have > want,
            "GTE": have >= want,
        }[op]

    def _batch_read(self, kind: str, req: dict[str, Any]) -> tuple[int, Any]:
        objs = self.objects[kind]
        results, missing = [], []
        for item in req.get("inputs", []):
            obj = objs.get(int(item["id"]))
            if obj is None or obj.archived_at is not None:
                missing.append(item["id"])
            else:
                results.append(
                    self.rendered(kind, obj, req.get("properties"), nulls=False)
                )
        now = iso(0)
        body: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now,
        }
        if missing:
            body["numErrors"] = 1
            body["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some CONTACT objects",
                    "context": {"ids": missing},
                }
            ]
            return 207, body
        return 200, body


def error(category: str, message: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's error body (crm-notes §1.6)."""
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.UUID(int=len(message))),
        "category": category,
        **extra,
    }


def rate_limited(policy: str | None = None) -> dict[str, Any]:
    """A 429 body: the search (secondly) form, or the newer one with a policy name."""
    if policy is None:
        return error("RATE_LIMITS", "You have reached your secondly limit.")
    message = {
        "DAILY": "You have reached your daily limit.",
        "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    }
    return {
        "status": "error",
        "message": message.get(policy, "rate limited"),
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.UUID(int=429)),
        "policyName": policy,
    }


def populate(fake: FakeHubSpot, count: int, *, start_ms: int, seed: int = 42) -> None:
    """``count`` realistic contacts (every standard property set) over 90 days."""
    import random

    rng = random.Random(seed)
    stages = ["NEW", "OPEN", "IN_PROGRESS", "CONNECTED", "UNQUALIFIED"]
    for oid in range(1001, 1001 + count):
        area = rng.randint(201, 989)
        fake.put(
            "contacts",
            oid,
            start_ms + rng.randrange(90 * 86_400_000),
            email=f"Test.Person{oid}@Example.com",
            firstname="Test",
            lastname=f"Testperson{oid}",
            phone=f"({area}) 555-{oid % 10000:04d}",
            company="Acme Corp",
            jobtitle="Buyer",
            hs_lead_status=rng.choice(stages),
            lifecyclestage="lead",
            hubspotscore=str(rng.randint(0, 100)),
            hubspot_owner_id=str(rng.randint(1, 20)),
        )


def main() -> None:
    """Serve N contacts until stdin closes.

    ``python -m tests.fakes_hubspot N [LATENCY_S] [--warm email,firstname,...]``;
    ``--warm`` renders every contact for that property list before serving, so that a
    benchmark's first pass does not time this server's rendering.
    """
    import argparse

    parser = argparse.ArgumentParser(description="A fake HubSpot on loopback.")
    parser.add_argument("count", type=int, nargs="?", default=100_000)
    parser.add_argument("latency", type=float, nargs="?", default=0.0)
    parser.add_argument("--warm", default="", help="comma-separated properties")
    args = parser.parse_args()
    fake = FakeHubSpot(tokens=("pat-bench-token",))
    fake.latency = args.latency
    populate(fake, args.count, start_ms=1_704_067_200_000)  # 2024-01-01
    if args.warm:
        props = args.warm.split(",")
        for obj in fake.objects["contacts"].values():
            fake.rendered("contacts", obj, props, nulls=False)
    print(fake.start(), flush=True)  # noqa: T201 (the URL, for the parent process)
    sys.stdin.read()
    fake.stop()


if __name__ == "__main__":
    main()
