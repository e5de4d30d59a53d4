"""MailerSend: webhooks (one JSON event per POST, signed with a hex HMAC-SHA256 of the body)
turned into events, and suppressions pushed to and pulled from its suppression lists.

Reads both payload shapes MailerSend has sent: the current flat ``data`` (``recipient``,
``message_id``, ``meta``) and the older nested one (``data.email.recipient.email``,
``data.morph``) that its webhooks page still shows. Stores nothing.

For the sync job a destination is one sending domain: each suppression goes to the domain's list
that records its kind (API reference "Recipients", suppressions). MailerSend has no lists of
recipients, so a destination carrying one of our lists stands for a domain that sends that list's
mail: its list suppressions go to the domain's lists too.
"""

import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from suppress.config import Setting, text
from suppress.providers.api import Api, ApiError
from suppress.providers.base import Provider
from suppress.providers.credentials import same
from suppress.providers.delivery import Delivery, Event, Malformed, Rejected, Reply, load_json
from suppress.providers.fields import from_iso, nonblank, optional_iso, synthetic_id
from suppress.providers.settings import REQUIRED, secrets_list, url
from suppress.providers.syncing import Account, Change, Outcome, Pulled, accepted, refused

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

# Sync: "Add recipients to a suppression list" takes {"domain_id", "recipients": [...]}; the
# reference states no maximum (unverified), and 500 keeps a call well inside the account's 60
# calls a minute and daily quota (mailersend-skills, "limits-and-errors").
MAX_RECIPIENTS_PER_CALL = 500
# "Get recipients from a suppression list", limit: "Min: 10, Max: 100".
PAGE_LIMIT = 100
# Our reasons and the list that records each nearest; the rest are unsubscribes. MailerSend
# keeps no soft bounces, and ours expire (a lift takes them off again), so they go with the hard
# ones; a person's objection or an operator's block is what the blocklist is for.
LISTS = {
    "bounced": "hard-bounces",
    "soft_bounced": "hard-bounces",
    "complained": "spam-complaints",
    "objected": "blocklist",
    "manual": "blocklist",
    "erased": "blocklist",
}
UNSUBSCRIBES = "unsubscribes"
PULLED_LISTS = {
    UNSUBSCRIBES: "unsubscribed",
    "hard-bounces": "bounced",
    "spam-complaints": "complained",
    "blocklist": "manual",
}
# A 422 names each refused recipient by its place in the array (Laravel validation errors:
# {"message", "errors": {"recipients.3": ["The recipients.3 must be a valid email address."]}}).
RECIPIENT_ERROR = re.compile(r"recipients\.(\d+)")
# Blocklist entries are exact addresses or patterns such as "*@example.com"; only the former
# name a recipient.
EXACT = "exact"


@dataclass(frozen=True)
class Activity:
    """What one payload says about one recipient, whichever shape it came in."""

    recipient: str | None
    message_id: str | None
    diagnostic: str | None
    url: str | None
    ip: str | None
    user_agent: str | None
    # Only the nested shape names the sender (Webhooks "Payload example", ``email.from``); the
    # flat shape, as anymail's tests record it, carries none.
    sender: str | None = None


class MailerSend(Provider):
    slug = "mailersend"
    name = "MailerSend"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_SECRET": Setting(
            REQUIRED,
            secrets_list,
            "The webhook's signing secret(s), comma-separated while one rotates.",
        ),
    }
    API_SETTINGS: ClassVar[dict[str, Setting]] = {
        "API_KEY": Setting(REQUIRED, text, "API token; required to sync suppressions."),
        "API_URL": Setting(API_URL, url, "Base URL of the MailerSend API."),
        "DOMAIN_ID": Setting(None, text, "Sending domain id synced when a destination names none."),
    }
    PUSH_BATCH = MAX_RECIPIENTS_PER_CALL
    CAN_LIFT = True
    TARGET = "the sending domain's id"
    TARGET_SETTING = "DOMAIN_ID"

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
                sender=activity.sender,
            )
        ]

    @classmethod
    def api(cls, settings: Mapping[str, Any], **options: Any) -> Api:
        """``Authorization: Bearer <token>`` ("Authentication")."""
        bearer = {"Authorization": f"Bearer {settings['API_KEY']}"}
        return Api(settings["API_URL"], headers=bearer, **options)

    @classmethod
    def push(cls, account: Account, changes: list[Change]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for kind, batch in _by_list(changes).items():
            outcomes += _add(account, kind, [change for change in batch if not change.lift])
            outcomes += _remove(account, kind, [change for change in batch if change.lift])
        return outcomes

    @classmethod
    def pull(cls, account: Account, since: datetime | None) -> Iterator[Pulled]:
        """Every page of the domain's four lists; they have no date filter, so ``since`` is not
        used. Only unsubscribes can be a list's: bounces, complaints and blocks are about the
        address."""
        for kind, reason in PULLED_LISTS.items():
            on_list = kind == UNSUBSCRIBES and account.list_slug is not None
            for entry in _entries(account, kind):
                email = _address(entry)
                if email:
                    yield Pulled(email, reason, optional_iso(entry.get("created_at")), on_list)


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
        sender=nonblank(email.get("from")),
    )


def _object(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


# Sync


def _by_list(changes: list[Change]) -> dict[str, list[Change]]:
    lists: dict[str, list[Change]] = {}
    for change in changes:
        lists.setdefault(LISTS.get(change.reason, UNSUBSCRIBES), []).append(change)
    return lists


def _add(account: Account, kind: str, changes: list[Change]) -> list[Outcome]:
    """``POST /suppressions/<kind>``; re-adding a recipient the list holds succeeds. A 422 that
    names recipients refuses those only: they are recorded and the rest posted again."""
    outcomes: list[Outcome] = []
    while changes:
        body = {"domain_id": account.target, "recipients": [change.email for change in changes]}
        try:
            account.api.json("POST", f"/suppressions/{kind}", json=body)
            return outcomes + accepted(changes)
        except ApiError as error:
            refusals = _refusals(error, len(changes))
            if not refusals:
                raise
        outcomes += [refused(changes[place], words) for place, words in refusals.items()]
        changes = [change for place, change in enumerate(changes) if place not in refusals]
    return outcomes


def _refusals(error: ApiError, count: int) -> dict[int, str]:
    """The recipients a 422 refuses, by their place in the array, with MailerSend's words."""
    errors = error.body.get("errors") if isinstance(error.body, Mapping) else None
    if error.status != 422 or not isinstance(errors, Mapping):
        return {}
    refusals = {}
    for field, words in errors.items():
        match = RECIPIENT_ERROR.fullmatch(str(field))
        if match and int(match[1]) < count:
            refusals[int(match[1])] = (
                " ".join(map(str, words)) if isinstance(words, list) else str(words)
            )
    return refusals


def _remove(account: Account, kind: str, changes: list[Change]) -> list[Outcome]:
    """``DELETE /suppressions/<kind>`` takes entry ids, not addresses, so the list is read until
    every lifted address is found; one it does not hold is gone already, which is the aim."""
    if not changes:
        return []
    wanted = {change.email.lower() for change in changes}
    ids = []
    for entry in _entries(account, kind):
        email = (_address(entry) or "").lower()
        if email in wanted:
            ids.append(entry["id"])
            wanted.discard(email)
            if not wanted:
                break
    if ids:
        body = {"domain_id": account.target, "ids": ids}
        account.api.call("DELETE", f"/suppressions/{kind}", json=body, ok=(404,))
    return accepted(changes)


def _entries(account: Account, kind: str) -> Iterator[Mapping[str, Any]]:
    """Every entry of one list for the domain, page by page until ``links.next`` is null."""
    page = 1
    while True:
        query = {"domain_id": account.target, "page": page, "limit": PAGE_LIMIT}
        document = account.api.json("GET", f"/suppressions/{kind}", params=query)
        document = document if isinstance(document, Mapping) else {}
        entries = document.get("data") or []
        yield from (entry for entry in entries if isinstance(entry, Mapping))
        if not entries or not (document.get("links") or {}).get("next"):
            return
        page += 1


def _address(entry: Mapping[str, Any]) -> str | None:
    """A blocklist entry holds its address as an exact ``pattern``; the other lists nest it in
    ``recipient`` (API reference, "Get recipients from a suppression list")."""
    if "pattern" in entry:
        return nonblank(entry["pattern"]) if entry.get("type") == EXACT else None
    recipient = entry.get("recipient")
    return nonblank(recipient.get("email")) if isinstance(recipient, Mapping) else None
