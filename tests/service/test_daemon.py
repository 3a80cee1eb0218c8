"""``leadsync run`` in a subprocess: schedule, health, systemd notify, stop and restart."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).parents[2]
MAPPING = """\
lead_id: id
updated_at: updated_at
fields:
  email: email
  first_name: first_name
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_csv(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "email", "first_name", "updated_at"])
        out.writerows(rows)


def rows(
    n: int, start: int = 0, ts: str = "2024-01-01T00:00:00Z"
) -> list[tuple[str, str, str, str]]:
    return [(f"L{i:06d}", f"u{i}@example.com", f"U{i}", ts) for i in range(start, n)]


def write_config(
    root: Path,
    store: str,
    *,
    port: int,
    connectors: tuple[str, ...] | list[str] = ("drop",),
    extra: str = "",
    batch_size: int = 100,
) -> Path:
    (root / "mapping.yaml").write_text(MAPPING)
    items = "".join(
        f"  - {{name: {name}, type: csv, path: {name}.csv, mapping: mapping.yaml, "
        f"updated_at_column: updated_at, batch_size: {batch_size}, "
        "schedule: {every: 1s}}\n"
        for name in connectors
    )
    config = root / "leadsync.yaml"
    config.write_text(
        f"store: {{url: '{store}'}}\n"
        f"api: {{port: {port}}}\n"
        "daemon: {shutdown_grace: 10s, lease_ttl: 3s}\n"
        f"{extra}"
        f"connectors:\n{items}"
    )
    return config


def start(
    args: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", *args],
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def cli(args: list[str], env: dict[str, str] | None = None) -> str:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def count(engine: sa.Engine, sql: str = "select count(*) from lead") -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())
    except sa.exc.DBAPIError:
        return 0  # the schema is not there yet


def stop(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30
) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout)


def healthcheck(port: int) -> int:
    """Run the Dockerfile's HEALTHCHECK command against ``port``; its exit status."""
    text = (ROOT / "Dockerfile").read_text()
    line = next(x for x in text.splitlines() if x.strip().startswith("CMD ["))
    command = json.loads(line.strip()[len("CMD ") :])
    assert command[0] == "python"
    env = {**os.environ, "LEADSYNC_API__PORT": str(port)}
    done = subprocess.run(
        [sys.executable, *command[1:]],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.returncode


def test_docker_entry_point_and_healthcheck_of_a_dead_api() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["leadsync"]' in text
    assert 'CMD ["run"]' in text
    assert healthcheck(free_port()) != 0  # nothing listens there
    usage = cli(["run", "--help"])
    assert "SIGHUP reloads the config" in usage


@pytest.fixture(name="procs")
def procs_fixture() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.mark.slow
def test_daemon_syncs_on_schedule_answers_health_and_notifies(tmp_path, procs):
    store = f"sqlite:///{tmp_path / 'store.db'}"
    port = free_port()
    config = write_config(tmp_path, store, port=port)
    write_csv(tmp_path / "drop.csv", rows(3))
    notify_path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(notify_path)
    listener.settimeout(30)
    engine = sa.create_engine(store)
    try:
        proc = start(
            ["run", "--config", str(config)],
            tmp_path / "daemon.log",
            env={"NOTIFY_SOCKET": notify_path},
        )
        procs.append(proc)
        ready = listener.recv(4096).decode().splitlines()
        assert ready[0] == "READY=1"
        assert get(port, "/healthz") == (200, '{"status":"ok"}')
        assert get(port, "/readyz") == (200, '{"status":"ready"}')
        assert healthcheck(port) == 0  # the Docker HEALTHCHECK command
        wait_for(lambda: count(engine) == 3, 10, "the first sync")
        # a later change is picked up by a later tick, with no duplicate
        write_csv(
            tmp_path / "drop.csv",
            rows(3) + rows(5, start=3, ts="2024-02-01T00:00:00Z"),
        )
        wait_for(lambda: count(engine) == 5, 10, "the next tick")
        status, metrics = get(port, "/metrics")
        assert status == 200
        assert 'leadsync_records_total{connector="drop",kind="written"} 5.0' in metrics
        assert (
            'leadsync_run_duration_seconds_count{connector="drop",outcome="succeeded"}'
            in metrics
        )
        assert stop(proc) == 0
        assert listener.recv(4096).decode() == "STOPPING=1"
    finally:
        listener.close()
    assert count(engine, "select count(distinct lead_id) from lead") == 5
    assert count(engine, "select count(*) from run where outcome = 'running'") == 0
    engine.dispose()


def _large(tmp_path: Path, total: int) -> tuple[Path, sa.Engine, int]:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    port = free_port()
    config = write_config(tmp_path, store, port=port, batch_size=100)
    write_csv(tmp_path / "drop.csv", rows(total))
    return config, sa.create_engine(store), port


def _converge(
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
    config: Path,
    engine: sa.Engine,
    total: int,
) -> None:
    proc = start(["run", "--config", str(config)], tmp_path / "daemon2.log")
    procs.append(proc)
    wait_for(lambda: count(engine) == total, 60, "the restarted daemon to converge")
    assert stop(proc) == 0
    assert count(engine, "select count(distinct lead_id) from lead") == total
    assert count(engine, "select count(*) from lead") == total


@pytest.mark.slow
@pytest.mark.parametrize("how", ["term", "term-twice", "kill"])
def test_stop_during_a_large_sync_then_restart_converges(tmp_path, procs, how):
    # large enough that the sync is still going when the signal comes, on a busy box
    # and at full speed (mapping workers on)
    total = 300_000
    config, engine, _ = _large(tmp_path, total)
    proc = start(["run", "--config", str(config)], tmp_path / "daemon.log")
    procs.append(proc)
    wait_for(lambda: count(engine) >= 2_000, 60, "the sync to be under way")
    if how == "term-twice":
        # two different signals: the same one twice may be merged into one delivery
        proc.send_signal(signal.SIGTERM)
        code = stop(proc, signal.SIGINT)
    else:
        code = stop(proc, signal.SIGKILL if how == "kill" else signal.SIGTERM)
    partial = count(engine)
    assert 0 < partial < total
    if how == "term":
        assert code == 0
        # the run stopped between pages: it is recorded, not left running
        outcomes = count(
            engine, "select count(*) from run where outcome = 'interrupted'"
        )
        assert outcomes == 1
    elif how == "term-twice":
        # whichever of the two is handled second exits at once, 128 + its number
        assert code in (128 + signal.SIGINT, 128 + signal.SIGTERM)
    else:
        assert code == -signal.SIGKILL
    _converge(tmp_path, procs, config, engine, total)
    engine.dispose()
