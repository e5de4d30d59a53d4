"""A row of a contact file as a Contact: each cell checked, or ContactRefused saying which cell
is wrong and never the address.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from suppress.addresses import normalise_and_hash
from suppress.config import LANGUAGES
from suppress.models import ADDRESS_KINDS, BASES

CONSENT_RECORD = ("consent_at", "consent_source", "consent_text_version")
# What an import may set on an address, besides its kind; a blank cell keeps what is stored.
ADDRESS_DETAILS = ("role_note", "language", "relationship_ended_at")


class ContactRefused(ValueError):
    """A contact row that cannot be imported; the message says why, never the address."""


@dataclass
class Contact:
    """One usable row of a contact file; ``at`` is when it speaks for (consent, else import)."""

    line: int
    email: str
    digest: str
    basis: str | None
    kind: str | None
    at: datetime
    details: dict[str, Any]


def contact_of(line: int, record: Mapping[str, str], now: datetime) -> Contact:
    """The row as a Contact, or ContactRefused saying which cell is wrong."""
    cell = lambda name: (record.get(name) or "").strip() or None  # noqa: E731
    email, digest = normalise_and_hash(record.get("email") or "")
    basis, kind, language = cell("basis"), cell("kind"), cell("language")
    if basis is not None and basis.lower() not in BASES:
        raise ContactRefused(f"unknown basis {basis!r}: use one of {', '.join(BASES)}")
    if kind is not None and kind.lower() not in ADDRESS_KINDS:
        raise ContactRefused(f"unknown kind {kind!r}: use one of {', '.join(ADDRESS_KINDS)}")
    if language is not None and language.lower() not in LANGUAGES:
        raise ContactRefused(f"unknown language {language!r}: use one of {', '.join(LANGUAGES)}")
    consent_at = _moment(cell("consent_at"), "consent_at")
    if consent_at is not None and consent_at > now:
        raise ContactRefused("consent_at is in the future")
    if consent_at is None and (cell("consent_source") or cell("consent_text_version")):
        raise ContactRefused("a consent_source or consent_text_version needs its consent_at")
    details = {
        "consent_at": consent_at,
        "consent_source": cell("consent_source"),
        "consent_text_version": cell("consent_text_version"),
        "role_note": cell("role_note"),
        "language": language and language.lower(),
        "relationship_ended_at": _moment(cell("relationship_ended_at"), "relationship_ended_at"),
    }
    return Contact(
        line,
        email,
        digest,
        basis and basis.lower(),
        kind and kind.lower(),
        consent_at or now,
        details,
    )


def _moment(text: str | None, column: str) -> datetime | None:
    """An ISO 8601 date or time; UTC unless it says otherwise."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise ContactRefused(f"{column} {text!r} is not an ISO 8601 date or time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
