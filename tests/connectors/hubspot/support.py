"""Helpers for the HubSpot tests: a cassette per test, and the fake server to record.

Replay (``VCR_RECORD_MODE`` unset or ``none``, as in CI): the connector talks to
``https://api.hubapi.com`` and vcrpy answers from ``tests/cassettes/hubspot/...``.
Recording (``VCR_RECORD_MODE=all``): the fake server starts on loopback, the connector
talks to it, and the recorded requests are rewritten to ``https://api.hubapi.com``. The
fake's data is built in both modes, so tests derive their expectations from it.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.base import MappingHints
from connectors.hubspot import HubSpotConfig, HubSpotSource
from connectors.hubspot.client import reset_tokens
from connectors.hubspot.ratelimit import reset_accounts
from tests.fakes_hubspot import FakeHubSpot
from tests.vcr_config import CASSETTES, VCR

REAL = "https://api.hubapi.com"
RECORDING = os.environ.get("VCR_RECORD_MODE", "none") != "none"
TOKEN = "pat-test-token"  # noqa: S105 (a fake token for the fake server)
T0 = datetime(2024, 3, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=2)
HINTS = MappingHints(
    id_path="id",
    updated_at_path="properties.lastmodifieddate",
    paths=frozenset({"properties.email", "properties.firstname"}),
)


class FakeTime:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class HubSpotEnv:
    fake: FakeHubSpot
    base_url: str
    time: FakeTime = field(default_factory=FakeTime)
    sources: list[HubSpotSource] = field(default_factory=list)

    now: datetime = NOW
    cassette: Any = None

    def source(self, *, hints: MappingHints = HINTS, **cfg: Any) -> HubSpotSource:
        settings = {
            "name": "hs",
            "auth": {"access_token": TOKEN},
            "base_url": self.base_url,
            "search_rate": 0,
            **cfg,
        }
        source = HubSpotSource.from_config(
            HubSpotConfig(**settings),
            hints,
            now=lambda: self.now,
            sleep=self.time.sleep,
            clock=self.time.monotonic,
            rng=random.Random(7),
        )
        self.sources.append(source)
        return source


def cassette_name(request: pytest.FixtureRequest, folder: str = "hubspot") -> str:
    """``<folder>/<test module>/<test name>``, as style.md lays cassettes out."""
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")
    return f"{folder}/{module}/{name}"


@contextmanager
def hubspot_env(cassette: str) -> Iterator[HubSpotEnv]:
    """A fake account and the cassette ``cassette`` (a path under tests/cassettes)."""
    reset_accounts()
    reset_tokens()
    fake = FakeHubSpot(tokens=(TOKEN,))
    options: dict[str, Any] = {}
    base_url = REAL
    if RECORDING:
        # Record afresh: vcrpy would otherwise keep the old interactions beside the new.
        (CASSETTES / f"{cassette}.json").unlink(missing_ok=True)
        loopback = fake.start()
        base_url = loopback

        def rewrite(req: Any) -> Any:
            req.uri = req.uri.replace(loopback, REAL)
            return req

        options["before_record_request"] = rewrite
    env = HubSpotEnv(fake, base_url)
    try:
        with VCR.use_cassette(cassette, **options) as recorded:
            env.cassette = recorded
            yield env
    finally:
        for source in env.sources:
            source.close()
        fake.stop()
        reset_accounts()
        reset_tokens()


def contacts(
    fake: FakeHubSpot,
    count: int,
    *,
    start: int = 1001,
    spread_ms: int,
    base: datetime = T0,
    seed: int = 1,
) -> dict[int, int]:
    """Add ``count`` contacts modified at random times in ``[base, base+spread)``."""
    rng = random.Random(seed)
    base_ms = int(base.timestamp() * 1000)
    made = {}
    for oid in range(start, start + count):
        at = base_ms + rng.randrange(spread_ms)
        fake.put(
            "contacts", oid, at, email=f"c{oid}@example.com", firstname=f"Test{oid}"
        )
        made[oid] = at
    return made


def bodies(env: HubSpotEnv, path_end: str = "/search") -> list[dict[str, Any]]:
    """The JSON bodies of the requests sent so far whose path ends with ``path_end``.

    Recording, the cassette holds just the requests sent so far; replaying, it holds
    them all, and the ones played so far are counted in ``play_counts``.
    """
    cassette = env.cassette
    return [
        json.loads(r.body)
        for i, r in enumerate(cassette.requests)
        if (RECORDING or cassette.play_counts[i])
        and r.path.endswith(path_end)
        and r.method == "POST"
    ]


def sent(env: HubSpotEnv) -> list[Any]:
    """The requests sent so far (see ``bodies``)."""
    cassette = env.cassette
    return [
        r
        for i, r in enumerate(cassette.requests)
        if RECORDING or cassette.play_counts[i]
    ]
