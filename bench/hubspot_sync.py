"""Benchmark: the HubSpot connector and the engine against a local fake HubSpot.

    python bench/hubspot_sync.py --contacts 100000 [--store postgresql+psycopg://...]

Starts ``tests/fakes_hubspot.py`` in its own process with N contacts (HubSpot's limits
switched off: no rate-limit headers, no 429s, and no client-side search limit; every
contact rendered to JSON before the first request, so that no pass times the fake's
rendering), then:

1. the connector alone: a full list pass (first sync / backfill path), ``--passes``
   times, with the CPU time this process spent per contact (the connector's own cost:
   what it takes from the engine, which runs in the same process) and the fake
   server's CPU time (it shares this machine's cores; the real HubSpot does not);
2. connector and engine: ``leadsync sync`` logic in-process on a fresh store (list
   pass, ID sweep bookkeeping, archive check), with the default contacts mapping;
3. an incremental run with no changes.

Prints contacts/s and the requests of each kind. Not a test: nothing asserts timings.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
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
from connectors.hubspot.source import properties_for  # noqa: E402
from engine import gcpolicy, runner  # noqa: E402
from service.context import AppContext  # noqa: E402
from service.settings import load_settings  # noqa: E402

TOKEN = "pat-bench-token"  # noqa: S105 (the fake server's token)
# What the default contacts mapping reads (engine/mappings/hubspot-contacts.yaml).
HINTS = MappingHints(
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


def bench_config(url: str) -> HubSpotConfig:
    """The connector's config in every pass: limits off, 2,000 records a page."""
    return HubSpotConfig(
        name="bench",
        base_url=url,
        search_rate=0,
        batch_size=2000,
        auth={"access_token": TOKEN},
    )


def start_fake(count: int) -> tuple[subprocess.Popen[str], str]:
    """The fake server in a child process (so it does not share our GIL)."""
    # Rendered ahead for the properties the passes request (the mapping's and ours).
    warm = ",".join(properties_for(bench_config("http://localhost"), HINTS))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes_hubspot", str(count), "--warm", warm],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    if proc.stdout is None:
        raise SystemExit("could not start the fake server")
    return proc, proc.stdout.readline().strip()


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of another process so far, where /proc tells it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connector_only(url: str, fake_pid: int | None = None) -> None:
    with HubSpotSource.from_config(bench_config(url), HINTS) as source:
        fake_before = cpu_seconds(fake_pid) if fake_pid else None
        started, cpu = time.perf_counter(), time.process_time()
        read = sum(len(p.records) for p in source.read_changes(None))
        secs, cpu = time.perf_counter() - started, time.process_time() - cpu
        fake_after = cpu_seconds(fake_pid) if fake_pid else None
        fake = ""
        if fake_before is not None and fake_after is not None:
            fake = f"; fake server {fake_after - fake_before:.2f} s CPU"
        print(
            f"connector alone, list pass: {read:,} contacts in {secs:.2f} s = "
            f"{read / secs:,.0f} contacts/s; this process {cpu:.2f} s CPU = "
            f"{cpu / max(read, 1) * 1e6:.1f} us/contact{fake}; "
            f"requests {dict(source.client.requests)}"
        )


def engine_runs(url: str, count: int, store: str | None, work: Path) -> None:
    store = store or f"sqlite:///{work / 'store.db'}"
    (work / "leadsync.yaml").write_text(
        f"store: {{url: '{store}'}}\nlogging: {{level: warning}}\n"
        "connectors:\n"
        f"  - {{name: bench, type: hubspot, base_url: '{url}', search_rate: 0,"
        f" batch_size: 2000, auth: {{access_token: {TOKEN}}}}}\n"
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
        "--passes", type=int, default=2, help="connector-alone passes (default 2)"
    )
    parser.add_argument(
        "--store", default=None, help="store URL (default: SQLite file)"
    )
    args = parser.parse_args()
    gcpolicy.tune()  # as every leadsync command does at start-up
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    proc, url = start_fake(args.contacts)
    try:
        print(f"fake HubSpot at {url} with {args.contacts:,} contacts")
        for _ in range(args.passes):
            connector_only(url, proc.pid)
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
