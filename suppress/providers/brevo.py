"""Brevo (formerly Sendinblue): its webhook requests and events, and its contacts API for sync.

Brevo cannot sign webhooks (developers.brevo.com docs/secured-webhooks): a request proves its
origin by HTTP basic auth in the notify URL or a bearer token configured on the webhook, and
optionally by coming from Brevo's published address ranges. One POST holds one event object, or
an array of up to 500 when the webhook is batched (docs/batch-webhooks). Transactional and
marketing webhooks share this endpoint; their ``event`` names are listed below. This module
reads wire formats only; ``events.py`` decides what the events mean.

For the sync job a suppression blocklists the contact for marketing email (``emailBlacklisted``,
account-wide); one of our list's suppressions unlinks the contact from the destination's Brevo
list (its target). Pulls read the blocklisted contacts and the transactional blocklist.
"""

import ipaddress
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

from werkzeug.datastructures import Headers

from suppress.config import ConfigError, Setting, text
from suppress.providers.api import Api, ApiError
from suppress.providers.base import Provider
from suppress.providers.credentials import basic_auth, same
from suppress.providers.delivery import Delivery, Event, Malformed, Rejected, load_json
from suppress.providers.fields import from_epoch, from_iso, nonblank, optional_text, synthetic_id
from suppress.providers.settings import REQUIRED, credentials_list, secrets_list, url
from suppress.providers.syncing import ACCEPTED, Account, Change, Outcome, Pulled, refused

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Payload ``event`` → (normalised type, bounce class). Subscription names in the webhook
# settings are camelCase; payloads carry these snake_case names (docs/transactional-webhooks,
# docs/marketing-webhooks).
EVENT_TYPES: dict[str, tuple[str, str | None]] = {
    # Transactional email.
    "request": ("sent", None),
    "sent": ("sent", None),  # the settings name of "request"
    "delivered": ("delivered", None),
    "deferred": ("deferred", None),
    "soft_bounce": ("bounced", "soft"),
    "hard_bounce": ("bounced", "hard"),
    # The address itself is invalid: no later send can succeed.
    "invalid_email": ("bounced", "hard"),
    # Brevo refused to send (blocklisted recipient or sender) or failed before sending.
    "blocked": ("dropped", None),
    "error": ("dropped", None),
    "spam": ("complained", None),
    # The transactional page files its "Spam" event under the anchor "complaint", the name
    # older payloads carried.
    "complaint": ("complained", None),
    # A first open arrives as both "opened" and "unique_opened"; dedupe by message, not here.
    "opened": ("opened", None),
    "unique_opened": ("opened", None),
    # Opens Brevo attributes to a privacy proxy (Apple MPP and the like): never engagement.
    "proxy_open": ("opened", None),
    "unique_proxy_open": ("opened", None),
    "click": ("clicked", None),
    "unsubscribed": ("unsubscribed", None),
    # Marketing email: "spam", "opened", "click", "delivered" and "proxy_open" as above.
    "unsubscribe": ("unsubscribed", None),
    "hard_bounced": ("bounced", "hard"),  # marketing names in older examples
    "soft_bounced": ("bounced", "soft"),
    "hardBounce": ("bounced", "hard"),  # marketing settings names, seen in payloads
    "softBounce": ("bounced", "soft"),
    # Contact lifecycle: a list addition is a subscription, not a re-subscription.
    "list_addition": ("unknown", None),
    "contact_updated": ("unknown", None),
    "contact_deleted": ("unknown", None),
}
PROXY_OPENS = frozenset({"proxy_open", "unique_proxy_open"})

# Event time, best first. Brevo documents ts_epoch (milliseconds) and ts_event (seconds) as UTC
# and ``date``/``date_event`` as local time; its own marketing example shows ``ts`` an hour
# ahead of ts_event, so ``ts`` is read only for contact events, which carry nothing else.
TIME_FIELDS = ("ts_epoch", "ts_event", "ts")

# Sync: the contacts API (API reference, "Contacts"). "Update multiple contacts" (POST
# /contacts/batch) was retired on 30 October 2026 (changelog, "Deprecation Notice: POST
# /contacts/batch"), and its replacement "Import contacts" runs in the background and imports
# into lists: so one call per change, within the contacts endpoints' 10 requests a second
# (docs/api-limits).
CONTACTS_PER_CALL = 1
# "Get all the contacts": limit "maximum 1000"; sorted by creation, so ascending pages do not
# shift while contacts are added.
CONTACTS_PER_PAGE = 1000
# "Get the list of blocked or unsubscribed transactional contacts": limit "max 100".
BLOCKED_PER_PAGE = 100
# Its reason.code ("safe for comparison"), as our reasons.
BLOCKED_REASONS = {
    "hardBounce": "bounced",
    "contactFlaggedAsSpam": "complained",
    "adminBlocked": "manual",
    "unsubscribedViaEmail": "unsubscribed",
    "unsubscribedViaApi": "unsubscribed",
    "unsubscribedViaMA": "unsubscribed",
}
# "Update a contact": identifierType email_id names the contact by its address in the path.
BY_ADDRESS = {"identifierType": "email_id"}
BAD_REQUEST = 400
# docs/limit-headers: a 429 carries no Retry-After, but this header, the seconds until the
# rate-limit window resets.
RATE_LIMIT_RESET = "x-sib-ratelimit-reset"


def network_list(value: Any) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR ranges (Brevo publishes its webhook ranges)."""
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in secrets_list(value))
    except ValueError as error:
        raise ValueError(f"expected IP addresses or CIDR ranges: {error}") from None


class Brevo(Provider):
    slug = "brevo"
    name = "Brevo"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_BASIC_AUTH": Setting(
            None, credentials_list, "user:password in the notify URL (comma-separated to rotate)"
        ),
        "WEBHOOK_BEARER_TOKEN": Setting(
            None, secrets_list, "bearer token set on the webhook (comma-separated to rotate)"
        ),
        "WEBHOOK_ALLOWED_IPS": Setting(
            None, network_list, "CIDR ranges webhook requests must come from (optional)"
        ),
    }
    API_SETTINGS: ClassVar[dict[str, Setting]] = {
        "API_KEY": Setting(REQUIRED, text, "API key (`xkeysib-…`); required to sync."),
        "API_URL": Setting("https://api.brevo.com/v3", url, "Brevo API base URL."),
    }
    # Brevo retries only timeouts and 429; any other 4xx, and any 5xx, discards the event
    # (docs/retry-mechanism).
    retry_status = 429
    PUSH_BATCH = CONTACTS_PER_CALL
    CAN_LIFT = True
    # The blocklist is account-wide: a destination needs a target (a Brevo list id) only to
    # carry one of our lists.
    TARGET = None

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        if not (self.settings["WEBHOOK_BASIC_AUTH"] or self.settings["WEBHOOK_BEARER_TOKEN"]):
            raise ConfigError(
                f"{self.variable('WEBHOOK_BASIC_AUTH')} or "
                f"{self.variable('WEBHOOK_BEARER_TOKEN')} must be set to use Brevo: "
                "its webhooks carry no signature"
            )

    def verify(self, delivery: Delivery) -> None:
        """The client address must be allowed (when a list is set), then either credential.

        Basic auth and the bearer token share the Authorization header, so a request carries
        one of them; both are checked every time so timing does not tell which is configured.
        """
        if self.settings["WEBHOOK_ALLOWED_IPS"]:
            check_address(delivery.remote_addr, self.settings["WEBHOOK_ALLOWED_IPS"])
        basic = self.settings["WEBHOOK_BASIC_AUTH"] or ()
        tokens = self.settings["WEBHOOK_BEARER_TOKEN"] or ()
        if not (basic_matches(delivery.headers, basic) | bearer_matches(delivery.headers, tokens)):
            raise Rejected("missing or wrong credentials", status=401)

    def parse(self, delivery: Delivery) -> list[Event]:
        document = load_json(delivery.body)
        if isinstance(document, dict) and "items" in document:
            # docs/inbound-parse-webhooks: parsed inbound mail belongs to another URL.
            raise Malformed("an inbound-parse payload was posted to the events webhook")
        records = document if isinstance(document, list) else [document]
        return [event for record in records for event in self.events(record)]

    def events(self, record: Any) -> Iterator[Event]:
        """One event, or one per list for events that name several lists (marketing)."""
        if not isinstance(record, dict):
            raise Malformed("each Brevo event must be a JSON object")
        raw_type = record.get("event")
        if not isinstance(raw_type, str) or not raw_type:
            raise Malformed("event without an 'event' name")
        kind, bounce_class = EVENT_TYPES.get(raw_type, ("unknown", None))
        recipient = optional_text(record, "email")
        time_field = next((key for key in TIME_FIELDS if record.get(key) is not None), None)
        if time_field is None:
            raise Malformed(f"{raw_type} event without ts_epoch, ts_event or ts")
        base_id = synthetic_id(
            self.slug, raw_type, recipient, message_ref(record), record[time_field]
        )
        for list_ref in list_refs(record):
            yield Event(
                provider=self.slug,
                provider_event_id=base_id if list_ref is None else f"{base_id}:{list_ref}",
                type=kind,
                bounce_class=bounce_class,
                recipient=recipient,
                occurred_at=from_epoch(record[time_field]),
                raw_type=raw_type,
                diagnostic=optional_text(record, "reason"),
                message_id=optional_text(record, "message-id"),
                list_ref=list_ref,
                campaign=campaign(record),
                url=optional_text(record, "link") or optional_text(record, "URL"),
                user_agent=optional_text(record, "user_agent"),
                machine=True if raw_type in PROXY_OPENS else None,
                # docs/transactional-webhooks shows ``sender_email`` in its proxy-open example;
                # its Sent example and every docs/marketing-webhooks example carry none.
                sender=optional_text(record, "sender_email"),
            )

    @classmethod
    def api(cls, settings: Mapping[str, Any], **options: Any) -> Api:
        """The key in the ``api-key`` header ("Authentication"); a 429 waits out
        x-sib-ratelimit-reset."""
        headers = {"api-key": settings["API_KEY"]}
        return Api(settings["API_URL"], headers=headers, wait_header=RATE_LIMIT_RESET, **options)

    @classmethod
    def push(cls, account: Account, changes: list[Change]) -> list[Outcome]:
        return [_pushed(account, change) for change in changes]

    @classmethod
    def pull(cls, account: Account, since: datetime | None) -> Iterator[Pulled]:
        """Contacts blocklisted for marketing, then the transactional blocklist; Brevo keeps
        no list-level opt-out to read, so every entry is global."""
        yield from _blocklisted(account, since)
        yield from _blocked(account, since)


def check_address(remote_addr: str | None, allowed: tuple[Network, ...]) -> None:
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        raise Rejected("no usable client address to check", status=403) from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if not any(address in network for network in allowed):
        raise Rejected("client address is not in the allowed ranges", status=403)


def basic_matches(headers: Headers, accepted: tuple[tuple[str, str], ...]) -> bool:
    given = basic_auth(headers)
    matched = False
    for user, password in accepted:
        if given is not None:
            matched |= same(given[0], user) & same(given[1], password)
    return matched


def bearer_matches(headers: Headers, tokens: tuple[str, ...]) -> bool:
    scheme, _, given = headers.get("Authorization", "").partition(" ")
    matched = False
    for token in tokens:
        matched |= same(given.strip(), token)
    return matched and scheme.lower() == "bearer"


def message_ref(record: Mapping[str, Any]) -> Any:
    """What names the message in the synthetic id: marketing events carry the campaign id
    instead of a message id, and two campaigns' opens in one second must not merge."""
    return record.get("message-id") or record.get("camp_id")


def list_refs(record: Mapping[str, Any]) -> list[str | None]:
    """Marketing unsubscribes and list events name lists in ``list_id`` (a list of ids)."""
    ids = record.get("list_id")
    if ids is None or ids == []:
        return [None]
    if not isinstance(ids, list):
        ids = [ids]
    return [str(list_id) for list_id in ids]


def campaign(record: Mapping[str, Any]) -> str | None:
    """The marketing campaign id, else the first tag of a transactional message."""
    if record.get("camp_id") not in (None, ""):
        return str(record["camp_id"])
    tags = record.get("tags")
    if isinstance(tags, list) and tags and isinstance(tags[0], str) and tags[0]:
        return tags[0]
    return None


def _pushed(account: Account, change: Change) -> Outcome:
    """One change, one call. A 400 is Brevo refusing this address (or the list id) for good."""
    try:
        if change.on_list:
            return _unlinked(account, change)
        if change.lift:
            _update(account, change, {"emailBlacklisted": False})
        else:
            # "Create a contact" with updateEnabled updates an existing contact in the same
            # request, so a re-push is accepted again.
            contact = {"email": change.email, "emailBlacklisted": True, "updateEnabled": True}
            account.api.call("POST", "/contacts", json=contact)
    except ApiError as error:
        if error.status != BAD_REQUEST:
            raise
        return refused(change, str(error))
    return Outcome(change.key, ACCEPTED)


def _unlinked(account: Account, change: Change) -> Outcome:
    """Our list's suppression takes the contact off the destination's Brevo list."""
    if change.lift:
        return refused(change, "Brevo keeps no list opt-out to lift: re-add only with consent")
    if not (account.target or "").isdigit():
        return refused(change, "the destination's target must be its Brevo list id")
    _update(account, change, {"unlinkListIds": [int(account.target)]})
    return Outcome(change.key, ACCEPTED)


def _update(account: Account, change: Change, body: dict[str, Any]) -> None:
    """``PUT /contacts/{identifier}`` ("Update a contact"). A 404 is no such contact: nothing
    to unblock or unlink."""
    path = f"/contacts/{quote(change.email, safe='@')}"
    account.api.call("PUT", path, params=BY_ADDRESS, json=body, ok=(404,))


def _blocklisted(account: Account, since: datetime | None) -> Iterator[Pulled]:
    """Contacts with ``emailBlacklisted``; "Get all the contacts" cannot filter on it, so
    every contact (changed since ``since``) is read and the rest skipped."""
    params: dict[str, Any] = {"limit": CONTACTS_PER_PAGE, "sort": "asc"}
    if since:
        # modifiedSince: "YYYY-MM-DDTHH:mm:ss.SSSZ".
        stamp = since.astimezone(UTC).isoformat(timespec="milliseconds")
        params["modifiedSince"] = stamp.replace("+00:00", "Z")
    for contact in _pages(account, "/contacts", params, CONTACTS_PER_PAGE):
        address = nonblank(contact.get("email"))
        if address and contact.get("emailBlacklisted") is True:
            yield Pulled(address, "unsubscribed", _moment(contact.get("modifiedAt")))


def _blocked(account: Account, since: datetime | None) -> Iterator[Pulled]:
    params: dict[str, Any] = {"limit": BLOCKED_PER_PAGE, "sort": "asc"}
    if since:
        # startDate and endDate (YYYY-MM-DD) come together, and neither may be in the future.
        today = datetime.now(UTC).date()
        params.update(startDate=min(since.astimezone(UTC).date(), today).isoformat())
        params.update(endDate=today.isoformat())
    for contact in _pages(account, "/smtp/blockedContacts", params, BLOCKED_PER_PAGE):
        address = nonblank(contact.get("email"))
        reason = contact.get("reason") if isinstance(contact.get("reason"), dict) else {}
        if address:
            ours = BLOCKED_REASONS.get(reason.get("code"), "unsubscribed")
            yield Pulled(address, ours, _moment(contact.get("blockedAt")))


def _pages(account: Account, path: str, params: dict[str, Any], size: int) -> Iterator[dict]:
    """Every item of an offset-paged list, until a page comes back short."""
    offset = 0
    while True:
        page = account.api.json("GET", path, params={**params, "offset": offset}) or {}
        contacts = page.get("contacts") or []
        yield from contacts
        if len(contacts) < size:
            return
        offset += len(contacts)


def _moment(value: Any) -> datetime | None:
    try:
        return from_iso(value)
    except Malformed:
        return None
