"""Reading the fields of a provider's payload: text, ids and times as the provider sends them,
Malformed where a documented field is missing or unreadable."""

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from suppress.providers.delivery import Malformed


def nonblank(value: Any) -> str | None:
    """A string field as sent; None when it is absent, blank or not a string."""
    return value if isinstance(value, str) and value.strip() else None


def sender_of(*candidates: Any) -> str | None:
    """The first candidate that names a sender, best first (the From header, then the envelope
    sender): a non-blank string, or a list whose first item is one (a From header may list
    several authors; the first stands for the message). None when none does: an odd value never
    costs the event."""
    for candidate in candidates:
        if isinstance(candidate, list):
            candidate = candidate[0] if candidate else None
        if nonblank(candidate):
            return candidate
    return None


def optional_text(record: Mapping[str, Any], key: str) -> str | None:
    return nonblank(record.get(key))


def required_text(record: Mapping[str, Any], key: str) -> str:
    """A string field the provider documents as always present; Malformed without it."""
    value = nonblank(record.get(key))
    if value is None:
        raise Malformed(f"missing or empty {key}")
    return value


def scalar_text(value: Any) -> str | None:
    """A scalar field (ids and codes come as strings or numbers) as text; None for objects,
    lists, booleans and blanks."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    return str(value).strip() or None


def synthetic_id(*parts: object) -> str:
    """A stable id for an event the provider gives none (PROVIDERS.md §0 Deduplication).

    Hex SHA-256 over the raw values as received, joined by ``|``: a retry hashes the same, while
    two real events differing in any field do not.
    """
    text = "|".join("" if part is None else str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()


def from_epoch(value: Any) -> datetime:
    """A UTC time from Unix seconds (int, float or numeric string); Malformed otherwise.

    Values too large to be seconds are taken as milliseconds, as several providers send them.
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise Malformed(f"not a Unix timestamp: {value!r}") from None
    if seconds > 1e11:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise Malformed(f"not a Unix timestamp: {value!r}") from None


def from_iso(value: Any) -> datetime:
    """A UTC time from ISO 8601 (``Z`` or an offset; a time without one is taken as UTC)."""
    if not isinstance(value, str):
        raise Malformed(f"not an ISO 8601 time: {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Malformed(f"not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def optional_iso(value: Any) -> datetime | None:
    """An ISO 8601 time from a provider's API answer; None for a blank or unreadable one (a
    pulled entry is worth keeping without its date)."""
    try:
        return from_iso(value) if nonblank(value) else None
    except Malformed:
        return None
