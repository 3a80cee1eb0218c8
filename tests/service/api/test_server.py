"""A smoke path through a real uvicorn server on a free loopback port."""

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from service.api import create_app

from .conftest import make_settings


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(name="server_url")
def server_url_fixture(db):
    port = _free_port()
    app = create_app(make_settings(), db=db)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive()


def test_smoke_through_a_real_server(server_url, db):
    from state.apikeys import create_api_key
    from state.db import session_scope

    from .conftest import T0

    with session_scope(db) as s:
        _, key = create_api_key(s, name="smoke", scopes=["admin"], now=T0)
    with httpx.Client(base_url=server_url, timeout=10) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        assert client.get("/v1/leads").status_code == 401
        auth = {"Authorization": f"Bearer {key}"}
        created = client.post(
            "/v1/leads",
            json={"email": "smoke@example.com", "name": "Smoke Test"},
            headers=auth,
        )
        assert created.status_code == 201
        lead_id = created.json()["id"]
        assert (
            client.get(f"/v1/leads/{lead_id}", headers=auth).json()["email"]
            == "smoke@example.com"
        )
        found = client.get(
            "/v1/leads/search", params={"q": "smoke"}, headers=auth
        ).json()
        assert [(h["id"], h["match_field"]) for h in found["data"]] == [
            (lead_id, "email")
        ]
        synced = client.post(
            "/v1/leads/sync",
            json={
                "origin": "crm",
                "leads": [{"lead_id": "1", "email": "s1@example.com"}],
            },
            headers={"X-API-Key": key},
        )
        assert synced.json()["created"] == 1
        assert synced.headers["X-RateLimit-Limit"] == "50"
        listed = client.get("/v1/leads", headers=auth).json()
        assert listed["pagination"]["total"] == 2
        metrics = client.get("/metrics").text
        assert (
            'leadsync_api_requests_total{method="POST",route="/v1/leads",status="201"} 1.0'
            in metrics
        )
        assert 'leadsync_leads{origin="crm",state="live"} 1.0' in metrics
