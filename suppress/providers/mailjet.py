"""Mailjet: verifying its Event API requests and turning its events into normalised events.

Mailjet signs nothing; its own recommendation is HTTPS plus basic auth in the callback URL
(Event API, "Endpoint URL"). A POST holds one event object, or a JSON array of the last second's
events when the callback is registered with ``Version: 2`` ("Grouping events"); event types can
be mixed in one array. This module reads wire formats only; ``events.py`` decides what the
events mean.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

from suppress.config import Setting
from suppress.providers.base import (
    REQUIRED,
    Delivery,
    Event,
    Malformed,
    Provider,
    Reply,
    check_basic_auth,
    credentials_list,
    from_epoch,
    load_json,
    optional_text,
    required_text,
    synthetic_id,
    text,
    url,
)

REALM = "suppress mailjet webhook"

# ``event`` → (normalised type, bounce class); a bounce's class comes from ``hard_bounce``
# (Event API, "Events").
EVENT_TYPES: dict[str, tuple[str, str | None]] = {
    # "Dispatched when the destination SMTP server has accepted the message".
    "sent": ("delivered", None),
    "open": ("opened", None),
    "click": ("clicked", None),
    "bounce": ("bounced", None),
    # Mailjet did not send: e.g. "preblocked" (recently bounced), "duplicate in campaign".
    "blocked": ("dropped", None),
    # ``source`` names the feedback-loop programme that reported it.
    "spam": ("complained", None),
    # ``mj_list_id`` names the contact list left.
    "unsub": ("unsubscribed", None),
}
# "possible values for errors": a temporary rejection Mailjet re-attempts, so not yet a bounce.
RETRIED_ERRORS = frozenset({"greylisted"})


class Mailjet(Provider):
    slug = "mailjet"
    name = "Mailjet"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_BASIC_AUTH": Setting(
            REQUIRED, credentials_list, "user:password in the callback URL (comma-separated)"
        ),
        "API_KEY": Setting(None, text, "API key for the contacts API (sync)"),
        "API_SECRET": Setting(None, text, "secret key for the contacts API (sync)"),
        "API_URL": Setting("https://api.mailjet.com", url, "Mailjet API base URL"),
    }

    def verify(self, delivery: Delivery) -> None:
        check_basic_auth(delivery.headers, self.settings["WEBHOOK_BASIC_AUTH"], realm=REALM)

    def handshake(self, delivery: Delivery) -> Reply | None:
        """A probe of the URL (a GET, or a POST without a body) gets 200 and stores nothing."""
        if delivery.method in ("GET", "HEAD") or not delivery.body.strip():
            return Reply()
        return None

    def parse(self, delivery: Delivery) -> list[Event]:
        document = load_json(delivery.body)
        # Grouped callbacks post an array (possibly empty); ungrouped ones a bare object.
        records = document if isinstance(document, list) else [document]
        return [self.event(record) for record in records]

    def event(self, record: Any) -> Event:
        if not isinstance(record, dict):
            raise Malformed("each Mailjet event must be a JSON object")
        raw_type = required_text(record, "event")
        recipient = required_text(record, "email")
        if "time" not in record:
            raise Malformed(f"{raw_type} event without a time")
        message_id = message_reference(record)
        kind, bounce_class = classify(raw_type, record)
        return Event(
            provider=self.slug,
            provider_event_id=synthetic_id(
                self.slug, raw_type, recipient, message_id, record["time"]
            ),
            type=kind,
            bounce_class=bounce_class,
            recipient=recipient,
            occurred_at=from_epoch(record["time"]),
            raw_type=raw_type,
            diagnostic=diagnostic(record),
            message_id=message_id,
            list_ref=nonzero_id(record, "mj_list_id"),
            campaign=campaign(record),
            url=optional_text(record, "url"),
            ip=optional_text(record, "ip"),
            user_agent=optional_text(record, "agent"),
        )


def classify(raw_type: str, record: Mapping[str, Any]) -> tuple[str, str | None]:
    kind, bounce_class = EVENT_TYPES.get(raw_type, ("unknown", None))
    if kind != "bounced":
        return kind, bounce_class
    hard = record.get("hard_bounce") is True
    if not hard and record.get("error") in RETRIED_ERRORS:
        return "deferred", None
    return "bounced", "hard" if hard else "soft"


def message_reference(record: Mapping[str, Any]) -> str | None:
    """``MessageID`` is a big integer (kept as text); grouped examples carry only the
    deprecated string ``mj_message_id``."""
    for key in ("MessageID", "mj_message_id"):
        value = record.get(key)
        if isinstance(value, int | str) and not isinstance(value, bool) and str(value):
            return str(value)
    return None


def diagnostic(record: Mapping[str, Any]) -> str | None:
    """The SMTP reply of a ``sent`` event, or the error table's cause of a bounce or block."""
    if optional_text(record, "smtp_reply"):
        return record["smtp_reply"]
    parts = [optional_text(record, key) for key in ("error_related_to", "error", "comment")]
    words = [part for part in parts if part]
    return ": ".join(words) if words else None


def campaign(record: Mapping[str, Any]) -> str | None:
    """Our own campaign name (the X-Mailjet-Campaign header), else Mailjet's campaign id."""
    return optional_text(record, "customcampaign") or nonzero_id(record, "mj_campaign_id")


def nonzero_id(record: Mapping[str, Any], key: str) -> str | None:
    """Mailjet sends 0 where a message has no campaign or list."""
    value = record.get(key)
    if isinstance(value, bool) or value in (None, 0, "", "0"):
        return None
    return str(value)
