"""Prometheus metrics: requests by route template, and store gauges at scrape time."""

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from service.api import create_app
from state.db import session_scope
from state.syncstate import FailureItem, finish_run, record_failures, start_run

from .conftest import T0, make_settings


def test_requests_are_counted_by_route_template(api):
    lead = api.create()
    api.request("GET", f"/v1/leads/{lead['id']}")
    api.request("GET", "/v1/leads/lead_missing")
    api.client.get("/not/a/route")
    text = api.client.get("/metrics").text
    assert (
        'leadsync_api_requests_total{method="GET",route="/v1/leads/{id}",status="200"} 1.0'
        in text
    )
    assert (
        'leadsync_api_requests_total{method="GET",route="/v1/leads/{id}",status="404"} 1.0'
        in text
    )
    assert (
        'leadsync_api_requests_total{method="GET",route="unmatched",status="404"} 1.0'
        in text
    )
    assert (
        'leadsync_api_request_duration_seconds_count{method="POST",route="/v1/leads"} 1.0'
        in text
    )
    assert "lead_missing" not in text


def test_store_gauges(api):
    api.create()
    doomed = api.create()
    api.request("DELETE", f"/v1/leads/{doomed['id']}")
    finished = T0 + timedelta(minutes=1)
    with session_scope(api.db) as s:
        run = start_run(s, connector="hubspot-main", kind="sync", now=T0)
        finish_run(
            s, run_id=run.id, outcome="succeeded", counts={}, error=None, now=finished
        )
        failed = start_run(s, connector="hubspot-main", kind="sync", now=finished)
        finish_run(
            s,
            run_id=failed.id,
            outcome="failed",
            counts={},
            error="x",
            now=finished + timedelta(hours=1),
        )
        record_failures(
            s,
            connector="csv-drop",
            run_id=failed.id,
            items=[
                FailureItem(
                    item_key="r1",
                    lead_id="r1",
                    stage="mapping",
                    code="bad",
                    message="m",
                )
            ],
            now=finished,
            max_attempts=5,
            base=timedelta(minutes=1),
            cap=timedelta(hours=1),
        )
    samples = {
        (m.name, tuple(sorted(s.labels.items()))): s.value
        for m in text_string_to_metric_families(api.client.get("/metrics").text)
        for s in m.samples
    }
    assert samples[("leadsync_leads", (("origin", "api"), ("state", "live")))] == 1
    assert samples[("leadsync_leads", (("origin", "api"), ("state", "deleted")))] == 1
    key = (
        "leadsync_last_successful_sync_timestamp_seconds",
        (("connector", "hubspot-main"),),
    )
    assert samples[key] == finished.timestamp()
    assert (
        samples[
            ("leadsync_failures", (("connector", "csv-drop"), ("status", "pending")))
        ]
        == 1
    )
    assert samples[("leadsync_store_up", ())] == 1


def test_each_app_has_its_own_registry(db):
    first = create_app(make_settings(), db=db)
    second = create_app(make_settings(), db=db)
    assert first.state.metrics.registry is not second.state.metrics.registry
