"""What crosses the webhook boundary: the Delivery a provider reads, the Events it makes of it,
and the answers it gives besides (a Reply to a handshake, Rejected, Malformed).

Plain values: nothing here touches the database, the models or Flask's request.
"""

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from werkzeug.datastructures import Headers, MultiDict

from suppress.vocabulary import EVENT_TYPES, REPORTED_BOUNCE_CLASSES


@dataclass(frozen=True)
class Event:
    """One thing that happened to one recipient, in the service's own vocabulary.

    ``recipient`` is the address exactly as the provider sent it (``events.py`` normalises it,
    and a value that does not parse is kept as an event without an address). ``raw_type`` is
    the provider's own name for the event. ``machine`` is the provider's own verdict on an open
    or click (None: the provider does not say). ``diagnostic`` is the SMTP reply or the
    provider's bounce text, from which ``events.py`` recognises sender-side policy blocks
    (RULES.md R-MBP-6). ``list_ref`` is the provider's own id of the list or group an event
    concerns; ``list_slug`` is our list's slug when the provider's settings map that id to one.
    An unsubscribe without a ``list_slug`` is honoured everywhere. ``sender`` is the From
    address (or the envelope sender where the provider reports no From): mailbox providers
    judge complaint rates per sending domain (RULES.md R-MBP-4), so the event log keeps its
    domain.
    """

    provider: str
    provider_event_id: str
    type: str
    recipient: str | None
    occurred_at: datetime
    raw_type: str
    bounce_class: str | None = None
    diagnostic: str | None = None
    message_id: str | None = None
    list_ref: str | None = None
    list_slug: str | None = None
    campaign: str | None = None
    url: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    machine: bool | None = None
    sender: str | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        if self.bounce_class not in (None, *REPORTED_BOUNCE_CLASSES):
            raise ValueError(f"unknown bounce class {self.bounce_class!r}")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


@dataclass(frozen=True)
class Delivery:
    """A webhook request as it arrived: verify signatures on ``body``, never on a re-encoding.

    ``url`` is the full URL the provider called (Mandrill signs it); ``form`` holds the parsed
    fields of a form-encoded body; ``remote_addr`` is the client after trusted proxies.
    """

    method: str
    url: str
    headers: Headers
    body: bytes
    form: MultiDict = field(default_factory=MultiDict)
    remote_addr: str | None = None

    @functools.cached_property
    def document(self) -> Any:
        """The JSON body, parsed once for ``verify`` and ``parse`` alike; Malformed if the
        body is not JSON."""
        return load_json(self.body)


@dataclass(frozen=True)
class Reply:
    """An answer a provider gives itself, for set-up handshakes and pings; stores nothing."""

    status: int = 200
    body: Mapping[str, Any] = field(default_factory=lambda: {"status": "ok"})
    headers: Mapping[str, str] = field(default_factory=dict)


class Rejected(Exception):
    """The request is not from the provider: answered ``status`` (401 or 403), stored never.

    ``headers`` carries a challenge such as ``WWW-Authenticate`` where the provider only sends
    credentials after one (Amazon SNS).
    """

    def __init__(self, why: str, status: int = 401, headers: Mapping[str, str] | None = None):
        super().__init__(why)
        self.status = status
        self.headers = dict(headers or {})


class Malformed(ValueError):
    """The body is not what the provider documents: answered 400 with the reason, stored never."""


def load_json(body: bytes) -> Any:
    """The JSON document in ``body``; Malformed for anything else (encoding included)."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise Malformed(f"the body is not JSON: {error}") from None
