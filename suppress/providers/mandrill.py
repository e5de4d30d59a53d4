"""Mailchimp Transactional (Mandrill) webhooks: signed form posts of event batches.

Owns verifying ``X-Mandrill-Signature``, answering Mandrill's URL check, and reading its
message, sync and inbound events (PROVIDERS.md § mandrill). It never touches the database:
``events.py`` decides what an event means. The API settings are read here for the sync job.

Mandrill gives no event id: ``_id`` is the *message's* id, shared by its send, opens and
clicks, so every event gets a synthetic id (PROVIDERS.md §0). Our own metadata rides in the
message's ``metadata`` (``campaign``).

For the sync job it adds to, reads and deletes from the rejection denylist (PROVIDERS.md §
mandrill, "Suppression API"), the (sub)account-wide list that stops all of its mail.
"""

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from werkzeug.datastructures import MultiDict

from suppress.config import Setting, text
from suppress.providers.api import RETRIED_STATUSES, Api, ApiError
from suppress.providers.base import Provider
from suppress.providers.credentials import same
from suppress.providers.delivery import Delivery, Event, Malformed, Rejected, Reply
from suppress.providers.fields import from_epoch, from_iso, nonblank, scalar_text, synthetic_id
from suppress.providers.settings import REQUIRED, secrets_list, url
from suppress.providers.syncing import ACCEPTED, Account, Change, Outcome, Pulled, refused

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

# Sync: the Rejects API (API reference, "Rejects": /rejects/add, /rejects/list,
# /rejects/delete). Every call is a POST of a JSON body that carries the API key. rejects/list
# "Returns up to 1000 results" and has no paging: a larger denylist is read only in part, so a
# full reconcile takes the rest for lost and pushes it again (harmlessly: adding is idempotent).
ADD, LIST, DELETE = "/rejects/add.json", "/rejects/list.json", "/rejects/delete.json"
# rejects/add takes one address per call; this many changes are settled per transaction.
CHANGES_PER_BATCH = 50
# rejects/list, reason: "hard-bounce, soft-bounce, spam, unsub, custom"; ours that are nearest.
PULLED_REASONS = {
    "hard-bounce": "bounced",
    "soft-bounce": "soft_bounced",
    "spam": "complained",
    "unsub": "unsubscribed",
    "custom": "manual",
}
# Mandrill answers an error with HTTP 500 and {"status": "error", "name": ...} (as its client
# libraries' tests record it); the name says whose fault it is, as the status would elsewhere.
ERROR_STATUSES = {
    "Invalid_Key": 401,
    "Unknown_Subaccount": 403,  # the destination's target names no subaccount of this key
    "ValidationError": 400,
    "Invalid_Reject": 404,  # rejects/delete: "The requested email is not in the rejection list"
}
# rejects/add: "Attempting to denylist an address that has been added to the allowlist will
# have no effect"; it answers added: false.
ALLOWLISTED = "Mandrill did not add it: the address is on its allowlist"


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
    }
    API_SETTINGS: ClassVar[dict[str, Setting]] = {
        "API_KEY": Setting(REQUIRED, text, "API key; required to sync the rejection denylist."),
        "API_URL": Setting("https://mandrillapp.com/api/1.0", url, "API base URL."),
    }
    PUSH_BATCH = CHANGES_PER_BATCH
    CAN_LIFT = True

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

    @classmethod
    def api(cls, settings: Mapping[str, Any], **options: Any) -> Api:
        """The key travels in each body, not here. A 500 is not retried: Mandrill answers its
        errors (a wrong key, a bad address) with it, and those do not mend by asking again."""
        return Api(settings["API_URL"], retried=RETRIED_STATUSES - {500}, **options)

    @classmethod
    def push(cls, account: Account, changes: list[Change]) -> list[Outcome]:
        """One call per change. A destination's target is the subaccount whose denylist it
        fills; Mandrill has no list scope, so list-wide changes go there like the rest."""
        return [_pushed(account, change) for change in changes]

    @classmethod
    def pull(cls, account: Account, since: datetime | None) -> Iterator[Pulled]:
        """The denylist's unexpired entries, the first 1000 of them; rejects/list filters by no
        date, so ``since`` is not used."""
        for item in _call(account, LIST, include_expired=False) or []:
            address = nonblank(item.get("email")) if isinstance(item, dict) else None
            reason = PULLED_REASONS.get(item.get("reason")) if address else None
            if address and reason:
                yield Pulled(email=address, reason=reason, at=_moment(item.get("created_at")))

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
            # "Webhook Format", msg: ``sender`` is the sender address of the message; no
            # envelope sender is reported besides it.
            sender=nonblank(msg.get("sender")),
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
            # No sender: the entry's own ``sender`` scopes a denylist entry, names no message.
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


def _call(account: Account, path: str, **fields: Any) -> Any:
    """One call with the key (and the subaccount) in its body; Mandrill's error answer becomes
    an ApiError with the status its name stands for."""
    body = {"key": account.settings["API_KEY"], **fields}
    if account.target:
        body["subaccount"] = account.target
    response = account.api.call("POST", path, json=body, ok=(500,))
    try:
        document = response.json()
    except ValueError:
        document = None
    if response.status_code != 500:
        return document
    error = document if isinstance(document, dict) else {}
    status = ERROR_STATUSES.get(error.get("name"), 500)
    words = f"{error.get('name')}: {error.get('message')}" if error else response.text[:300]
    raise ApiError(f"POST {path}: {words}", status=status, body=document)


def _pushed(account: Account, change: Change) -> Outcome:
    try:
        if change.lift:
            _call(account, DELETE, email=change.email)
            return Outcome(change.key, ACCEPTED)
        answer = _call(account, ADD, email=change.email, comment=_comment(change)) or {}
    except ApiError as error:
        if error.status == 404 and change.lift:
            return Outcome(change.key, ACCEPTED)
        if error.status == 400:
            return refused(change, str(error).partition(": ")[2])
        raise
    if answer.get("added") or _listed(account, change.email):
        return Outcome(change.key, ACCEPTED)
    return refused(change, ALLOWLISTED)


def _comment(change: Change) -> str:
    """rejects/add records no reason: ours goes in the comment, which rejects/list shows."""
    return f"{change.reason} (suppress)"


def _listed(account: Account, email: str) -> bool:
    """Whether the denylist holds ``email`` already, which rejects/add may also answer with
    added: false."""
    entries = _call(account, LIST, email=email, include_expired=False) or []
    return any(
        isinstance(entry, dict) and str(entry.get("email", "")).lower() == email.lower()
        for entry in entries
    )


def _moment(value: Any) -> datetime | None:
    """Mandrill's times are UTC without a zone ("2013-01-01 15:30:27")."""
    try:
        return from_iso(value) if value else None
    except Malformed:
        return None
