"""The config model of a ``type: hubspot`` connector, and what differs per object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Self

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    field_validator,
    model_validator,
)

from connectors.base import ConnectorConfig, Schedule, parse_duration

__all__ = ["OBJECTS", "HubSpotAuth", "HubSpotConfig", "ObjectSpec"]

_URL: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """What the connector must know of one CRM object type."""

    name: str
    modified: str  # the property searched and sorted on (crm-notes §1.4)
    scope: str  # the OAuth / private-app scope that reads it


OBJECTS: dict[str, ObjectSpec] = {
    "contacts": ObjectSpec("contacts", "lastmodifieddate", "crm.objects.contacts.read"),
    "companies": ObjectSpec(
        "companies", "hs_lastmodifieddate", "crm.objects.companies.read"
    ),
    "deals": ObjectSpec("deals", "hs_lastmodifieddate", "crm.objects.deals.read"),
}


class HubSpotAuth(BaseModel):
    """A private-app token, or OAuth: a refresh token with the app's id and secret.

    With OAuth the connector gets access tokens itself and refreshes them before they
    expire, so ``access_token`` is left out.
    """

    model_config = ConfigDict(extra="forbid")

    access_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> Self:
        oauth = (self.refresh_token, self.client_id, self.client_secret)
        if any(part is not None for part in oauth):
            if any(part is None for part in oauth):
                raise ValueError(
                    "OAuth needs refresh_token, client_id and client_secret together"
                )
            if self.access_token is not None:
                raise ValueError(
                    "with OAuth (refresh_token) leave access_token out: the connector "
                    "gets access tokens itself and refreshes them before they expire"
                )
        elif self.access_token is None:
            raise ValueError(
                "give access_token (a private app token), or refresh_token, client_id "
                "and client_secret (OAuth)"
            )
        return self

    @property
    def oauth(self) -> bool:
        """Whether the token is refreshed through OAuth."""
        return self.refresh_token is not None


def _http_url(value: str) -> str:
    try:
        _URL.validate_python(value)
    except ValueError as exc:
        raise ValueError(f"base_url is not an http(s) URL: {value}") from exc
    return value.rstrip("/")


class HubSpotConfig(ConnectorConfig):
    """Config of a ``type: hubspot`` connector (defaults are HubSpot's, not generic)."""

    type: Literal["hubspot"] = "hubspot"
    base_url: str = "https://api.hubapi.com"
    auth: HubSpotAuth
    object: Literal["contacts", "companies", "deals"] = "contacts"
    # HubSpot's search index lags behind writes (crm-notes P3): read behind `now`.
    lag: timedelta = timedelta(minutes=2)
    lookback: timedelta = timedelta(minutes=2)
    sweep: Schedule | None = Field(
        default_factory=lambda: Schedule(every=timedelta(hours=24))
    )
    properties: list[str] = Field(default_factory=list)
    deletions_every: timedelta = timedelta(0)
    search_rate: float = Field(default=4.0, ge=0)
    timeout: timedelta = timedelta(seconds=30)
    max_attempts: int = Field(default=6, ge=1, le=50)
    retry_budget: timedelta = timedelta(minutes=5)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("deletions_every", "timeout", "retry_budget", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return parse_duration(value)

    @property
    def spec(self) -> ObjectSpec:
        """The object's modification property and scope."""
        return OBJECTS[self.object]
