"""Mailchimp Transactional (Mandrill) webhooks: signed form posts of event batches.

Owns verifying ``X-Mandrill-Signature``, answering Mandrill's URL check, and reading its
message, sync and inbound events (PROVIDERS.md § mandrill). It never touches the database:
``events.py`` decides what an event means. The API settings are read here for the sync job.

Mandrill gives no event id: ``_id`` is the *message's* id, shared by its send, opens and
clicks, so every event gets a synthetic id (PROVIDERS.md §0). Our own metadata rides in the
message's ``metadata`` (``campaign``).
"""

import base64
import hashlib
import hmac
import json
from typing import Any, ClassVar
from urllib.parse import urlsplit

from werkzeug.datastructures import MultiDict

from suppress.config import Setting
from suppress.providers.base import (
    REQUIRED,
    Delivery,
    Event,
    Malformed,
    Provider,
    Rejected,
    Reply,
    from_epoch,
    same,
    scalar_text,
    secrets_list,
    synthetic_id,
    text,
    url,
)

SIGNATURE_HEADER = "X-Mandrill-Signature"
EVENTS_FIELD = "mandrill_events"
CAMPAIGN_METADATA = "campaign"
# "Why can't my webhook or inbound route URL be verified?": when the HEAD check fails,
# Mandrill POSTs an empty batch signed with this generic key instead of the webhook's own.
TEST_KEY = "test-webhook"

# "Message Event Webhook Format" and "Inbound Webhook Format": the `event` of each item.
EVENT_TYPES = {
    "send": "sent",
    "delivered": "delivered",  # listed by the current Mailchimp Transactional webhook docs
    "deferral": "deferred",
    "hard_bounce": "bounced",
    "soft_bounce": "bounced",
    # "Webhook Format" spells the bounces with hyphens; payloads use underscores.
    "hard-bounce": "bounced",
    "soft-bounce": "bounced",
    "open": "opened",
    "click": "clicked",
    "spam": "complained",
    "unsub": "unsubscribed",  # Mandrill-wide for the (sub)account: names no list
    "reject": "dropped",  # Mandrill refused to send, e.g. the address is on its denylist
    "inbound": "unknown",  # mail received by an inbound route, not about our recipients
}
BOUNCE_CLASSES = {
    "hard_bounce": "hard",
    "soft_bounce": "soft",
    "hard-bounce": "hard",
    "soft-bounce": "soft",
}
# "Sync Event Webhook Format": items with `type` (the list) and `action`, no `event`. They
# mirror Mandrill's own lists; the message events already say why an address was added.
SYNC_TYPES = {"blacklist": "unknown", "whitelist": "unknown"}


def registered_url(value: Any) -> str:
    """The webhook URL exactly as saved in Mandrill, which signs it character for character
    ("Authenticating webhook requests": even a trailing slash matters, so none is removed)."""
    address = text(value)
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected the http:// or https:// URL registered in Mandrill")
    return address


class Mandrill(Provider):
    slug = "mandrill"
    name = "Mailchimp Transactional (Mandrill)"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_KEY": Setting(
            REQUIRED,
            secrets_list,
            "The webhook's authentication key; comma-separated while a key is reset.",
        ),
        "WEBHOOK_URL": Setting(
            REQUIRED,
            registered_url,
            "The webhook URL exactly as registered in Mandrill (it is part of the signature).",
        ),
        "API_KEY": Setting(None, text, "API key for pushing rejects (sync job)."),
        "API_URL": Setting("https://mandrillapp.com/api/1.0", url, "API base URL."),
    }

    def verify(self, delivery: Delivery) -> None:
        """base64 HMAC-SHA1 over the registered URL and the sorted POST fields."""
        if delivery.method == "HEAD":
            return  # Mandrill's unsigned URL check; it carries and stores nothing
        given = delivery.headers.get(SIGNATURE_HEADER)
        if not given:
            raise Rejected("missing X-Mandrill-Signature", 401)
        signed = self._signed_text(delivery.form).encode()
        keys = self.settings["WEBHOOK_KEY"]
        if _empty_batch(delivery.form):
            keys = (*keys, TEST_KEY)
        if not any(same(given, _signature(key, signed)) for key in keys):
            raise Rejected("wrong X-Mandrill-Signature", 403)

    def handshake(self, delivery: Delivery) -> Reply | None:
        """200 to the URL check: a HEAD, or the POST of an empty batch that may follow it."""
        if delivery.method == "HEAD" or _empty_batch(delivery.form):
            return Reply()
        return None

    def parse(self, delivery: Delivery) -> list[Event]:
        return [self._event(item) for item in load_batch(delivery.form)]

    def _signed_text(self, form: MultiDict) -> str:
        # "Authenticating webhook requests": the URL, then each POST field's key and value,
        # sorted by key, no separators. A repeated field counts once, with its first value.
        fields = sorted(form.items())
        return self.settings["WEBHOOK_URL"] + "".join(key + value for key, value in fields)

    def _event(self, item: Any) -> Event:
        if not isinstance(item, dict):
            raise Malformed("each Mandrill event is a JSON object")
        if "event" in item:
            return self._message_event(item)
        if "type" in item and "action" in item:
            return self._sync_event(item)
        raise Malformed("a Mandrill event with neither event nor type and action")

    def _message_event(self, item: dict) -> Event:
        raw = item.get("event")
        if not isinstance(raw, str) or not raw:
            raise Malformed("a Mandrill event without its name")
        kind = EVENT_TYPES.get(raw, "unknown")
        msg = item.get("msg") if isinstance(item.get("msg"), dict) else {}
        recipient = _recipient(msg, raw, kind)
        message_id = scalar_text(msg.get("_id") or item.get("_id"))
        return Event(
            provider=self.slug,
            provider_event_id=synthetic_id(self.slug, raw, recipient, message_id, item.get("ts")),
            type=kind,
            recipient=recipient,
            # `ts` of the item is the event's time; msg.ts is when the message was sent.
            occurred_at=from_epoch(item.get("ts")),
            raw_type=raw,
            bounce_class=BOUNCE_CLASSES.get(raw),
            diagnostic=_diagnostic(msg),
            message_id=message_id,
            campaign=_campaign(msg.get("metadata")),
            **_engagement(item),
        )

    def _sync_event(self, item: dict) -> Event:
        raw = f"{item.get('type')}:{item.get('action')}"
        entry = item.get("reject") or item.get("entry")
        recipient = scalar_text(entry.get("email")) if isinstance(entry, dict) else None
        return Event(
            provider=self.slug,
            provider_event_id=synthetic_id(self.slug, raw, recipient, None, item.get("ts")),
            type=SYNC_TYPES.get(str(item.get("type")), "unknown"),
            recipient=recipient,
            occurred_at=from_epoch(item.get("ts")),
            raw_type=raw,
        )


def load_batch(form: MultiDict) -> list[Any]:
    """The events in the one form field Mandrill posts: a JSON array ("Webhook Format")."""
    events = form.get(EVENTS_FIELD)
    if events is None:
        raise Malformed(f"no {EVENTS_FIELD} field in the form")
    try:
        batch = json.loads(events)
    except ValueError as error:
        raise Malformed(f"{EVENTS_FIELD} is not JSON: {error}") from None
    if not isinstance(batch, list):
        raise Malformed(f"{EVENTS_FIELD} is not a JSON array")
    return batch


def _empty_batch(form: MultiDict) -> bool:
    try:
        return json.loads(form.get(EVENTS_FIELD, "null")) == []
    except ValueError:
        return False


def _signature(key: str, signed: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), signed, hashlib.sha1).digest()).decode()


def _recipient(msg: dict, raw: str, kind: str) -> str | None:
    if raw == "inbound":
        return None  # msg.email is our own receiving address, not someone we mailed
    email = msg.get("email")
    if isinstance(email, str) and email.strip():
        return email
    if kind != "unknown":
        raise Malformed(f"a Mandrill {raw} event without msg.email")
    return None


def _diagnostic(msg: dict) -> str | None:
    """The SMTP reply (msg.diag, else the last SMTP event's), else Mandrill's bounce label."""
    smtp_events = msg.get("smtp_events")
    last = smtp_events[-1] if isinstance(smtp_events, list) and smtp_events else {}
    last_reply = last.get("diag") if isinstance(last, dict) else None
    return scalar_text(msg.get("diag") or last_reply or msg.get("bounce_description"))


def _campaign(metadata: Any) -> str | None:
    return scalar_text(metadata.get(CAMPAIGN_METADATA)) if isinstance(metadata, dict) else None


def _engagement(item: dict) -> dict[str, Any]:
    parsed = item.get("user_agent_parsed")
    # "Message Event Webhook Format": user_agent_parsed.type is Mandrill's own reading of the
    # agent, "robot" among its values; only that is taken as a verdict.
    robot = isinstance(parsed, dict) and str(parsed.get("type")).lower() == "robot"
    return {
        "url": scalar_text(item.get("url")),
        "ip": scalar_text(item.get("ip")),
        "user_agent": scalar_text(item.get("user_agent")),
        "machine": True if robot else None,
    }
