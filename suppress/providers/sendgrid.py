"""Twilio SendGrid's Event Webhook: ECDSA-signed JSON batches turned into Events.

Owns verifying the Signed Event Webhook and reading SendGrid's event vocabulary (PROVIDERS.md
§ sendgrid). It never touches the database: ``events.py`` decides what an event means. For the
sync job it pushes suppressions to SendGrid's Suppressions API as global unsubscribes, or as
suppressions of the unsubscribe group a destination names as its target, and reads SendGrid's
own suppression lists back.

Our own metadata rides in SendGrid custom arguments, which SendGrid merges into every event at
the top level (Event Webhook Reference, "Unique Arguments and Custom Arguments"): a custom
argument ``campaign`` names the campaign.
"""

import base64
import binascii
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from suppress.config import Setting, text
from suppress.providers.api import Api, ApiError
from suppress.providers.base import Provider
from suppress.providers.delivery import Delivery, Event, Malformed, Rejected, Reply, load_json
from suppress.providers.fields import from_epoch, nonblank, scalar_text, synthetic_id
from suppress.providers.settings import REQUIRED, seconds, secrets_list, slug_map, url
from suppress.providers.syncing import (
    ACCEPTED,
    Account,
    Change,
    Outcome,
    Pulled,
    refused,
    split_on_refusal,
)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
CAMPAIGN_ARGUMENT = "campaign"

# SendGrid documents no tolerance. It retries a failed POST "for up to 24 hours after the event
# occurs" (Troubleshooting the Event Webhook) and does not say whether a retry is signed
# afresh, so the window covers that day plus an hour of slack: a shorter one could turn an
# outage into lost events. A replay inside the window is harmless, as sg_event_id dedupes it.
DEFAULT_TOLERANCE_SECONDS = 25 * 60 * 60

# Event Webhook Reference: delivery, engagement and account events.
EVENT_TYPES = {
    "processed": "sent",
    "delivered": "delivered",
    "deferred": "deferred",
    "bounce": "bounced",  # also blocks: "type" says which (see _bounce_class)
    "dropped": "dropped",
    "open": "opened",
    "click": "clicked",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",  # "Opt Out of All Emails": global
    "group_unsubscribe": "unsubscribed",  # one unsubscribe group, asm_group_id
    "group_resubscribe": "resubscribed",
    "account_status_change": "unknown",  # about our account, names no recipient
}

# "Bounce and Block Classifications": these say the message or the sender was refused, not
# that the address is bad. The Bounces API spells two of them "Technical Failure" and
# "Frequency or Volume Too High", so both spellings are listed; compared lower-cased.
SOFT_CLASSIFICATIONS = frozenset(
    {
        "technical",
        "technical failure",
        "content",
        "reputation",
        "frequency or volume",
        "frequency or volume too high",
    }
)

# Event Webhook Reference, `ip`: on delivery events it is SendGrid's sending IP, and only on
# engagement events the recipient's, so only those carry an IP and a user agent into an Event.
ENGAGEMENT_EVENTS = frozenset(
    {"open", "click", "unsubscribe", "group_unsubscribe", "group_resubscribe"}
)


# Sync: the Suppressions API (v3 API reference, "Suppressions - Global Suppressions",
# "Suppressions - Suppressions", "Bounces", "Spam Reports", "Invalid Emails").
API_URL = "https://api.sendgrid.com"
GLOBAL_SUPPRESSIONS = "/v3/asm/suppressions/global"
# The reference sets no maximum on recipient_emails; a thousand addresses keep one call's body
# near 30 kB, and a batch refused as a whole is split until the bad address is found.
MAX_ADDRESSES_PER_CALL = 1000
# Bounces, spam reports and invalid emails can only be listed and deleted ("Bounces", "Spam
# Reports", "Invalid Emails": no POST), so every reason is pushed as an unsubscribe. Reading
# back, each list stands for the nearest of our reasons.
PULLED_LISTS = {
    "unsubscribes": "unsubscribed",
    "bounces": "bounced",
    "spam_reports": "complained",
    "invalid_emails": "bounced",
}
# "PaginationCommonLimit": "The maximum page size for this endpoint is 500 items per page."
PAGE_SIZE = 500


def verification_keys(value: Any) -> tuple[ec.EllipticCurvePublicKey, ...]:
    """Each key as SendGrid shows it (base64 DER without PEM armour), loaded at start-up."""
    return tuple(_public_key(item) for item in secrets_list(value))


def _public_key(shown: str) -> ec.EllipticCurvePublicKey:
    # A pasted PEM block works too: its armour lines are dropped and the base64 body kept.
    body = "".join(line for line in shown.splitlines() if not line.startswith("-----"))
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
        key = serialization.load_der_public_key(der)
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        raise ValueError("expected the base64 verification key SendGrid shows") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("expected an ECDSA P-256 public key")
    return key


class SendGrid(Provider):
    slug = "sendgrid"
    name = "Twilio SendGrid"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_VERIFICATION_KEY": Setting(
            REQUIRED,
            verification_keys,
            "Signed Event Webhook verification key(s), base64 as SendGrid shows them; "
            "comma-separated while a key rotates.",
        ),
        "WEBHOOK_TOLERANCE_SECONDS": Setting(
            DEFAULT_TOLERANCE_SECONDS,
            seconds,
            "How far the signed timestamp may be from now; covers SendGrid's 24 h of retries.",
        ),
        "GROUP_IDS": Setting(
            None, slug_map, "Our list slugs and SendGrid unsubscribe group ids: slug=id,..."
        ),
    }
    API_SETTINGS: ClassVar[dict[str, Setting]] = {
        "API_KEY": Setting(
            REQUIRED, text, "API key with Suppressions access; required to sync suppressions."
        ),
        "API_URL": Setting(
            API_URL, url, "API base URL (EU subusers: https://api.eu.sendgrid.com)."
        ),
    }
    PUSH_BATCH = MAX_ADDRESSES_PER_CALL
    CAN_LIFT = True
    # A target is optional: the unsubscribe group that keeps the destination's list there.
    TARGET = None

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        groups = self.settings["GROUP_IDS"] or {}
        self.group_slugs = {group: slug for slug, group in groups.items()}

    def verify(self, delivery: Delivery) -> None:
        """ECDSA over the timestamp header followed by the raw body (Event Webhook Security)."""
        signature = delivery.headers.get(SIGNATURE_HEADER)
        timestamp = delivery.headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise Rejected("missing SendGrid signature headers", 401)
        self._check_fresh(timestamp)
        try:
            der = base64.b64decode(signature, validate=True)
        except binascii.Error:
            raise Rejected("the SendGrid signature is not base64", 403) from None
        signed = timestamp.encode("ascii") + delivery.body
        if not any(_valid(key, der, signed) for key in self.settings["WEBHOOK_VERIFICATION_KEY"]):
            raise Rejected("wrong SendGrid signature", 403)

    def handshake(self, delivery: Delivery) -> Reply | None:
        """None: SendGrid has no set-up handshake; its "Test Your Integration" posts a batch."""
        return None

    def parse(self, delivery: Delivery) -> list[Event]:
        batch = load_batch(delivery.body)
        return [self._event(item) for item in batch]

    @classmethod
    def api(cls, settings: Mapping[str, Any], **options: Any) -> Api:
        """``Authorization: Bearer <API key>`` (v3 API reference, "Authentication")."""
        headers = {"Authorization": f"Bearer {settings['API_KEY']}"}
        return Api(settings["API_URL"], headers=headers, **options)

    @classmethod
    def push(cls, account: Account, changes: list[Change]) -> list[Outcome]:
        """Global suppressions, and the destination's list as its unsubscribe group."""
        additions = [change for change in changes if not change.lift]
        everywhere = [change for change in additions if not change.on_list]
        outcomes = _add(account, GLOBAL_SUPPRESSIONS, everywhere)
        outcomes += _add_to_group(account, [change for change in additions if change.on_list])
        return outcomes + [_lift(account, change) for change in changes if change.lift]

    @classmethod
    def pull(cls, account: Account, since: datetime | None) -> Iterator[Pulled]:
        """The four lists SendGrid suppresses by, created since ``since``; then the group's
        suppressions, which have no dates and are read whole."""
        for name, reason in PULLED_LISTS.items():
            yield from _pages(account, f"/v3/suppression/{name}", reason, since)
        if account.target and account.list_slug:
            path = f"{_group(account)}/suppressions"
            for address in account.api.json("GET", path) or []:
                if nonblank(address):
                    yield Pulled(email=address, reason="unsubscribed", on_list=True)

    def _check_fresh(self, timestamp: str) -> None:
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise Rejected("the SendGrid timestamp is not Unix seconds", 403)
        if abs(time.time() - int(timestamp)) > self.settings["WEBHOOK_TOLERANCE_SECONDS"]:
            raise Rejected("the SendGrid timestamp is outside the tolerance", 403)

    def _event(self, item: Any) -> Event:
        if not isinstance(item, dict):
            raise Malformed("each SendGrid event is a JSON object")
        raw = item.get("event")
        if not isinstance(raw, str) or not raw:
            raise Malformed("a SendGrid event without its name")
        # The reference's reserved-keys example writes "Processed": match names case-blind.
        kind = EVENT_TYPES.get(raw.lower(), "unknown")
        recipient = _recipient(item, raw, kind)
        message_id = scalar_text(item.get("sg_message_id") or item.get("smtp-id"))
        list_ref = _list_ref(item, raw)
        return Event(
            provider=self.slug,
            provider_event_id=_event_id(item, raw, recipient, message_id),
            type=kind,
            recipient=recipient,
            occurred_at=from_epoch(item.get("timestamp")),
            raw_type=raw,
            bounce_class=_bounce_class(item) if kind == "bounced" else None,
            diagnostic=_diagnostic(item),
            message_id=message_id,
            list_ref=list_ref,
            list_slug=self.group_slugs.get(list_ref) if list_ref else None,
            campaign=scalar_text(item.get(CAMPAIGN_ARGUMENT) or item.get("marketing_campaign_id")),
            # No sender: no property in the Event Webhook Reference names the From or envelope
            # sender, and custom arguments carry only what the sender chose to add.
            **_engagement(item, raw),
        )


def load_batch(body: bytes) -> list[Any]:
    """The events of one POST: always a JSON array (Event Webhook Reference, "Events")."""
    batch = load_json(body)
    if not isinstance(batch, list):
        raise Malformed("a SendGrid body is a JSON array of events")
    return batch


def _valid(key: ec.EllipticCurvePublicKey, der: bytes, signed: bytes) -> bool:
    try:
        key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def _recipient(item: dict, raw: str, kind: str) -> str | None:
    email = item.get("email")
    if isinstance(email, str) and email.strip():
        return email
    if kind != "unknown":
        raise Malformed(f"a SendGrid {raw} event without its recipient")
    return None


def _event_id(item: dict, raw: str, recipient: str | None, message_id: str | None) -> str:
    # sg_event_id is "unique for every event where sg_event_id is present" (Troubleshooting);
    # legacy Marketing Email unsubscribes carry none, so those get a synthetic id.
    event_id = item.get("sg_event_id")
    if isinstance(event_id, str) and event_id:
        return event_id
    return synthetic_id("sendgrid", raw, recipient, message_id, item.get("timestamp"))


def _bounce_class(item: dict) -> str:
    # Event Webhook Reference, "Blocked": type=blocked is a temporary refusal of the message.
    if str(item.get("type", "")).lower() == "blocked":
        return "soft"
    classification = str(item.get("bounce_classification") or "").strip().lower()
    return "soft" if classification in SOFT_CLASSIFICATIONS else "hard"


def _diagnostic(item: dict) -> str | None:
    """The receiving server's reply, led by the status code when the reply lacks it."""
    reply = scalar_text(item.get("reason") or item.get("response"))
    status = scalar_text(item.get("status"))
    if status and (reply is None or status not in reply):
        return f"{status} {reply}" if reply else status
    return reply


def _list_ref(item: dict, raw: str) -> str | None:
    # A global "unsubscribe" may still carry the group the message was sent in; it is an
    # opt-out of all mail, so it names no list.
    if raw.lower() == "unsubscribe":
        return None
    return scalar_text(item.get("asm_group_id"))


def _engagement(item: dict, raw: str) -> dict[str, Any]:
    engaged = raw.lower() in ENGAGEMENT_EVENTS
    machine = item.get("sg_machine_open")
    return {
        "url": scalar_text(item.get("url")),
        "ip": scalar_text(item.get("ip")) if engaged else None,
        "user_agent": scalar_text(item.get("useragent")) if engaged else None,
        # sg_machine_open: SendGrid's own verdict that an open was a machine's prefetch.
        "machine": machine if isinstance(machine, bool) else None,
    }


def _add(account: Account, path: str, changes: list[Change]) -> list[Outcome]:
    def send(batch: list[Change]) -> None:
        addresses = [change.email for change in batch]
        account.api.json("POST", path, json={"recipient_emails": addresses})

    return split_on_refusal(changes, send)


def _add_to_group(account: Account, changes: list[Change]) -> list[Outcome]:
    """Suppressions of the destination's unsubscribe group, once SendGrid confirms it exists:
    "If you attempt to add suppressions to a group that has been deleted or does not exist, the
    suppressions will be added to the global suppressions list" ("Add suppressions to a
    suppression group"), which would stop all mail to people who left one list."""
    if not changes:
        return []
    if not account.target:
        why = "the destination names no SendGrid unsubscribe group (its target) for its list"
        return [refused(change, why) for change in changes]
    try:
        account.api.call("GET", _group(account))
    except ApiError as error:
        if error.status != 404:
            raise
        raise ApiError(
            f"SendGrid has no unsubscribe group {account.target!r} (the destination's target)",
            status=error.status,
            body=error.body,
        ) from None
    return _add(account, f"{_group(account)}/suppressions", changes)


def _group(account: Account) -> str:
    return f"/v3/asm/groups/{quote(str(account.target), safe='')}"


def _lift(account: Account, change: Change) -> Outcome:
    """``DELETE`` the address from the global list or the group ("Delete a Global Suppression",
    "Delete a suppression from a suppression group"); one already gone (404) is what we wanted.

    The address is part of the path, so it is left out of an error's message, which is logged.
    """
    address = quote(change.email, safe="@")
    base = _group(account) + "/suppressions" if change.on_list else GLOBAL_SUPPRESSIONS
    try:
        account.api.call("DELETE", f"{base}/{address}", ok=(404,))
    except ApiError as error:
        message = str(error).replace(address, "<address>")
        raise ApiError(message, status=error.status, body=error.body) from None
    return Outcome(change.key, ACCEPTED)


def _pages(account: Account, path: str, reason: str, since: datetime | None) -> Iterator[Pulled]:
    """``limit`` and ``offset`` paging ("PaginationCommonOffset") until a short page;
    ``start_time`` keeps to entries created since the last pull."""
    params: dict[str, Any] = {"limit": PAGE_SIZE, "offset": 0}
    if since is not None:
        params["start_time"] = int(since.timestamp())
    while True:
        page = account.api.json("GET", path, params=params) or []
        for item in page:
            entry = _pulled(item, reason)
            if entry:
                yield entry
        if len(page) < PAGE_SIZE:
            return
        params["offset"] += PAGE_SIZE


def _pulled(item: Any, reason: str) -> Pulled | None:
    address = nonblank(item.get("email")) if isinstance(item, dict) else None
    if address is None:
        return None
    created = item.get("created")
    at = from_epoch(created) if isinstance(created, int | float) else None
    return Pulled(email=address, reason=reason, at=at)
