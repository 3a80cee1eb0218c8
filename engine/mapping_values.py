"""The value parsers and normalisers behind the mapping language's transforms.

Each raises ``TransformError`` with a message that says what failed and why, showing at
most the offending value (truncated), never the rest of the record.
"""

import math
import re
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

__all__ = [
    "TransformError",
    "format_datetime",
    "normalize_email",
    "normalize_phone",
    "parse_bool",
    "parse_datetime",
    "parse_float",
    "parse_int",
    "show_value",
    "to_text",
]

_E164 = phonenumbers.PhoneNumberFormat.E164
_PARSE_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}
_POSSIBLE_REASONS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong number of digits",
}
_EPOCH = re.compile(r"^-?(\d+)(?:\.\d+)?$")
_SLASHED_YMD = re.compile(r"^\d{4}/\d{1,2}/\d{1,2}\b")
_ZONE_WORD = re.compile(r"\s*(?:UTC|GMT)$", re.IGNORECASE)
_TRUE = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "off", "0"})


class TransformError(ValueError):
    """Raised when a value fails a transform or a parser; the message says why."""


def show_value(value: object) -> str:
    """The offending value for a message, truncated so no record leaks into logs."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"'{text}'" if isinstance(value, str) else text


# An ASCII dot-atom local part (RFC 5322) is valid whatever the domain, so such an
# address is valid iff its domain is: the domain check, email-validator's costly part,
# is then cached per domain. Anything else takes the full check.
_DOT_ATOM = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$"
)


@lru_cache(maxsize=8192)
def _checked_domain(domain: str) -> str | None:
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def normalize_email(value: str) -> str:
    """Validate an email address (syntax only) and return it normalised, lower-cased."""
    text = value.strip()
    local, at, domain = text.rpartition("@")
    if at and len(local) <= 64 and len(text) <= 254 and _DOT_ATOM.match(local):
        checked = _checked_domain(domain.lower())
        if checked is not None:
            return f"{local}@{checked}".lower()
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise TransformError(f"invalid email {show_value(text)}: {exc}") from None
    return result.normalized.lower()


# North American numbers written the usual ways ("(415) 555-0100", "415.555.0100",
# "+1 415 555 0100") are the bulk of most lead lists; for them E.164 is "+1" and the ten
# digits, which is what phonenumbers answers too, at a fraction of its cost.
_NANP = re.compile(r"^(?:\+?1[\s.-]?)?\(?([2-9]\d{2})\)?[\s.-]?(\d{3})[\s.-]?(\d{4})$")
_NANP_REGIONS = frozenset({"US", "CA"})


def normalize_phone(value: str, region: str | None = None) -> str:
    """Parse a phone number (``region`` is the default country) and return E.164."""
    text = value.strip()
    if region is not None:
        region = region.upper()
    match = _NANP.match(text)
    if match is not None and (
        text.startswith("+1") or (region in _NANP_REGIONS and text[0] != "+")
    ):
        return "+1" + "".join(match.groups())
    return _parse_phone(text, region)


def _parse_phone(text: str, region: str | None) -> str:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        if region is None and not text.startswith("+"):
            raise TransformError(
                f"invalid phone {show_value(text)}: no country code; add a region"
                " (`e164: {region: US}` or the mapping's `phone_region`)"
            ) from None
        reason = _PARSE_REASONS.get(exc.error_type, "not a phone number")
        raise TransformError(f"invalid phone {show_value(text)}: {reason}") from None
    check = phonenumbers.is_possible_number_with_reason(number)
    if check not in (
        phonenumbers.ValidationResult.IS_POSSIBLE,
        phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    ):
        reason = _POSSIBLE_REASONS.get(check, "not a possible number")
        raise TransformError(f"invalid phone {show_value(text)}: {reason}")
    return phonenumbers.format_number(number, _E164)


def _from_epoch(number: float, digits: int) -> datetime:
    # 11+ integer digits as seconds would be past the year 2286: they are millis.
    seconds = number / 1000 if digits >= 11 else number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise TransformError(
            f"timestamp {show_value(number)} is out of range"
        ) from None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _parse_text_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    # The rarer spellings: "2024/01/31 12:00", "... UTC", RFC 2822 mail dates.
    candidate = _ZONE_WORD.sub("", text)
    if _SLASHED_YMD.match(candidate):
        candidate = candidate.replace("/", "-", 2)
    if candidate != text:
        try:
            return datetime.fromisoformat(candidate)
        except ValueError:
            pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        pass
    raise TransformError(
        f"cannot read {show_value(text)} as a date and time: use ISO 8601, epoch"
        " millis, or give a format (`datetime: {format: '%d/%m/%Y'}`)"
    )


def parse_datetime(value: object, fmt: str | None = None) -> datetime:
    """Read a date and time in any common format or epoch (milli)seconds, as UTC."""
    if value.__class__ is str and fmt is None and not value.isdigit():
        # Fast path: most sources send ISO 8601 (digit runs are epochs, see below).
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo is UTC else _utc(moment)
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, bool):
        raise TransformError(f"cannot read {show_value(value)} as a date and time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise TransformError(f"cannot read {show_value(value)} as a date and time")
        return _from_epoch(value, len(str(abs(int(value)))))
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if not isinstance(value, str):
        raise TransformError(f"cannot read {show_value(value)} as a date and time")
    text = value.strip()
    if fmt is not None:
        try:
            return _utc(datetime.strptime(text, fmt))  # noqa: DTZ007 naive is UTC
        except ValueError:
            raise TransformError(
                f"{show_value(text)} does not match the format '{fmt}'"
            ) from None
    epoch = _EPOCH.match(text)
    if epoch:
        return _from_epoch(float(text), len(epoch[1]))
    return _utc(_parse_text_datetime(text))


def format_datetime(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``: ``2024-01-31T12:00:00Z``."""
    return _utc(moment).isoformat().replace("+00:00", "Z")


def parse_bool(value: object) -> bool:
    """Read a boolean: true/false, yes/no, y/n, on/off, t/f, 1/0 (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise TransformError(
        f"{show_value(value)} is not a boolean (true/false, yes/no, 1/0)"
    )


def parse_int(value: object) -> int:
    """Read an integer: ``42``, ``"42"``, ``"42.0"``, ``42.0``; ``"4.5"`` fails."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            number = float(value)
        except ValueError:
            raise TransformError(f"{show_value(value)} is not an integer") from None
    if isinstance(number, float) and number.is_integer():
        return int(number)
    raise TransformError(f"{show_value(value)} is not an integer")


def parse_float(value: object) -> float:
    """Read a finite number: ``4.5``, ``"4.5"``, ``"1e3"``, ``42``."""
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    raise TransformError(f"{show_value(value)} is not a number")


def to_text(value: Any) -> str:
    """A value as text: ``123.0`` reads ``123``, ``True`` ``true``, a list ``a, b``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, list | tuple):
        return ", ".join(to_text(item) for item in value if item is not None)
    if isinstance(value, dict):
        raise TransformError("expected text, got an object")
    return str(value)
