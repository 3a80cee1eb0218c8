"""state.sqlitetune: memory statistics off only when no SQLite object is alive."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from state import sqlitetune

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    sqlitetune._library() is None, reason="no shared SQLite library to configure"
)


def _run(code: str) -> list[str]:
    """Run code in a fresh interpreter (SQLite configured per process)."""
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


_PRELUDE = """
import sqlite3
from state import sqlitetune
lib = sqlitetune._library()
built_off = bool(lib.sqlite3_compileoption_used(b"DEFAULT_MEMSTATUS=0"))
"""


def test_a_fresh_process_turns_statistics_off_and_sqlite_still_works(
    tmp_path: Path,
) -> None:
    out = _run(
        f"""
        print(built_off, sqlitetune.tune(), sqlitetune.tune())
        conn = sqlite3.connect({str(tmp_path / "t.db")!r})
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(body)")
        conn.execute("INSERT INTO t VALUES ('hello world')")
        print(conn.execute("SELECT count(*) FROM t WHERE t MATCH 'hel*'").fetchone()[0])
        print(lib.sqlite3_memory_used(), sqlitetune.memory_statistics_off())
        """
    )
    if out[0] == "True":
        pytest.skip("this SQLite is built with memory statistics off")
    # done once; a second call does nothing; FTS5 and writes work as before
    assert out[1:4] == ["True", "False", "1"]
    # with statistics off, SQLite no longer counts the open connection's memory
    assert out[4:] == ["0", "True"]


def test_an_open_connection_leaves_sqlite_unchanged() -> None:
    out = _run(
        """
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE t (x)")
        print(built_off, sqlitetune.tune(), lib.sqlite3_memory_used() > 0)
        print(sqlitetune.memory_statistics_off())
        conn.execute("INSERT INTO t VALUES (1)")
        print(conn.execute("SELECT count(*) FROM t").fetchone()[0])
        """
    )
    if out[0] == "True":
        pytest.skip("this SQLite is built with memory statistics off")
    # refused: shutting SQLite down under a live connection is undefined
    assert out[1:] == ["False", "True", "False", "1"]


def test_commands_tune_before_their_body_opens_the_store() -> None:
    out = _run(
        """
        from service.clicommon import run_command
        run_command(False, lambda: print(sqlitetune.memory_statistics_off()))
        """
    )
    assert out == ["True"]


def test_an_api_worker_tunes_before_its_app_opens_the_store(tmp_path: Path) -> None:
    config = tmp_path / "leadsync.yaml"
    config.write_text(f"store: {{url: 'sqlite:///{tmp_path / 'store.db'}'}}\n")
    out = _run(
        f"""
        import os
        os.environ["LEADSYNC_CONFIG"] = {str(config)!r}
        from service.api.workers import worker_app
        app = worker_app()
        print(sqlitetune.memory_statistics_off(), type(app).__name__)
        """
    )
    assert out == ["True", "FastAPI"]
