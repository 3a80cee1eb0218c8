"""Benchmark: the HubSpot connector and the engine against a local fake HubSpot.

    python bench/hubspot_sync.py --contacts 100000 [--store postgresql+psycopg://...]

Starts ``tests/fakes_hubspot.py`` in its own process with N contacts (HubSpot's limits
switched off: no rate-limit headers, no 429s, and no client-side search limit), then:

1. the connector alone: a full list pass (first sync / backfill path);
2. connector and engine: ``leadsync sync`` logic in-process on a fresh store (list
   pass, ID sweep bookkeeping, archive check), with the default contacts mapping;
3. an incremental run with no changes.

Prints contacts/s and the requests of each kind. Not a test: nothing asserts timings.
"""

from __future__ import annotations

import argparse
import logging
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402 (after the path set-up)

from connectors.base import MappingHints  # noqa: E402
from connectors.hubspot import HubSpotConfig, HubSpotSource  # noqa: E402
from engine import runner  # noqa: E402
from service.context import AppContext  # noqa: E402
from service.settings import load_settings  # noqa: E402


def start_fake(count: int) -> tuple[subprocess.Popen[str], str]:
    """The fake server in a child process (so it does not share our GIL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes_hubspot", str(count)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if proc.stdout is None:
        raise SystemExit("could not start the fake server")
    return proc, proc.stdout.readline().strip()


def connector_only(url: str) -> None:
    cfg = HubSpotConfig(
        name="bench",
        base_url=url,
        search_rate=0,
        batch_size=2000,
        auth={"access_token": "pat-bench-token"},
    )
    hints = MappingHints(
        "id",
        "properties.lastmodifieddate",
        frozenset(
            f"properties.{p}"
            for p in (
                "email",
                "firstname",
                "lastname",
                "phone",
                "company",
                "jobtitle",
                "hs_lead_status",
                "lifecyclestage",
                "hubspotscore",
                "hubspot_owner_id",
            )
        ),
    )
    with HubSpotSource.from_config(cfg, hints) as source:
        started = time.perf_counter()
        read = sum(len(p.records) for p in source.read_changes(None))
        secs = time.perf_counter() - started
        print(
            f"connector alone, list pass: {read:,} contacts in {secs:.2f} s = "
            f"{read / secs:,.0f} contacts/s; requests {dict(source.client.requests)}"
        )


def engine_runs(url: str, count: int, store: str | None, work: Path) -> None:
    store = store or f"sqlite:///{work / 'store.db'}"
    (work / "leadsync.yaml").write_text(
        f"store: {{url: '{store}'}}\nlogging: {{level: warning}}\n"
        "connectors:\n"
        f"  - {{name: bench, type: hubspot, base_url: '{url}', search_rate: 0,"
        " batch_size: 2000, auth: {access_token: pat-bench-token}}\n"
    )
    ctx = AppContext(load_settings(work / "leadsync.yaml"))
    cfg = ctx.connector("bench")
    runs = (
        ("first sync (list + archive check)", False),
        ("incremental, no change", False),
        ("ID sweep, nothing changed (list pass)", True),
    )
    for label, sweep in runs:
        syncer = ctx.syncer(cfg)
        source = syncer.source
        started = time.perf_counter()
        report = runner.sync(syncer, sweep=sweep)
        secs = time.perf_counter() - started
        requests = dict(source.client.requests)  # type: ignore[attr-defined]
        source.close()
        if not report.ok:
            raise SystemExit(f"sync failed: {report.error}")
        rate = report.counts["read"] / secs if report.counts["read"] else 0
        print(
            f"{label}: {report.counts['read']:,} read, {report.counts['created']:,} "
            f"created, {report.counts['unchanged']:,} unchanged in {secs:.2f} s = "
            f"{rate:,.0f} contacts/s; requests {requests}"
        )
        if label.startswith("first"):
            expected = math.ceil(count / 100)
            print(
                f"  list pages: {requests.get('list')} (ceil({count}/100) = {expected})"
            )
    ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument(
        "--store", default=None, help="store URL (default: SQLite file)"
    )
    args = parser.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    proc, url = start_fake(args.contacts)
    try:
        print(f"fake HubSpot at {url} with {args.contacts:,} contacts")
        connector_only(url)
        engine_runs(
            url,
            args.contacts,
            args.store,
            Path(tempfile.mkdtemp(prefix="leadsync-hubspot-bench-")),
        )
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
