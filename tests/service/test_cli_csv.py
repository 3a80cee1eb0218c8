"""End-to-end: the ``leadsync`` CLI syncing CSV files into a store, run after run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from service.cli import app
from service.logconfig import reset_logging

MAPPING = """\
lead_id: id
updated_at: updated_at
fields:
  email: {from: email, transform: [strip, lower, email]}
  first_name: first_name
  company: company
  phone: {from: phone, transform: [{e164: {region: US}}]}
  status: {from: stage, map: {Open: contacted, Won: converted}, default: new}
  score: {from: score, type: int}
  tags: {from: tags, split: ";"}
  custom.industry: industry
require: [email]
"""
HEADER = [
    "id",
    "email",
    "first_name",
    "company",
    "phone",
    "stage",
    "score",
    "tags",
    "industry",
    "updated_at",
]


def row(i: int, **over: str) -> dict[str, str]:
    base = {
        "id": f"L{i:05d}",
        "email": f" User{i}@Example.com ",
        "first_name": f"U{i}",
        "company": "Acme",
        "phone": f"(415) 555-{i % 10000:04d}",
        "stage": "Open",
        "score": str(i % 100),
        "tags": "a;b",
        "industry": "software",
        "updated_at": "2024-01-01T00:00:00Z",
    }
    base.update(over)
    return base


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)


class Project:
    """A config folder with a CSV connector, and a way to run the CLI on it."""

    def __init__(self, root: Path, db_url: str, **connector: object) -> None:
        self.root = root
        self.db_url = db_url
        self.csv = root / "leads.csv"
        (root / "mapping.yaml").write_text(MAPPING)
        self.write_config(**connector)

    def write_config(self, **connector: object) -> None:
        extra = "".join(f", {k}: {json.dumps(v)}" for k, v in connector.items())
        (self.root / "leadsync.yaml").write_text(
            f"store: {{url: '{self.db_url}'}}\n"
            "lead_fields: [{name: industry, type: string}]\n"
            "connectors:\n"
            f"  - {{name: drop, type: csv, path: leads.csv, mapping: mapping.yaml{extra}}}\n"
        )

    @property
    def config(self) -> str:
        return str(self.root / "leadsync.yaml")

    def cli(self, *args: str, code: int = 0) -> str:
        runner = CliRunner()
        try:
            result = runner.invoke(app, [*args, "--config", self.config])
        finally:
            reset_logging()
        assert result.exit_code == code, result.output
        return result.stdout

    def sync(self, *args: str, code: int = 0) -> dict[str, object]:
        out = self.cli("sync", *args, "--json", code=code)
        return json.loads(out)[0]

    def leads(self, include_deleted: bool = False) -> dict[str, dict[str, object]]:
        args = ["export"] + (["--include-deleted"] if include_deleted else [])
        lines = self.cli(*args).splitlines()
        return {x["lead_id"]: x for x in map(json.loads, lines)}


@pytest.fixture(name="project")
def project_fixture(tmp_path: Path, db_url: str) -> Project:
    return Project(tmp_path, db_url)


def test_first_sync_stores_exactly_the_source(project: Project) -> None:
    write_csv(project.csv, [row(1), row(2, stage="Won", tags="", phone="")])
    report = project.sync()
    assert report["outcome"] == "succeeded"
    assert (report["read"], report["created"], report["failed"]) == (2, 2, 0)
    leads = project.leads()
    one = {
        k: v
        for k, v in leads["L00001"].items()
        if k not in ("id", "created_at", "updated_at")
    }
    assert one == {
        "origin": "drop",
        "lead_id": "L00001",
        "email": "user1@example.com",
        "first_name": "U1",
        "last_name": None,
        "name": None,
        "company": "Acme",
        "title": None,
        "phone": "+14155550001",
        "owner": None,
        "status": "contacted",
        "source": None,
        "score": 1,
        "tags": ["a", "b"],
        "custom_fields": {"industry": "software"},
        "source_updated_at": "2024-01-01T00:00:00Z",
        "deleted_at": None,
    }
    two = leads["L00002"]
    assert (two["status"], two["tags"], two["phone"]) == ("converted", [], None)
    assert leads["L00001"]["id"].startswith("lead_")


def test_second_identical_run_writes_nothing(project: Project) -> None:
    write_csv(project.csv, [row(i) for i in range(50)])
    project.sync()
    before = project.leads()
    report = project.sync()
    assert (report["created"], report["updated"], report["deleted"]) == (0, 0, 0)
    assert report["unchanged"] == 50
    assert project.leads() == before


def test_modified_rows_are_updated_and_only_they(project: Project) -> None:
    write_csv(project.csv, [row(i) for i in range(10)])
    project.sync()
    before = project.leads()
    write_csv(
        project.csv,
        [row(i, company="Globex") if i in (3, 7) else row(i) for i in range(10)],
    )
    report = project.sync()
    assert (report["updated"], report["unchanged"]) == (2, 8)
    after = project.leads()
    assert {k for k in after if after[k] != before[k]} == {"L00003", "L00007"}
    assert after["L00003"]["company"] == "Globex"
    assert after["L00003"]["updated_at"] > before["L00003"]["updated_at"]


def test_incremental_same_timestamp_rows_across_batches(project: Project) -> None:
    project.write_config(updated_at_column="updated_at", batch_size=100)
    write_csv(project.csv, [row(i) for i in range(1000)])
    assert project.sync()["created"] == 1000
    # later rows stamped with the very same time, and a change, are still picked up
    write_csv(
        project.csv,
        [row(i) for i in range(1003)]
        + [row(5, company="Changed", updated_at="2024-01-01T00:00:01Z")],
    )
    report = project.sync()
    assert (report["created"], report["updated"]) == (3, 1)
    leads = project.leads()
    assert len(leads) == 1003 and leads["L00005"]["company"] == "Changed"
    status = json.loads(project.cli("status", "--json"))[0]
    assert status["cursor"] == {"ts": "2024-01-01T00:00:01Z", "id": "L00005"}


def test_deleted_rows_are_tombstoned_with_a_mass_delete_guard(project: Project) -> None:
    write_csv(project.csv, [row(i) for i in range(10)])
    project.sync()
    write_csv(project.csv, [row(i) for i in range(1, 10)])
    assert project.sync()["deleted"] == 1
    gone = project.leads(include_deleted=True)["L00000"]
    assert gone["deleted_at"] is not None and gone["updated_at"] == gone["deleted_at"]
    write_csv(project.csv, [row(9)])
    report = project.sync(code=1)
    assert report["outcome"] == "failed"
    assert "refusing to delete 8 of 9 leads" in report["error"]
    assert len(project.leads()) == 9
    assert project.sync("--allow-mass-delete")["deleted"] == 8
    assert list(project.leads()) == ["L00009"]


def test_malformed_rows_are_logged_then_resolved_when_fixed(project: Project) -> None:
    rows = [row(i) for i in range(5)]
    rows[2]["email"] = "not an email"
    write_csv(project.csv, rows)
    with project.csv.open("a") as fh:
        fh.write("L00099,x@y.com,too,few\n")
    report = project.sync()
    assert (report["created"], report["failed"]) == (4, 2)
    failures = {
        f["item_key"]: f for f in json.loads(project.cli("failures", "list", "--json"))
    }
    assert "leads.csv:4" in failures["L00002"]["message"]
    assert failures["L00002"]["code"] == "transform"
    bad_row = failures["L00099"]
    assert "line 7" in bad_row["message"] and "expected 10 fields" in bad_row["message"]
    rows[2]["email"] = "fixed@example.com"
    write_csv(project.csv, [*rows, row(99)])
    report = project.sync()
    assert report["resolved"] == 2
    assert json.loads(project.cli("failures", "list", "--json")) == []
    assert project.leads()["L00002"]["email"] == "fixed@example.com"
    status = json.loads(project.cli("status", "--json"))[0]
    assert status["failures"] == {"pending": 0, "dead": 0}
    assert status["leads"] == {"live": 6, "deleted": 0}


def test_remap_after_a_mapping_change(project: Project) -> None:
    write_csv(project.csv, [row(i) for i in range(3)])
    project.sync()
    (project.root / "mapping.yaml").write_text(
        MAPPING.replace(
            "company: company", "company: {from: company, transform: [upper]}"
        )
    )
    report = json.loads(project.cli("remap", "drop", "--json"))[0]
    assert (report["kind"], report["updated"]) == ("remap", 3)
    assert {v["company"] for v in project.leads().values()} == {"ACME"}


def test_backfill_dry_run_writes_nothing(project: Project) -> None:
    rows = [row(i) for i in range(4)]
    rows[1]["stage"] = "Mystery"
    write_csv(project.csv, rows)
    out = json.loads(project.cli("backfill", "drop", "--dry-run", "--json"))
    assert (out["read"], out["mapped"], out["failed"]) == (4, 4, 0)
    assert out["unmapped_values"] == [
        {"field": "status", "value": "Mystery", "count": 1}
    ]
    assert project.leads() == {}


def test_check_config_names_file_key_and_line(project: Project) -> None:
    (project.root / "mapping.yaml").write_text(
        MAPPING.replace("[strip, lower, email]", "[strip, lowercase]")
    )
    runner = CliRunner()
    result = runner.invoke(app, ["check-config", "--config", project.config])
    reset_logging()
    assert result.exit_code == 2
    assert (
        "mapping.yaml:4: fields.email.transform[1]: unknown transform 'lowercase'"
        in (result.stderr)
    )


def test_export_csv(project: Project) -> None:
    write_csv(project.csv, [row(1)])
    project.sync()
    out = project.cli("export", "--format", "csv")
    lines = list(csv.DictReader(out.splitlines()))
    assert len(lines) == 1
    assert (lines[0]["email"], lines[0]["tags"], lines[0]["custom_fields"]) == (
        "user1@example.com",
        "a;b",
        '{"industry": "software"}',
    )


def start_sync(project: Project) -> subprocess.Popen[bytes]:
    """``leadsync sync`` on the project in a child process (to be killed)."""
    cmd = [sys.executable, "-m", "service.cli", "sync", "--config", project.config]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.mark.slow
def test_kill_between_batches_then_restart_converges(project: Project) -> None:
    total = 30_000
    project.write_config(batch_size=500)
    write_csv(project.csv, [row(i) for i in range(total)])
    engine = sa.create_engine(project.db_url)
    proc = start_sync(project)
    try:
        deadline = time.monotonic() + 120
        stored = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with engine.connect() as conn:
                    stored = conn.execute(
                        sa.text("select count(*) from lead")
                    ).scalar_one()
            except sa.exc.DBAPIError:
                stored = 0  # the schema is not there yet
            if stored >= 1_000:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the sync finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with engine.connect() as conn:
        partial = conn.execute(sa.text("select count(*) from lead")).scalar_one()
    assert 0 < partial < total
    report = project.sync()
    assert report["outcome"] == "succeeded"
    assert report["created"] == total - partial
    with engine.connect() as conn:
        count, distinct = conn.execute(
            sa.text("select count(*), count(distinct lead_id) from lead")
        ).one()
        runs = dict(
            conn.execute(
                sa.text("select outcome, count(*) from run group by outcome")
            ).all()
        )
    engine.dispose()
    assert count == distinct == total
    assert runs == {"abandoned": 1, "succeeded": 1}


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_kill_after_the_indexes_were_deferred_then_restart_rebuilds_them(
    project: Project,
) -> None:
    """A first load killed while its email and phone indexes are dropped.

    Its mapping worker exits with it, and the next sync builds the indexes again and
    converges, with no duplicates.
    """
    from state import bulkindex

    total = 60_000
    project.write_config(batch_size=500, map_workers=1)
    write_csv(project.csv, [row(i) for i in range(total)])
    engine = sa.create_engine(project.db_url)
    proc = start_sync(project)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        dropped = False
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= _children(proc.pid)
            try:
                dropped = bool(bulkindex.missing(engine))
            except sa.exc.SQLAlchemyError:
                dropped = False  # the schema is not there yet
            if dropped and workers:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the sync finished before it could be killed"
        assert dropped and workers
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "a mapping worker outlived its run"
    assert {"ix_lead_email", "ix_lead_phone"} <= set(bulkindex.missing(engine))
    report = project.sync()
    assert report["outcome"] == "succeeded"
    assert bulkindex.missing(engine) == []
    with engine.connect() as conn:
        count, distinct = conn.execute(
            sa.text("select count(*), count(distinct lead_id) from lead")
        ).one()
    engine.dispose()
    assert count == distinct == total


def test_status_shows_a_daemon_backoff(project: Project) -> None:
    from datetime import UTC, datetime

    from state.db import make_engine, session_scope
    from state.syncstate import save_cursor_state

    write_csv(project.csv, [row(1)])
    project.sync()
    engine = make_engine(project.db_url)
    with session_scope(engine) as session:
        save_cursor_state(
            session,
            connector="drop",
            now=datetime.now(UTC),
            state={
                "daemon": {
                    "consecutive_failures": 3,
                    "backoff_until": "2030-01-01T00:00:00+00:00",
                }
            },
        )
    engine.dispose()
    status = json.loads(project.cli("status", "--json"))[0]
    assert status["backoff"] == {
        "consecutive_failures": 3,
        "backoff_until": "2030-01-01T00:00:00+00:00",
    }
    assert "2030-01-01" in project.cli("status")  # the table wraps the text


def test_duplicate_ids_in_one_file_last_row_wins_across_pages(project: Project) -> None:
    project.write_config(batch_size=1)
    write_csv(project.csv, [row(1, company="Second")])
    project.sync()
    # the same id twice; pages are written by a thread while the next page is mapped
    for _ in range(5):
        write_csv(project.csv, [row(1, company="First"), row(1, company="Second")])
        project.sync()
        assert project.leads()["L00001"]["company"] == "Second"
