"""Logging: structlog for our events, stdlib logs routed through it, secrets redacted.

On a terminal, lines are rendered for people (``ConsoleRenderer``); otherwise one JSON
object per line. Every line passes the redaction step: registered secret values are
replaced by ``***`` wherever they occur, and so is the value of any key named like a
credential (``token``, ``password``, ``api_key``...).
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from typing import IO, Any
from urllib.parse import quote

import structlog
from structlog.processors import ExceptionRenderer
from structlog.tracebacks import ExceptionDictTransformer
from structlog.types import EventDict, Processor, WrappedLogger

__all__ = [
    "configure_logging",
    "redact",
    "register_secret",
    "reset_logging",
]

MASK = "***"
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_SENSITIVE_KEY = re.compile(
    r"token|password|secret|api_?key|authorization|security_token|access_token"
    r"|refresh_token",
    re.IGNORECASE,
)
# Libraries whose stdlib loggers we take over, whatever they configured themselves.
_ROUTED = (
    "apscheduler",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "httpx",
    "alembic",
)
# Below debug these are noise: per-request lines of the HTTP client (which may carry
# URLs), alembic per connection, apscheduler per tick.
_CHATTY = ("httpx", "httpcore", "alembic", "apscheduler")

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_handler: logging.Handler | None = None


def register_secret(value: str) -> None:
    """Redact ``value`` (and its URL-encoded form) from every log line from now on.

    Values shorter than 4 characters are ignored: masking them would garble any text.
    """
    # One registry per process, as the logging configuration itself is.
    global _pattern
    if len(value) < 4:
        return
    added = {value, quote(value, safe="")} - _secrets
    if not added:
        return
    _secrets.update(added)
    # Longest first, so a secret containing another is masked whole.
    ordered = sorted(_secrets, key=len, reverse=True)
    _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    if _pattern is None:
        return text
    return _pattern.sub(MASK, text)


@functools.lru_cache(maxsize=1024)
def _sensitive(key: str) -> bool:
    return _SENSITIVE_KEY.search(key) is not None


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: MASK if _masked(k, v) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def _masked(key: object, value: object) -> bool:
    return value is not None and isinstance(key, str) and _sensitive(key)


def _redact_event(
    _logger: WrappedLogger, _method: str, event_dict: EventDict
) -> EventDict:
    """Processor: mask registered secrets, and the values of credential keys."""
    for key, value in event_dict.items():
        if _masked(key, value):
            event_dict[key] = MASK
        elif isinstance(value, str):
            if _pattern is not None:
                event_dict[key] = _pattern.sub(MASK, value)
        elif isinstance(value, dict | list | tuple):
            event_dict[key] = _scrub(value)
    return event_dict


def _redact_rendered(_logger: WrappedLogger, _method: str, line: Any) -> Any:
    """Last step: mask secrets that reached the text through ``repr`` of objects."""
    return redact(line) if isinstance(line, str) else line


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _is_tty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def configure_logging(
    *, json: bool | None = None, level: str = "info", stream: IO[str] | None = None
) -> None:
    """Configure structlog and the stdlib root logger to write to ``stream``.

    Args:
        json: JSON lines if true, console rendering if false; ``None`` picks JSON unless
            ``stream`` is a terminal.
        level: ``debug``, ``info``, ``warning`` or ``error``.
        stream: where lines go (default: ``sys.stderr``).

    Calling it again replaces the previous configuration instead of adding handlers.
    """
    # The one handler we own on the root logger, replaced on each call.
    global _handler
    try:
        numeric = _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}: use {', '.join(_LEVELS)}"
        ) from None
    out = sys.stderr if stream is None else stream
    as_json = not _is_tty(out) if json is None else json
    shared = _shared_processors()
    if as_json:
        rendering: list[Processor] = [
            # Frame locals could hold lead data or credentials: never render them.
            ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            _redact_event,
            structlog.processors.JSONRenderer(),
        ]
    else:
        rendering = [
            # A plain-text traceback, so the redaction step sees the exception message.
            structlog.processors.format_exc_info,
            _redact_event,
            structlog.dev.ConsoleRenderer(colors=_is_tty(out)),
        ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *rendering,
            _redact_rendered,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(numeric)
    _handler = handler
    for name in _ROUTED:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
        routed.setLevel(logging.NOTSET)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(
            logging.NOTSET if numeric <= logging.DEBUG else logging.WARNING
        )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        context_class=dict,
        # Not cached: tests and the CLI reconfigure, and loggers made at import time
        # must follow the configuration current when they log.
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Undo ``configure_logging`` and forget registered secrets (for tests)."""
    global _handler, _pattern
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None
    logging.getLogger().setLevel(logging.WARNING)
    for name in _CHATTY:
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    _secrets.clear()
    _pattern = None
