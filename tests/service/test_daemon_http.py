"""Two leadsync instances on loopback: A pushes a CSV through the HTTP destination to B."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.service.test_daemon import (
    ROOT,
    cli,
    free_port,
    get,
    procs_fixture,  # noqa: F401 (the fixture)
    rows,
    wait_for,
    write_config,
    write_csv,
)

# B runs `leadsync serve` with the rate-limit window cut from 60 s to 2 s, so that the
# 429 it sends comes with a Retry-After the test can wait for.
SHORT_WINDOW = (
    "import service.api.ratelimit as r\n"
    "hit = r.InMemoryRateLimiter.hit\n"
    "r.InMemoryRateLimiter.hit = lambda self, bucket, *, limit, cost=1, window=60:"
    " hit(self, bucket, limit=limit, cost=cost, window=2.0)\n"
    "from service.cli import main\n"
    "main()\n"
)
FIELDS = ("lead_id", "email", "first_name", "origin", "source_updated_at", "deleted_at")


def export(config: Path) -> dict[str, dict[str, object]]:
    lines = cli(["export", "--config", str(config)]).splitlines()
    leads = {}
    for item in map(json.loads, lines):
        leads[item["lead_id"]] = {k: item[k] for k in FIELDS}
    return leads


@pytest.mark.slow
def test_a_pushes_to_b_through_rate_limits_and_rejections(tmp_path, procs):
    a_dir, b_dir, ref_dir = (tmp_path / n for n in ("a", "b", "ref"))
    for d in (a_dir, b_dir, ref_dir):
        d.mkdir()
    source = rows(250)
    source[7] = ("L000007", "not-an-email", "Bad", "2024-01-01T00:00:00Z")
    b_port = free_port()
    b_config = write_config(
        b_dir,
        f"sqlite:///{b_dir / 'b.db'}",
        port=b_port,
        connectors=[],
        extra=f"api: {{port: {b_port}, rate_limits: {{sync_requests_per_minute: 2}}}}\n",
    )
    # the api key written twice would be a duplicate key: keep the one with limits
    text = b_config.read_text().replace(f"api: {{port: {b_port}}}\n", "", 1)
    b_config.write_text(text.replace("connectors:\n", "connectors: []\n"))
    created = json.loads(
        cli(
            [
                "apikey",
                "create",
                "--name",
                "a",
                "--scopes",
                "leads:sync_create",
                "--json",
                "--config",
                str(b_config),
            ]
        )
    )
    with (b_dir / "b.log").open("wb") as log:
        b = subprocess.Popen(
            [sys.executable, "-c", SHORT_WINDOW, "serve", "--config", str(b_config)],
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    procs.append(b)
    wait_for(lambda: get(b_port, "/readyz")[0] == 200, 30, "B to serve")

    a_config = write_config(
        a_dir,
        f"sqlite:///{a_dir / 'a.db'}",
        port=free_port(),
        extra=(
            "destination:\n  type: http\n"
            f"  http: {{url: 'http://127.0.0.1:{b_port}', api_key: '${{DEST_KEY}}',"
            " requests_per_minute: 600, leads_per_minute: 60000}\n"
        ),
    )
    write_csv(a_dir / "drop.csv", source)
    env = {"DEST_KEY": created["key"]}
    full = {**__import__("os").environ, "PYTHONPATH": str(ROOT), **env}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "sync",
            "--json",
            "--config",
            str(a_config),
        ],
        env=full,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)
    assert report["outcome"] == "succeeded"
    assert (report["read"], report["created"], report["failed"]) == (250, 249, 1)
    assert "destination answered 429" in done.stderr  # B limited A, A waited

    # the rejected lead is in A's failure log with B's reason
    failures = json.loads(
        cli(["failures", "list", "--json", "--config", str(a_config)], env=env)
    )
    assert [(f["item_key"], f["code"]) for f in failures] == [
        ("L000007", "unprocessable")
    ]

    # B's store equals what a local sync of the same CSV stores, minus the rejected lead
    ref_config = write_config(
        ref_dir, f"sqlite:///{ref_dir / 'ref.db'}", port=free_port()
    )
    write_csv(ref_dir / "drop.csv", source)
    cli(["sync", "--config", str(ref_config)])
    expected = export(ref_config)
    del expected["L000007"]
    assert export(b_config) == expected

    # re-reading everything finds it unchanged from A's own payload hashes: only the
    # rejected lead is sent (and rejected) again
    again = json.loads(
        cli(["backfill", "drop", "--json", "--config", str(a_config)], env=env)
    )[0]
    assert (again["created"], again["unchanged"], again["failed"]) == (0, 249, 1)
    engine = sa.create_engine(f"sqlite:///{a_dir / 'a.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from lead")).scalar_one() == 0
    engine.dispose()
