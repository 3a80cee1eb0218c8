"""The daemon's parts in-process: notify protocol, triggers, reload, backoff, settings."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]
from apscheduler.triggers.interval import (  # type: ignore[import-untyped]
    IntervalTrigger,
)

from connectors.base import Schedule
from connectors.errors import ConfigError
from service.context import AppContext
from service.daemon import Daemon
from service.daemon_triggers import make_trigger
from service.sdnotify import Notifier
from service.settings import load_settings
from state.db import session_scope
from state.syncstate import get_cursor
from tests.service.test_daemon import write_config


def test_notifier_sends_datagrams_and_computes_the_watchdog(tmp_path):
    path = str(tmp_path / "n.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(5)
        env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"}
        notifier = Notifier(env)
        assert notifier.enabled
        assert notifier.watchdog_interval == 2.0
        assert notifier.ready("ok")
        assert listener.recv(100) == b"READY=1\nSTATUS=ok"
        assert notifier.watchdog()
        assert listener.recv(100) == b"WATCHDOG=1"
    other_pid = {**env, "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(other_pid).watchdog_interval is None
    silent = Notifier({})
    assert not silent.enabled
    assert silent.stopping() is False
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).ready() is False


def test_triggers_from_schedules():
    every = make_trigger(
        Schedule(every=timedelta(seconds=90), jitter=timedelta(seconds=5))
    )
    assert isinstance(every, IntervalTrigger)
    assert (every.interval, every.jitter) == (timedelta(seconds=90), 5)
    cron = make_trigger(Schedule(cron="*/10 * * * *"))
    assert isinstance(cron, CronTrigger)
    start = datetime(2024, 1, 1, 0, 3, tzinfo=UTC)
    assert cron.get_next_fire_time(None, start) == datetime(
        2024, 1, 1, 0, 10, tzinfo=UTC
    )
    with pytest.raises(ConfigError, match="invalid cron"):
        make_trigger(Schedule(cron="every tuesday"))


def test_unknown_daemon_keys_are_rejected(tmp_path):
    config = write_config(
        tmp_path, "sqlite:///x.db", port=8000, extra="daemon: {grace: 3s}\n"
    )
    text = config.read_text().replace(
        "daemon: {shutdown_grace: 10s, lease_ttl: 3s}\n", "", 1
    )
    config.write_text(text)
    with pytest.raises(ConfigError, match="grace"):
        load_settings(config)


def test_reload_applies_a_valid_config_and_keeps_the_old_on_error(tmp_path):
    store = f"sqlite:///{tmp_path / 's.db'}"
    config = write_config(tmp_path, store, port=8000, connectors=["a", "b"])
    ctx = AppContext(load_settings(config))
    daemon = Daemon(ctx, config_path=config)
    daemon.jobs.apply(ctx)
    assert daemon.jobs.job_ids() == ["sync:a", "sync:b"]
    write_config(tmp_path, store, port=8000, connectors=["b", "c"])
    assert daemon.reload()
    assert daemon.jobs.job_ids() == ["sync:b", "sync:c"]
    config.write_text(config.read_text().replace("every: 1s", "every: soon"))
    assert not daemon.reload()
    assert daemon.jobs.job_ids() == ["sync:b", "sync:c"]
    assert [c.name for c in daemon.ctx.connectors()] == ["b", "c"]
    ctx.close()


def test_a_failing_connector_backs_off_and_says_so(tmp_path):
    store = f"sqlite:///{tmp_path / 's.db'}"
    config = write_config(
        tmp_path,
        store,
        port=8000,
        extra="",
    )
    ctx = AppContext(load_settings(config))
    daemon = Daemon(ctx, config_path=config)
    jobs = daemon.jobs
    outcomes = []
    jobs._observe = lambda name, outcome, seconds, quota: outcomes.append(outcome)
    jobs.run_connector("drop")  # drop.csv does not exist: the run fails
    assert outcomes == ["failed"]
    assert jobs.held() == {"drop": 1}
    with session_scope(ctx.db) as session:
        row = get_cursor(session, "drop")
        assert row is not None
        state = row.state["daemon"]
    assert state == {"consecutive_failures": 1, "backoff_until": None}
    jobs.run_connector("drop")  # the second failure in a row starts the backoff
    with session_scope(ctx.db) as session:
        row = get_cursor(session, "drop")
        assert row is not None
        state = row.state["daemon"]
    assert state["consecutive_failures"] == 2
    until = datetime.fromisoformat(state["backoff_until"])
    assert timedelta(seconds=25) < until - datetime.now(UTC) <= timedelta(seconds=30)
    jobs.run_connector("drop")  # skipped: backing off
    assert outcomes == ["failed", "failed"]
    assert jobs.stop(1.0)
    assert jobs.held() == {}
    ctx.close()


def test_run_metrics_record_duration_and_source_quota(tmp_path):
    from service.api.metrics import ApiMetrics
    from state.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    metrics = ApiMetrics(engine)
    metrics.observe_run("hs", "succeeded", 2.0, quota=87.0)
    metrics.observe_run("csv", "failed", 0.2, quota=None)
    text = metrics.render().decode()
    assert 'leadsync_source_quota_remaining{connector="hs"} 87.0' in text
    assert 'connector="csv"} ' not in text.split("leadsync_source_quota")[-1]
    assert (
        'leadsync_run_duration_seconds_count{connector="hs",outcome="succeeded"} 1.0'
        in text
    )
    engine.dispose()


def test_a_stale_lease_token_fails_the_run_and_a_stop_interrupts_it(tmp_path):
    import threading

    import sqlalchemy as sa

    from engine import runner
    from state.leases import acquire_lease
    from tests.service.test_daemon import rows, write_csv

    config = write_config(tmp_path, f"sqlite:///{tmp_path / 's.db'}", port=8000)
    write_csv(tmp_path / "drop.csv", rows(5))
    ctx = AppContext(load_settings(config))
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    with session_scope(ctx.db) as session:
        acquire_lease(session, connector="drop", owner="a", ttl=timedelta(1), now=t0)
        later = t0 + timedelta(days=2)
        acquire_lease(session, connector="drop", owner="b", ttl=timedelta(1), now=later)
    syncer = ctx.syncer(ctx.connector("drop"))
    syncer.fence = 1  # "a" lost the lease to "b" (token 2)
    with syncer.source:
        report = runner.sync(syncer)
    assert report.outcome == "failed"
    assert "taken over" in (report.error or "")
    syncer = ctx.syncer(ctx.connector("drop"))
    syncer.stop = threading.Event()
    syncer.stop.set()
    with syncer.source:
        report = runner.sync(syncer)
    assert (report.outcome, report.counts["read"]) == ("interrupted", 0)
    with ctx.db.connect() as conn:
        assert conn.execute(sa.text("select count(*) from lead")).scalar_one() == 0
        assert conn.execute(sa.text("select count(*) from cursor")).scalar_one() == 0
    syncer.fence = 2
    syncer.stop = None
    with syncer.source:
        assert runner.sync(syncer).outcome == "succeeded"
    with ctx.db.connect() as conn:
        assert conn.execute(sa.text("select count(*) from lead")).scalar_one() == 5
    ctx.close()
