"""Fixtures for the HubSpot tests (helpers in ``support.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.connectors.hubspot.support import HubSpotEnv, cassette_name, hubspot_env


@pytest.fixture(name="hubspot")
def hubspot_fixture(request: pytest.FixtureRequest) -> Iterator[HubSpotEnv]:
    """A fake HubSpot account and a cassette named after the test."""
    with hubspot_env(cassette_name(request)) as env:
        yield env
