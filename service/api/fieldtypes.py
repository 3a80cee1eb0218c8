"""Field types of the request bodies: validated, normalised, alias-friendly.

Emails and phones go through the mapping language's transforms
(``engine.transforms``), so the API and the mappings agree on what is valid.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasGenerator,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
)
from pydantic.alias_generators import to_camel

from engine.transforms import TransformError, normalize_email, normalize_phone

__all__ = [
    "INPUT_CONFIG",
    "Email",
    "LeadIdText",
    "MatchBy",
    "Origin",
    "Phone",
    "Status",
    "Tag",
    "Text",
    "UtcDatetime",
]

Status = Literal["new", "contacted", "qualified", "converted", "lost"]
MatchBy = Literal["email", "phone", "email_or_phone"]


def _aliases(name: str) -> AliasChoices:
    camel = to_camel(name)
    return AliasChoices(name, camel) if camel != name else AliasChoices(name)


INPUT_CONFIG = ConfigDict(
    extra="forbid",
    alias_generator=AliasGenerator(validation_alias=_aliases),
    str_strip_whitespace=True,
)


def _email(value: str) -> str:
    try:
        return normalize_email(value)
    except TransformError as exc:
        raise ValueError(str(exc)) from None


def _phone(value: str) -> str:
    try:
        return normalize_phone(value)
    except TransformError as exc:
        if not value.strip().startswith("+"):
            raise ValueError(
                "invalid phone: use E.164 with a country code, e.g. +14155550123"
            ) from None
        raise ValueError(str(exc)) from None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _id_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(_email)]
Phone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_phone)]
Text = Annotated[str, StringConstraints(max_length=1000)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100)]
LeadIdText = Annotated[
    str, BeforeValidator(_id_text), StringConstraints(min_length=1, max_length=255)
]
Origin = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
]
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
