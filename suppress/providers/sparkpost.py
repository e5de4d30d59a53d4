"""SparkPost event webhooks: basic-auth-checked batches of ``msys`` events.

Owns SparkPost's webhook format (a JSON array of ``{"msys": {"<class>": {...}}}``), its test
batch, its event vocabulary and its bounce classification. SparkPost signs nothing, so the
webhook's basic auth credentials are the only proof of origin. Stores nothing; ``events.py``
decides what the events mean.

For the sync job it upserts into and reads back the account's (or a subaccount's) suppression
list (PROVIDERS.md § sparkpost, "Suppression API").
"""

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote, urljoin

import requests

from suppress.config import Setting, text
from suppress.providers.api import Api, ApiError
from suppress.providers.base import Provider
from suppress.providers.credentials import check_basic_auth
from suppress.providers.delivery import Delivery, Event, Malformed, Reply, load_json
from suppress.providers.fields import from_epoch, from_iso, nonblank, sender_of, synthetic_id
from suppress.providers.settings import REQUIRED, credentials_list, url
from suppress.providers.syncing import ACCEPTED, Account, Change, Outcome, Pulled, accepted, refused

# SparkPost API reference, Webhooks "Webhook Event Types", grouped by their msys class.
EVENT_TYPES: dict[str, str] = {
    # message_event
    "injection": "sent",
    "delivery": "delivered",
    "delay": "deferred",
    "bounce": "bounced",  # class from bounce_class, see BOUNCE_CLASSES
    "out_of_band": "bounced",  # accepted first, bounced later; classified like a bounce
    "policy_rejection": "dropped",  # SparkPost's own policy refused the message
    "spam_complaint": "complained",
    "sms_status": "unknown",  # SMS, not email
    # track_event: initial_open is the pixel at the top of the message, open the one at the
    # bottom; a clipped message only loads the first, so both are opens.
    "initial_open": "opened",
    "open": "opened",
    "click": "clicked",
    "amp_initial_open": "opened",
    "amp_open": "opened",
    "amp_click": "clicked",
    # gen_event: the message was never generated for this recipient
    "generation_failure": "dropped",
    "generation_rejection": "dropped",
    # unsubscribe_event: the List-Unsubscribe header, or a link marked data-msys-unsubscribe
    "list_unsubscribe": "unsubscribed",
    "link_unsubscribe": "unsubscribed",
    # relay_event: inbound mail relayed to us; its rcpt_to is our own address
    "relay_injection": "unknown",
    "relay_rejection": "unknown",
    "relay_delivery": "unknown",
    "relay_tempfail": "unknown",
    "relay_permfail": "unknown",
    # ab_test_event and ingest_event: about tests and uploads, not about a recipient
    "ab_test_completed": "unknown",
    "ab_test_cancelled": "unknown",
    "success": "unknown",
    "error": "unknown",
}
# SparkPost support "Bounce Classification Codes": code -> (type, bounce class). Block codes
# (50-54) name the receiver refusing the sender, so they are soft, never hard (RULES.md
# R-MBP-6); Admin codes are SparkPost refusing to send.
BOUNCE_CLASSES: dict[str, tuple[str, str | None]] = {
    "1": ("bounced", "soft"),  # Undetermined
    "10": ("bounced", "hard"),  # Invalid Recipient
    "20": ("bounced", "soft"),  # Soft Bounce
    "21": ("bounced", "soft"),  # DNS Failure
    "22": ("bounced", "soft"),  # Mailbox Full
    "23": ("bounced", "soft"),  # Too Large
    "24": ("bounced", "soft"),  # Timeout
    "25": ("dropped", None),  # Admin Failure: failed by SparkPost's configured policies
    "26": ("dropped", None),  # Smart Send Suppression (Admin)
    "30": ("bounced", "hard"),  # Generic Bounce: No RCPT
    "40": ("bounced", "soft"),  # Generic Bounce
    "50": ("bounced", "soft"),  # Mail Block
    "51": ("bounced", "soft"),  # Spam Block
    "52": ("bounced", "soft"),  # Spam Content
    "53": ("bounced", "soft"),  # Prohibited Attachment
    "54": ("bounced", "soft"),  # Relaying Denied
    "60": ("bounced", "soft"),  # Auto-Reply (SparkPost files it as Soft)
    "70": ("bounced", "soft"),  # Transient Failure
    "80": ("unknown", None),  # Subscribe: a subscribe request came back, nothing failed
    "90": ("unsubscribed", None),  # Unsubscribe: the reply is an unsubscribe request
    "100": ("bounced", "soft"),  # Challenge-Response
}
# A code SparkPost adds later is not proof of a dead address.
UNLISTED_BOUNCE = ("bounced", "soft")
BOUNCE_TYPES = frozenset({"bounce", "out_of_band"})
# Classes whose rcpt_to is the person we mailed (relay events name our inbound address).
RECIPIENT_CLASSES = frozenset({"message_event", "track_event", "gen_event", "unsubscribe_event"})
# Webhooks "Webhook Event Types": ip_address is the opener's or clicker's only in engagement
# events; elsewhere it is the receiving MTA.
ENGAGEMENT_CLASSES = frozenset({"track_event"})
DIGITS = re.compile(r"\d+(\.\d+)?")
REALM = "suppress sparkpost"

# Sync: the Suppression List API (API reference, "Suppression List"). "Bulk Create or Update
# Suppressions" takes "Max length: 10,000" recipients per PUT, and a change may need two
# entries (one per type), so a batch holds half as many changes.
MAX_ENTRIES_PER_CALL = 10_000
CHANGES_PER_CALL = MAX_ENTRIES_PER_CALL // 2
# Team rule (PROVIDERS.md § sparkpost): an unsubscribe stops marketing (non_transactional)
# mail; a hard bounce or a complaint stops both types. A soft bounce is a pause of marketing
# mail here, not proof of a dead address, so it is marketing-only too.
BOTH_TYPES = ("transactional", "non_transactional")
MARKETING = ("non_transactional",)
TYPES = {"bounced": BOTH_TYPES, "complained": BOTH_TYPES}
# "Suppression Object", source: who created the entry, read back as our nearest reason.
PULLED_SOURCES = {
    "Spam Complaint": "complained",
    "Bounce Rule": "bounced",
    "List Unsubscribe": "unsubscribed",
    "Unsubscribe Link": "unsubscribed",
    "Manually Added": "manual",
    "Compliance": "manual",
}
# "Search Suppressions": per_page "between 1 and 10,000"; a cursor of "initial" starts the
# paging and each page's links hold the next one (support article "How Do I Download My
# Entire Suppression List").
PAGE_SIZE = 10_000
# "Subaccount Suppressions": each subaccount has its own list, named by this header; for a
# search, 0 is the master account's own list (without it, every list is searched).
SUBACCOUNT_HEADER = "X-MSYS-SUBACCOUNT"
MASTER_ACCOUNT = "0"
# The 400 of a bulk PUT names the recipients it refused: "PUT body contains 2 invalid or
# malformed recipient(s): rcpt_1@example.com, rcpt_2@example.com".
INVALID_RECIPIENTS = re.compile(r"invalid or malformed recipient\(s\):\s*(.+)$")
# "Delete a Suppression" answers 403 for an entry that cannot be removed ("Recipient could not
# be removed - Compliance"); any other 403 is the API key lacking a permission.
NOT_REMOVABLE = "could not be removed"


def is_ping(batch: Any) -> bool:
    """The test batch SparkPost posts when a webhook is created or validated (Webhooks,
    "Validate a Webhook"): elements whose ``msys`` object is empty."""
    return (
        isinstance(batch, list)
        and bool(batch)
        and all(isinstance(item, dict) and item.get("msys") == {} for item in batch)
    )


def unwrap(element: Any) -> tuple[str, dict[str, Any]] | None:
    """The class and fields of one batch element; None for an empty (test) element."""
    msys = element.get("msys") if isinstance(element, dict) else None
    if not isinstance(msys, dict):
        raise Malformed("a batch element has no msys object")
    if not msys:
        return None
    if len(msys) != 1:
        raise Malformed(f"a batch element holds {len(msys)} event classes, not one")
    [(event_class, fields)] = msys.items()
    if not isinstance(fields, dict):
        raise Malformed(f"the {event_class} is not an object")
    return event_class, fields


def event_time(value: Any) -> datetime:
    """Webhook events carry Unix seconds as a string; the older event reference shows ISO
    8601 with an offset. Both are read; anything else is Malformed."""
    if value is None:
        raise Malformed("the event has no timestamp")
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if numeric or (isinstance(value, str) and DIGITS.fullmatch(value)):
        return from_epoch(value)
    return from_iso(value)


def classify(raw_type: str, fields: dict[str, Any]) -> tuple[str, str | None]:
    """The normalised type and bounce class; bounces are classified by ``bounce_class``."""
    if raw_type not in BOUNCE_TYPES:
        return EVENT_TYPES.get(raw_type, "unknown"), None
    return BOUNCE_CLASSES.get(str(fields.get("bounce_class")), UNLISTED_BOUNCE)


class SparkPost(Provider):
    slug: ClassVar[str] = "sparkpost"
    name: ClassVar[str] = "SparkPost"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_BASIC_AUTH": Setting(
            REQUIRED,
            credentials_list,
            "`user:password` pairs (comma-separated) the SparkPost webhook sends "
            "(auth_type basic); SparkPost signs nothing else.",
        ),
    }
    API_SETTINGS: ClassVar[dict[str, Setting]] = {
        "API_KEY": Setting(
            REQUIRED,
            text,
            "API key with Suppression Lists: Read/Write; required to sync suppressions.",
        ),
        "API_URL": Setting(
            "https://api.sparkpost.com/api/v1",
            url,
            "SparkPost API base URL; `https://api.eu.sparkpost.com/api/v1` for EU accounts.",
        ),
    }
    PUSH_BATCH = CHANGES_PER_CALL
    CAN_LIFT = True

    def verify(self, delivery: Delivery) -> None:
        check_basic_auth(delivery.headers, self.settings["WEBHOOK_BASIC_AUTH"], realm=REALM)

    def handshake(self, delivery: Delivery) -> Reply | None:
        try:
            batch = load_json(delivery.body)
        except Malformed:
            return None
        return Reply() if is_ping(batch) else None

    def parse(self, delivery: Delivery) -> list[Event]:
        batch = load_json(delivery.body)
        if not isinstance(batch, list):
            raise Malformed("the body is not a JSON array of events")
        events = []
        for element in batch:
            unwrapped = unwrap(element)
            if unwrapped is not None:
                events.append(self.event(*unwrapped))
        return events

    @classmethod
    def api(cls, settings: Mapping[str, Any], **options: Any) -> Api:
        """The API key alone in the Authorization header (API reference, "Authentication")."""
        return Api(settings["API_URL"], headers={"Authorization": settings["API_KEY"]}, **options)

    @classmethod
    def push(cls, account: Account, changes: list[Change]) -> list[Outcome]:
        """One bulk upsert for the additions, one DELETE per lift. A destination's target is
        the subaccount whose list it is; its list-wide changes go there like the rest."""
        additions = [change for change in changes if not change.lift]
        outcomes = _upserted(account, additions) if additions else []
        return outcomes + [_lifted(account, change) for change in changes if change.lift]

    @classmethod
    def pull(cls, account: Account, since: datetime | None) -> Iterator[Pulled]:
        """Every entry updated since ``since`` (all without it), cursor page by page."""
        params: dict[str, Any] | None = {"cursor": "initial", "per_page": PAGE_SIZE}
        if since:
            params["from"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        page: str | None = "/suppression-list"
        headers = {SUBACCOUNT_HEADER: account.target or MASTER_ACCOUNT}
        while page:
            document = account.api.json("GET", page, params=params, headers=headers) or {}
            results = document.get("results") or []
            for item in results:
                entry = _pulled(item)
                if entry:
                    yield entry
            page = _next_page(account, document) if results else None
            params = None

    def event(self, event_class: str, fields: dict[str, Any]) -> Event:
        raw_type = fields.get("type")
        if not isinstance(raw_type, str) or not raw_type:
            raise Malformed(f"a {event_class} has no type")
        kind, bounce_class = classify(raw_type, fields)
        recipient = None
        if event_class in RECIPIENT_CLASSES:
            # raw_rcpt_to is the address as sent; rcpt_to is SparkPost's lower-cased copy.
            recipient = nonblank(fields.get("raw_rcpt_to")) or nonblank(fields.get("rcpt_to"))
        message_id = nonblank(fields.get("message_id"))
        engagement = event_class in ENGAGEMENT_CLASSES
        return Event(
            provider=self.slug,
            provider_event_id=nonblank(fields.get("event_id"))
            or synthetic_id(self.slug, raw_type, recipient, message_id, fields.get("timestamp")),
            type=kind,
            recipient=recipient,
            occurred_at=event_time(fields.get("timestamp")),
            raw_type=raw_type,
            bounce_class=bounce_class,
            diagnostic=nonblank(fields.get("raw_reason"))
            or nonblank(fields.get("reason"))
            or nonblank(fields.get("fbtype")),
            message_id=message_id,
            campaign=nonblank(fields.get("campaign_id")),
            url=nonblank(fields.get("target_link_url")),
            ip=nonblank(fields.get("ip_address")) if engagement else None,
            user_agent=nonblank(fields.get("user_agent")),
            sender=_sender(event_class, fields),
        )


def _sender(event_class: str, fields: dict[str, Any]) -> str | None:
    """Webhooks "Webhook Event Types": ``friendly_from`` is the From header, ``msg_from`` the
    envelope sender. A relay event's ``msg_from`` is whoever wrote to our inbound address."""
    if event_class not in RECIPIENT_CLASSES:
        return None
    return sender_of(fields.get("friendly_from"), fields.get("msg_from"))


def _scope(account: Account) -> dict[str, str]:
    return {SUBACCOUNT_HEADER: account.target} if account.target else {}


def _upserted(account: Account, changes: list[Change]) -> list[Outcome]:
    """Upsert ``changes``. A 400 naming invalid recipients refuses those changes with
    SparkPost's words and upserts the rest again; a 400 naming none of ours fails the call."""
    entries = [entry for change in changes for entry in _entries(change)]
    response = account.api.call(
        "PUT", "/suppression-list", json={"recipients": entries}, headers=_scope(account), ok=(400,)
    )
    if response.status_code != 400:
        return accepted(changes)
    words = _words(response)
    named = INVALID_RECIPIENTS.search(words)
    invalid = {item.strip().lower() for item in named.group(1).split(",")} if named else set()
    bad = [change for change in changes if change.email.lower() in invalid]
    if not bad:
        raise ApiError(f"PUT /suppression-list: HTTP 400 {words}", status=400)
    rest = [change for change in changes if change not in bad]
    return [refused(change, words) for change in bad] + (_upserted(account, rest) if rest else [])


def _entries(change: Change) -> list[dict[str, str]]:
    description = f"{change.reason} (suppress)"
    return [
        {"recipient": change.email, "type": kind, "description": description}
        for kind in TYPES.get(change.reason, MARKETING)
    ]


def _lifted(account: Account, change: Change) -> Outcome:
    """DELETE the entry, of the one type pushed for a marketing-only reason (both types when no
    type is given). A 404 is an entry already gone; a 403 for compliance is a refusal."""
    kinds = TYPES.get(change.reason, MARKETING)
    body = {"type": kinds[0]} if len(kinds) == 1 else None
    path = f"/suppression-list/{quote(change.email, safe='@')}"
    response = account.api.call("DELETE", path, json=body, headers=_scope(account), ok=(403, 404))
    if response.status_code == 403:
        words = _words(response)
        if NOT_REMOVABLE not in words:
            raise ApiError(f"DELETE /suppression-list/<address>: HTTP 403 {words}", status=403)
        return refused(change, words)
    return Outcome(change.key, ACCEPTED)


def _words(response: requests.Response) -> str:
    """The messages of SparkPost's ``{"errors": [{"message": ...}]}``."""
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        errors = None
    messages = [str(e.get("message")) for e in errors or [] if isinstance(e, dict)]
    return "; ".join(messages) or response.text[:300] or response.reason


def _next_page(account: Account, document: Mapping[str, Any]) -> str | None:
    """The ``next`` link, a path from the host's root (``/api/v1/suppression-list?cursor=…``)."""
    for link in document.get("links") or []:
        if isinstance(link, dict) and link.get("rel") == "next" and link.get("href"):
            return urljoin(account.api.base_url + "/", link["href"])
    return None


def _pulled(item: Mapping[str, Any]) -> Pulled | None:
    address = nonblank(item.get("recipient"))
    if address is None:
        return None
    reason = PULLED_SOURCES.get(item.get("source"), "manual")
    try:
        at = from_iso(item.get("updated") or item.get("created"))
    except Malformed:
        at = None
    return Pulled(email=address, reason=reason, at=at)
