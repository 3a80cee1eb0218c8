"""The one ``vcr.VCR`` every cassette test uses (style.md, Testing pattern).

``VCR_RECORD_MODE`` (default ``none``: replay only, no request may leave the process)
selects the record mode. Recorded cassettes never hold a token, a secret or a real
person's email or name: the ``Authorization`` header, the ``api_token``/``hapikey``
query parameters and OAuth form secrets are dropped, and ``scrub_response`` rewrites
emails, names and tokens in response bodies. Test data uses ``@example.com`` emails and
names starting with ``Test``, which the scrubber leaves alone, so a recording run and a
replay see the same values.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import vcr

__all__ = ["CASSETTES", "VCR", "scrub_response", "scrub_text"]

CASSETTES = Path(__file__).parent / "cassettes"

_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]+@(?!example\.(?:com|org|net)\b)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",
    re.IGNORECASE,
)
_NAME = re.compile(
    r'("(?:firstname|lastname|first_name|last_name|full_name)"\s*:\s*)"(?!Test)[^"]*"'
)
_TOKEN = re.compile(r'("(?:access_token|refresh_token|id_token)"\s*:\s*)"[^"]*"')


def scrub_text(text: str) -> str:
    """Replace emails (outside example.com), person names and tokens in ``text``."""
    text = _EMAIL.sub("redacted@example.com", text)
    text = _NAME.sub(r'\1"Redacted"', text)
    return _TOKEN.sub(r'\1"REDACTED"', text)


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """``before_record_response``: a scrubbed copy of the response."""
    body = response.get("body", {}).get("string")
    if not body:
        return response
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    scrubbed = scrub_text(text)
    if scrubbed == text:
        return response
    out = dict(response)
    out["body"] = {**response["body"], "string": scrubbed.encode()}
    headers = dict(response.get("headers", {}))
    for key in list(headers):
        if key.lower() == "content-length":
            headers[key] = [str(len(out["body"]["string"]))]
    out["headers"] = headers
    return out


VCR = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode=os.environ.get("VCR_RECORD_MODE", "none"),
    filter_headers=["authorization"],
    filter_query_parameters=["api_token", "hapikey"],
    filter_post_data_parameters=["client_secret", "refresh_token", "code"],
    decode_compressed_response=True,
    before_record_response=scrub_response,
    serializer="json",
    path_transformer=vcr.VCR.ensure_suffix(".json"),
    match_on=("method", "scheme", "host", "port", "path", "query", "body"),
)
