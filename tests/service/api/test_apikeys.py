"""API keys in the store, and the ``apikey`` and ``serve`` commands."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pytest
import typer
from typer.testing import CliRunner

from service.cli_api import apikey_app, serve
from state.apikeys import (
    ApiKeyExists,
    ApiKeyNotFound,
    UnknownScopeError,
    create_api_key,
    hash_key,
    list_api_keys,
    revoke_api_key,
    verify_api_key,
)
from state.db import make_engine, session_scope
from state.migrate import upgrade

from .conftest import T0


def test_key_is_stored_as_a_hash_and_verified(db):
    with session_scope(db) as s:
        info, key = create_api_key(
            s, name="ci", scopes=["leads:read,leads:write"], now=T0
        )
    prefix = key.split("_")[1]
    assert key.startswith(f"lsk_{prefix}_") and len(key) > 40
    assert info.prefix == prefix
    assert info.scopes == ("leads:read", "leads:write")
    with db.connect() as conn:
        stored = conn.exec_driver_sql("SELECT key_hash FROM api_key").scalar_one()
    assert stored == hash_key(key) and key not in stored
    with session_scope(db) as s:
        assert verify_api_key(s, key).name == "ci"
        assert verify_api_key(s, key + "x") is None
        assert verify_api_key(s, "lsk_zz_zz") is None
        assert verify_api_key(s, "garbage") is None
        revoked = revoke_api_key(s, name="ci", now=T0 + timedelta(hours=1))
    assert revoked.revoked_at == T0 + timedelta(hours=1)
    with session_scope(db) as s:
        assert verify_api_key(s, key) is None
        assert list_api_keys(s)[0].revoked_at == T0 + timedelta(hours=1)


def test_key_errors(db):
    with session_scope(db) as s:
        create_api_key(s, name="a", scopes=["admin"], now=T0)
    with session_scope(db) as s, pytest.raises(ApiKeyExists):
        create_api_key(s, name="a", scopes=["admin"], now=T0)
    with session_scope(db) as s, pytest.raises(UnknownScopeError) as exc:
        create_api_key(s, name="b", scopes=["leads:everything"], now=T0)
    assert str(exc.value) == (
        "unknown scope 'leads:everything' (valid: leads:read, leads:write, "
        "leads:sync_create, leads:delete, admin)"
    )
    with session_scope(db) as s, pytest.raises(ApiKeyNotFound):
        revoke_api_key(s, name="nope", now=T0)


@pytest.fixture(name="config")
def config_fixture(tmp_path):
    path = tmp_path / "leadsync.yaml"
    path.write_text("store:\n  url: sqlite:///./store.db\n")
    return path


def _cli():
    app = typer.Typer()
    app.add_typer(apikey_app, name="apikey")
    app.command()(serve)
    return app


def test_apikey_commands(config):
    runner = CliRunner()
    cli = _cli()
    made = runner.invoke(
        cli,
        [
            "apikey",
            "create",
            "--name",
            "ci",
            "--scopes",
            "leads:read,leads:sync_create",
            "--config",
            str(config),
            "--json",
        ],
    )
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    assert created["scopes"] == ["leads:read", "leads:sync_create"]
    assert created["key"].startswith(f"lsk_{created['prefix']}_")
    plain = runner.invoke(
        cli,
        [
            "apikey",
            "create",
            "--name",
            "ops",
            "--scopes",
            "admin",
            "--config",
            str(config),
        ],
    )
    assert plain.exit_code == 0
    assert "will not be shown again" in plain.stdout
    listed = json.loads(
        runner.invoke(cli, ["apikey", "list", "--config", str(config), "--json"]).stdout
    )
    assert [(k["name"], k["scopes"], k["revoked_at"]) for k in listed] == [
        ("ci", ["leads:read", "leads:sync_create"], None),
        ("ops", ["admin"], None),
    ]
    assert all("key" not in k for k in listed)
    table = runner.invoke(cli, ["apikey", "list", "--config", str(config)]).stdout
    assert "ci" in table and created["prefix"] in table and created["key"] not in table
    assert (
        runner.invoke(
            cli, ["apikey", "revoke", "ci", "--config", str(config)]
        ).exit_code
        == 0
    )
    listed = json.loads(
        runner.invoke(cli, ["apikey", "list", "--config", str(config), "--json"]).stdout
    )
    assert listed[0]["revoked_at"] is not None
    bad = runner.invoke(
        cli,
        [
            "apikey",
            "create",
            "--name",
            "x",
            "--scopes",
            "leads:all",
            "--config",
            str(config),
        ],
    )
    assert bad.exit_code == 1
    assert "unknown scope 'leads:all' (valid: leads:read" in bad.stderr
    missing = runner.invoke(cli, ["apikey", "revoke", "ghost", "--config", str(config)])
    assert missing.exit_code == 1
    assert "no API key named 'ghost'" in missing.stderr


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_serve_answers_then_stops_cleanly_on_sigterm(tmp_path, config):
    port = _free_port()
    config.write_text(f"store:\n  url: sqlite:///./store.db\napi:\n  port: {port}\n")
    script = "from service.cli_api import serve; import typer; typer.run(serve)"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "--config", str(config)],
        cwd=os.getcwd(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if (
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve exited with {proc.poll()}"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    assert (
        upgrade(engine)[0] == upgrade(engine)[1]
    )  # the store was created and is current
    engine.dispose()
