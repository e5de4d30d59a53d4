"""MailerSend webhooks: one JSON event per POST, signed with a hex HMAC-SHA256 of the body.

Reads both payload shapes MailerSend has sent: the current flat ``data`` (``recipient``,
``message_id``, ``meta``) and the older nested one (``data.email.recipient.email``,
``data.morph``) that its webhooks page still shows. Stores nothing.
"""

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, ClassVar

from suppress.config import Setting
from suppress.providers.base import (
    REQUIRED,
    Delivery,
    Event,
    Malformed,
    Provider,
    Rejected,
    Reply,
    from_iso,
    load_json,
    nonblank,
    same,
    secrets_list,
    synthetic_id,
    text,
    url,
)

API_URL = "https://api.mailersend.com/v1"
SIGNATURE_HEADER = "Signature"
# developers.mailersend.com "Webhooks overview": saving a webhook sends a webhook.test ping
# signed with this fixed, published secret, not the webhook's own (Symfony's MailerSend bridge
# and others rely on it). It is accepted for that ping only, which stores nothing.
PING_TYPE = "webhook.test"
PING_SECRET = "test_Am3L1GuOIc4blLUuHqAPxxwkZaJyEk8G"
# Inbound routes post parsed mail to their own URL (anymail mailersend.py).
INBOUND_TYPE = "inbound.message"

# developers.mailersend.com "Webhooks", Available events; keyed on the top-level type, which
# tells the unique variants apart (their data.type is plain "opened"/"clicked", anymail tests).
EVENT_MAP: dict[str, str] = {
    "activity.sent": "sent",
    "activity.delivered": "delivered",
    # Paid plans only.
    "activity.deferred": "deferred",
    "activity.soft_bounced": "bounced",
    "activity.hard_bounced": "bounced",
    "activity.opened": "opened",
    # Sent besides activity.opened for a first open: subscribe to one of the pair, or opens
    # are counted twice (PROVIDERS.md: "count once").
    "activity.opened_unique": "opened",
    "activity.clicked": "clicked",
    "activity.clicked_unique": "clicked",
    # An unsubscribe from the sending domain's mail; no list is named, so it applies everywhere.
    "activity.unsubscribed": "unsubscribed",
    # data.type reads "spam_complaints" in the flat shape (anymail tests); the top-level name
    # is singular in both shapes.
    "activity.spam_complaint": "complained",
    # Not sent: the recipient is on a MailerSend suppression list (meta.suppression_reason;
    # anymail mailersend.py).
    "activity.suppressed": "dropped",
    "activity.survey_opened": "unknown",
    "activity.survey_submitted": "unknown",
    "sender_identity.verified": "unknown",
    "maintenance.start": "unknown",
    "maintenance.end": "unknown",
    "inbound_forward.failed": "unknown",
    "email_single.verified": "unknown",
    "email_list.verified": "unknown",
    "bulk_email.completed": "unknown",
    "recipient.on_hold_added": "unknown",
    "recipient.on_hold_removed": "unknown",
}
BOUNCE_CLASSES: dict[str, str] = {"activity.soft_bounced": "soft", "activity.hard_bounced": "hard"}
# The flat shape's meta field per event kind (anymail mailersend.py); first present wins.
REASON_FIELDS = ("bounce_reason", "reject_reason", "suppression_reason", "unsubscribe_reason")


@dataclass(frozen=True)
class Activity:
    """What one payload says about one recipient, whichever shape it came in."""

    recipient: str | None
    message_id: str | None
    diagnostic: str | None
    url: str | None
    ip: str | None
    user_agent: str | None


class MailerSend(Provider):
    slug = "mailersend"
    name = "MailerSend"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_SECRET": Setting(
            REQUIRED,
            secrets_list,
            "The webhook's signing secret(s), comma-separated while one rotates.",
        ),
        "API_KEY": Setting(None, text, "API token for pushing suppressions."),
        "API_URL": Setting(API_URL, url, "Base URL of the MailerSend API."),
        "DOMAIN_ID": Setting(None, text, "The sending domain's id, the scope of its suppressions."),
    }

    def verify(self, delivery: Delivery) -> None:
        """Webhooks "Security": ``Signature`` is the hex HMAC-SHA256 of the raw body.

        No timestamp is signed, so there is no replay window; deduplication on ``data.id``
        is the defence.
        """
        given = delivery.headers.get(SIGNATURE_HEADER, "").strip().lower()
        if not given:
            raise Rejected(f"missing {SIGNATURE_HEADER} header")
        secrets = self.settings["WEBHOOK_SECRET"]
        if _is_ping(delivery.body):
            secrets = (*secrets, PING_SECRET)
        if not any(same(given, _digest(secret, delivery.body)) for secret in secrets):
            raise Rejected(f"{SIGNATURE_HEADER} does not match")

    def handshake(self, delivery: Delivery) -> Reply | None:
        return Reply() if _is_ping(delivery.body) else None

    def parse(self, delivery: Delivery) -> list[Event]:
        document = load_json(delivery.body)
        raw_type, data = _envelope(document)
        activity = _nested(data) if isinstance(data.get("email"), dict) else _flat(data)
        if (
            activity.recipient is None
            and raw_type in EVENT_MAP
            and raw_type.startswith("activity.")
        ):
            raise Malformed(f"{raw_type} without its recipient")
        # The activity's own time where the nested shape gives one; the flat shape's event time
        # is the top-level created_at (anymail mailersend.py).
        stamp = data.get("created_at") or document.get("created_at")
        if stamp is None:
            raise Malformed("created_at is missing")
        event_id = data.get("id")
        if not isinstance(event_id, str) or not event_id:
            event_id = synthetic_id(
                self.slug, raw_type, activity.recipient, activity.message_id, stamp
            )
        return [
            Event(
                provider=self.slug,
                provider_event_id=event_id,
                type=EVENT_MAP.get(raw_type, "unknown"),
                recipient=activity.recipient,
                occurred_at=from_iso(stamp),
                raw_type=raw_type,
                bounce_class=BOUNCE_CLASSES.get(raw_type),
                diagnostic=activity.diagnostic,
                message_id=activity.message_id,
                url=activity.url,
                ip=activity.ip,
                user_agent=activity.user_agent,
            )
        ]


def _envelope(document: Any) -> tuple[str, dict]:
    """Webhooks "Payload example": ``{"type", "created_at", "data": {...}, ...}``."""
    if not isinstance(document, dict) or not isinstance(document.get("type"), str):
        raise Malformed("expected a JSON object with a string type")
    if document["type"] == INBOUND_TYPE:
        raise Malformed("inbound.message belongs to an inbound route, not this webhook")
    data = document.get("data")
    if not isinstance(data, dict):
        raise Malformed("expected a data object")
    return document["type"], data


def _digest(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _is_ping(body: bytes) -> bool:
    try:
        document = load_json(body)
    except Malformed:
        return False
    return isinstance(document, dict) and document.get("type") == PING_TYPE


def _flat(data: dict) -> Activity:
    """The current shape: ``recipient``, ``message_id`` and a ``meta`` object.

    ``meta`` is an empty list, not an object, when there is nothing in it (anymail tests).
    """
    meta = _object(data, "meta")
    reason = next((meta[key] for key in REASON_FIELDS if nonblank(meta.get(key))), None)
    code = meta.get("bounce_code")
    parts = [str(code)] if code not in (None, "") else []
    if reason:
        parts.append(reason)
    return Activity(
        recipient=nonblank(data.get("recipient")),
        message_id=nonblank(data.get("message_id")),
        diagnostic=" ".join(parts) or None,
        url=nonblank(meta.get("url")),
        ip=nonblank(meta.get("ip")),
        user_agent=nonblank(meta.get("user_agent")),
    )


def _nested(data: dict) -> Activity:
    """The older shape on the Webhooks page: ``email.recipient``, ``email.message``, ``morph``."""
    email = _object(data, "email")
    morph = _object(data, "morph")
    return Activity(
        recipient=nonblank(_object(email, "recipient").get("email")),
        message_id=nonblank(_object(email, "message").get("id")),
        diagnostic=nonblank(morph.get("readable_reason")) or nonblank(morph.get("reason")),
        url=nonblank(morph.get("url")),
        ip=nonblank(morph.get("ip")),
        user_agent=nonblank(morph.get("user_agent")),
    )


def _object(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}
