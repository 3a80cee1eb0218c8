import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from service.logconfig import configure_logging, redact, register_secret, reset_logging

TOKEN = "tok-9f8e7d6c5b4a"  # noqa: S105 (a fake token that must not reach the logs)


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    reset_logging()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(name="stream")
def stream_fixture() -> io.StringIO:
    return io.StringIO()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_redact_secrets_and_carry_context(stream):
    configure_logging(json=True, stream=stream)
    register_secret(TOKEN)
    structlog.contextvars.bind_contextvars(run_id="r-1", connector="csv-drop")
    structlog.get_logger("leadsync.test").info(
        "page_upserted", note=f"sent {TOKEN} upstream", api_key="plain-key", count=3
    )
    logging.getLogger("httpx").warning("request failed for %s", TOKEN)
    assert TOKEN not in stream.getvalue()
    first, second = lines(stream)
    assert {k: first[k] for k in ("event", "note", "api_key", "count", "level")} == {
        "event": "page_upserted",
        "note": "sent *** upstream",
        "api_key": "***",
        "count": 3,
        "level": "info",
    }
    assert {k: second[k] for k in ("event", "level", "logger")} == {
        "event": "request failed for ***",
        "level": "warning",
        "logger": "httpx",
    }
    for line in (first, second):
        assert (line["run_id"], line["connector"]) == ("r-1", "csv-drop")
        assert line["timestamp"].endswith("Z")


def test_nested_values_and_credential_keys_are_masked(stream):
    configure_logging(json=True, stream=stream)
    register_secret(TOKEN)
    structlog.get_logger().warning(
        "request_failed",
        headers={"Authorization": "Bearer abc", "Accept": "json"},
        urls=[f"https://x.test/?api_token={TOKEN}", "https://x.test/ok"],
        refresh_token=None,
    )
    [line] = lines(stream)
    assert line["headers"] == {"Authorization": "***", "Accept": "json"}
    assert line["urls"] == ["https://x.test/?api_token=***", "https://x.test/ok"]
    assert line["refresh_token"] is None


def fail_with(exc: Exception) -> None:
    raise exc


def test_exception_text_is_redacted(stream):
    configure_logging(json=True, stream=stream)
    register_secret(TOKEN)
    log = structlog.get_logger()
    try:
        fail_with(RuntimeError(f"login refused for {TOKEN}"))
    except RuntimeError:
        log.exception("login_failed")
    try:
        fail_with(ValueError(f"bad {TOKEN}"))
    except ValueError:
        logging.getLogger("apscheduler").exception("job failed")
    assert TOKEN not in stream.getvalue()
    first, second = lines(stream)
    assert first["exception"][0]["exc_value"] == "login refused for ***"
    assert second["exception"][0]["exc_value"] == "bad ***"


def test_objects_rendered_by_repr_are_redacted(stream):
    class Client:
        def __repr__(self) -> str:
            return f"Client(token={TOKEN!r})"

    configure_logging(json=True, stream=stream)
    register_secret(TOKEN)
    structlog.get_logger().info("client_made", client=Client())
    assert lines(stream)[0]["client"] == "Client(token='***')"


def test_console_rendering_is_redacted(stream):
    configure_logging(json=False, stream=stream)
    register_secret(TOKEN)
    log = structlog.get_logger()
    log.info("run_finished", note=TOKEN)
    try:
        fail_with(RuntimeError(f"bad {TOKEN}"))
    except RuntimeError:
        log.exception("run_failed")
    text = stream.getvalue()
    assert "run_finished" in text
    assert "note=***" in text
    assert "RuntimeError: bad ***" in text
    assert TOKEN not in text


def test_auto_format_is_json_when_not_a_tty(stream):
    configure_logging(stream=stream)
    structlog.get_logger().info("run_started")
    assert lines(stream)[0]["event"] == "run_started"


def test_configuring_twice_replaces_the_handler(stream):
    other = io.StringIO()
    configure_logging(json=True, stream=other)
    configure_logging(json=True, stream=stream)
    structlog.get_logger().info("once")
    logging.getLogger("uvicorn.error").warning("also once")
    assert [line["event"] for line in lines(stream)] == ["once", "also once"]
    assert other.getvalue() == ""


def test_level_filters_events(stream):
    configure_logging(json=True, level="warning", stream=stream)
    structlog.get_logger().info("hidden")
    logging.getLogger("alembic").info("hidden too")
    structlog.get_logger().error("shown")
    assert [line["event"] for line in lines(stream)] == ["shown"]


def test_http_client_requests_only_at_debug(stream):
    configure_logging(json=True, level="info", stream=stream)
    logging.getLogger("httpx").info("HTTP Request: GET https://x.test 200")
    assert stream.getvalue() == ""
    configure_logging(json=True, level="debug", stream=stream)
    logging.getLogger("httpx").info("HTTP Request: GET https://x.test 200")
    assert [line["event"] for line in lines(stream)] == [
        "HTTP Request: GET https://x.test 200"
    ]


def test_unknown_level_is_refused(stream):
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging(level="loud", stream=stream)


def test_redact():
    assert redact(f"x {TOKEN} y") == f"x {TOKEN} y"
    register_secret(TOKEN)
    register_secret("abc")  # too short to mask
    register_secret("p@ss word/1")
    assert redact(f"x {TOKEN} y abc") == "x *** y abc"
    assert redact("u=p%40ss%20word%2F1&v=p@ss word/1") == "u=***&v=***"
