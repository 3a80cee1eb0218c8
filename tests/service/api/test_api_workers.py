"""``leadsync serve --workers 2``: both serve; limits, metrics, revocations are shared."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.service.test_daemon import (
    ROOT,
    cli,
    free_port,
    procs_fixture,  # noqa: F401 (the fixture)
    start,
    stop,
    wait_for,
)

LIMIT = 12


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _workers(pid: int) -> list[int]:
    """The uvicorn worker processes of a supervisor (Linux /proc)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def _metrics_folder(worker: int) -> Path:
    """Where a worker keeps its metrics (``PROMETHEUS_MULTIPROC_DIR``)."""
    environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
    (folder,) = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"PROMETHEUS_")]
    return Path(folder.decode())


def _count(text: str, route: str, status: int) -> float:
    pattern = (
        rf'leadsync_api_requests_total{{method="GET",route="{re.escape(route)}",'
        rf'status="{status}"}} ([0-9.]+)'
    )
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


@pytest.mark.slow
def test_two_workers_share_rate_limits_and_metrics(tmp_path, procs):
    port = free_port()
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{tmp_path / 'store.db'}'}}\n"
        f"api: {{port: {port}, rate_limits: {{requests_per_minute: {LIMIT}}}}}\n"
        "logging: {format: json, level: warning}\n"
    )
    create = ["apikey", "create", "--name", "k", "--scopes", "leads:read"]
    made = cli([*create, "--config", str(config), "--json"])
    key = json.loads(made)["key"]
    proc = start(
        ["serve", "--config", str(config), "--workers", "2"], tmp_path / "serve.log"
    )
    procs.append(proc)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 60, "the workers")
    folder = _metrics_folder(_workers(proc.pid)[0])
    assert folder.parent == Path(tempfile.gettempdir())

    def serving_pids() -> set[str]:
        return {p.name.split("_")[-1] for p in folder.glob("counter_*.db")}

    # New connections go to whichever worker accepts first: open bursts of them
    # until both workers have answered (each writes its own metrics file).
    probes = 0
    with ThreadPoolExecutor(16) as pool:
        for _ in range(20):
            list(pool.map(lambda _: httpx.get(f"{base}/healthz", timeout=5), range(16)))
            probes += 16
            if len(serving_pids()) == 2:
                break
        assert len(serving_pids()) == 2, "one worker served every connection"
        # One request per new connection, so both workers take part.
        responses = list(
            pool.map(
                lambda _: httpx.get(
                    f"{base}/v1/leads", headers={"X-API-Key": key}, timeout=5
                ),
                range(2 * LIMIT),
            )
        )
    allowed = [r for r in responses if r.status_code == 200]
    assert len(allowed) == LIMIT
    assert {r.status_code for r in responses} == {200, 429}
    # One window for the key, counted down once per request, whichever worker.
    remaining = sorted(int(r.headers["X-RateLimit-Remaining"]) for r in allowed)
    assert remaining == list(range(LIMIT))
    for _ in range(4):  # whichever worker answers the scrape: the sums of both
        text = httpx.get(f"{base}/metrics", timeout=5).text
        assert _count(text, "/v1/leads", 200) == LIMIT
        assert _count(text, "/v1/leads", 429) == LIMIT
        assert _count(text, "/healthz", 200) >= probes
    # A key revoked by another process is refused at once by every worker.
    cli(["apikey", "revoke", "k", "--config", str(config)])
    with ThreadPoolExecutor(8) as pool:
        after = pool.map(
            lambda _: httpx.get(f"{base}/v1/leads", headers={"X-API-Key": key}),
            range(16),
        )
        assert {r.status_code for r in after} == {401}
    assert stop(proc) == 0
    assert not folder.exists()


@pytest.mark.slow
def test_workers_stop_when_the_supervisor_is_killed(tmp_path, procs):
    port = free_port()
    config = tmp_path / "leadsync.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{tmp_path / 'store.db'}'}}\napi: {{port: {port}}}\n"
    )
    proc = start(
        ["serve", "--config", str(config), "--workers", "2"], tmp_path / "serve.log"
    )
    procs.append(proc)
    wait_for(lambda: len(_workers(proc.pid)) == 2, 60, "two workers")
    pids = _workers(proc.pid)
    folder = _metrics_folder(pids[0])
    proc.kill()  # no chance to stop its workers (nor to remove its metrics folder)
    proc.wait(10)
    wait_for(lambda: not any(_alive(p) for p in pids), 20, "the workers to stop")
    shutil.rmtree(folder)


def test_workers_must_be_at_least_one(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--workers", "0"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--workers" in done.stderr
