"""Mailgun webhooks: one signed JSON event per POST turned into an Event.

Owns verifying Mailgun's in-body HMAC signature, refusing replays, and reading Mailgun's event
vocabulary (PROVIDERS.md § mailgun). It never touches the database: ``events.py`` decides what
an event means. The API settings are read here for the sync job.

Only the current JSON webhooks are supported. Legacy form-encoded webhooks (flat ``token`` /
``timestamp`` / ``signature`` fields and other event names) are read-only at Mailgun since
April 2023 and were retired in October 2023 (Mailgun Help, "Legacy Webhooks"); such a body
has no signature object and is refused.

Our own metadata rides in Mailgun's custom variables (``v:campaign``), which arrive as
``user-variables``.
"""

import hashlib
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from json.encoder import encode_basestring_ascii
from typing import Any, ClassVar
from urllib.parse import quote

from suppress.config import Setting, text
from suppress.providers.api import Api
from suppress.providers.base import Provider
from suppress.providers.credentials import same
from suppress.providers.delivery import Delivery, Event, Malformed, Rejected, Reply
from suppress.providers.fields import from_epoch, nonblank, required_text, scalar_text, sender_of
from suppress.providers.settings import REQUIRED, seconds, secrets_list, url
from suppress.providers.syncing import ACCEPTED, Account, Change, Outcome, Pulled, accepted

CAMPAIGN_VARIABLE = "campaign"

# "Securing Webhooks" suggests checking the timestamp but warns that "there can be delays in
# webhook processing that are outside of Mailgun's control", and "Automatic Retries" retries a
# failed POST for 8 hours without saying it signs the retry afresh: 9 hours, so that a retry
# after our outage is never refused (its token is admitted again with its own body).
DEFAULT_TOLERANCE_SECONDS = 9 * 60 * 60
# Tokens remembered at most (about 60 bytes each): past this, the oldest are forgotten first.
MAX_REMEMBERED_TOKENS = 200_000

# "Event Types" (user manual, Events): every event Mailgun reports.
EVENT_TYPES = {
    "accepted": "sent",
    "rejected": "dropped",  # Mailgun refused the send request itself
    "delivered": "delivered",
    "failed": "bounced",  # refined by severity and reason, see _classify
    "opened": "opened",
    "clicked": "clicked",
    "unsubscribed": "unsubscribed",
    "complained": "complained",
    "stored": "unknown",  # an inbound message stored for a route
    "list_member_uploaded": "unknown",
    "list_member_upload_error": "unknown",
    "list_uploaded": "unknown",
}

# Stats API, "failed.permanent": "recipients previously bounced / unsubscribed / complained".
# Mailgun did not send; the address was already on its own suppression list.
SUPPRESSED_REASONS = frozenset({"suppress-bounce", "suppress-unsubscribe", "suppress-complaint"})
# User manual, "Tracking Failures": reason "old" means Mailgun tried for more than 8 hours and
# gave up; nothing says the address is bad, so it is a soft bounce whatever the severity.
GAVE_UP_REASON = "old"
# "Event Types", failed: severity=temporary is a temporary rejection Mailgun retries.
SEVERITIES = {"permanent": ("bounced", "hard"), "temporary": ("deferred", None)}


# Sync: the suppressions API (API reference, "Unsubscribe", "Bounces", "Complaints"). Each
# table is per sending domain and takes "up to 1000" records in one JSON POST.
MAX_RECORDS_PER_CALL = 1000
# Our reasons and the table that records each nearest; the rest are unsubscribes.
TABLES = {"bounced": "bounces", "soft_bounced": "bounces", "complained": "complaints"}
PULLED_TABLES = {"unsubscribes": "unsubscribed", "bounces": "bounced", "complaints": "complained"}
# "Unsubscribe", tags: "*" unsubscribes the address from all the domain's mail; a tag name only
# from mail carrying that tag, which is how a list-level suppression is pushed (as its slug).
ALL_MAIL = "*"
# A bounce record needs an SMTP code and text; ours are decisions, not replies, so we say so.
BOUNCE_CODE = "550"
# The body of a push is JSON made by hand (``_records``), so its type is said by hand too.
JSON_BODY = {"Content-Type": "application/json"}


class SeenTokens:
    """Signature tokens accepted within the tolerance, each with the body it signed.

    Mailgun signs only the timestamp and token, not the event ("Securing Webhooks"), so a
    captured signature could carry any other event: a token is honoured again only with the
    very body it first came with. That body again is a retry of a request we could not store
    (event-id dedupe makes it harmless); another body is a forgery. Kept in process (each
    worker its own), bounded, oldest first out.
    """

    def __init__(self, limit: int):
        self._limit = limit
        self._seen: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def admits(self, token: str, body: bytes, now: float, lifetime: float) -> bool:
        """Remember ``token`` with ``body`` for ``lifetime`` seconds; False when it was
        remembered with another body."""
        fingerprint = hashlib.sha256(body).digest()[:16]
        with self._lock:
            self._forget_expired(now)
            if token in self._seen:
                return self._seen[token][1] == fingerprint
            if len(self._seen) >= self._limit:
                self._seen.popitem(last=False)
            self._seen[token] = (now + lifetime, fingerprint)
            return True

    def _forget_expired(self, now: float) -> None:
        while self._seen:
            token, (expiry, _) = next(iter(self._seen.items()))
            if expiry > now:
                return
            del self._seen[token]


# Shared by every Mailgun provider in the process, so rebuilding one forgets nothing.
SEEN_TOKENS = SeenTokens(MAX_REMEMBERED_TOKENS)


class Mailgun(Provider):
    slug = "mailgun"
    name = "Mailgun"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_SIGNING_KEY": Setting(
            REQUIRED,
            secrets_list,
            "HTTP webhook signing key(s), not the API key; comma-separated while a key rotates, "
            "and the parent account's key for subaccount domains.",
        ),
        "WEBHOOK_TOLERANCE_SECONDS": Setting(
            DEFAULT_TOLERANCE_SECONDS,
            seconds,
            "How far the signed timestamp may be from now; tokens are remembered this long.",
        ),
    }
    API_SETTINGS: ClassVar[dict[str, Setting]] = {
        "API_KEY": Setting(REQUIRED, text, "API key; required to sync suppressions."),
        "API_URL": Setting(
            "https://api.mailgun.net", url, "API base URL (EU: https://api.eu.mailgun.net)."
        ),
        "DOMAIN": Setting(None, text, "Sending domain synced when a destination names none."),
    }
    PUSH_BATCH = MAX_RECORDS_PER_CALL
    # Its suppressions API documents no rate limit, only 429 (PROVIDERS.md), which Api's
    # retries wait out: a few calls at once, not one per core.
    CONCURRENCY = 4
    CAN_LIFT = True
    TARGET = "the sending domain"
    TARGET_SETTING = "DOMAIN"

    def verify(self, delivery: Delivery) -> None:
        """hex HMAC-SHA256(key, timestamp + token) in the body ("Securing Webhooks")."""
        signature, timestamp, token = _signature_block(delivery)
        if not self._signed(signature, (timestamp + token).encode()):
            raise Rejected("wrong Mailgun signature", 403)
        now = time.time()
        tolerance = self.settings["WEBHOOK_TOLERANCE_SECONDS"]
        if abs(now - int(timestamp)) > tolerance:
            raise Rejected("the Mailgun timestamp is outside the tolerance", 403)
        if not SEEN_TOKENS.admits(token, delivery.body, now, tolerance):
            raise Rejected("a Mailgun signature token seen before with another event", 403)

    def handshake(self, delivery: Delivery) -> Reply | None:
        """None: Mailgun has no set-up handshake; its webhook test posts a signed sample."""
        return None

    def parse(self, delivery: Delivery) -> list[Event]:
        document = delivery.document
        data = document.get("event-data") if isinstance(document, dict) else None
        if not isinstance(data, dict):
            raise Malformed("a Mailgun body is an object with an event-data object")
        raw = required_text(data, "event")
        kind, bounce_class = _classify(raw, data)
        message = data.get("message") if isinstance(data.get("message"), dict) else {}
        headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
        return [
            Event(
                provider=self.slug,
                provider_event_id=_event_id(data),
                type=kind,
                recipient=_recipient(data, raw, kind, headers),
                occurred_at=from_epoch(data.get("timestamp")),
                raw_type=raw,
                bounce_class=bounce_class,
                diagnostic=_diagnostic(data.get("delivery-status")),
                message_id=scalar_text(headers.get("message-id")),
                campaign=_campaign(data.get("user-variables")),
                sender=_sender(data, headers),
                **_engagement(data),
            )
        ]

    @classmethod
    def api(cls, settings: Mapping[str, Any], **options: Any) -> Api:
        """HTTP Basic, user ``api``, the API key as password (API reference, "Authentication")."""
        return Api(settings["API_URL"], auth=("api", settings["API_KEY"]), **options)

    @classmethod
    def push(cls, account: Account, changes: list[Change]) -> list[Outcome]:
        outcomes = []
        for table, batch in _by_table(changes).items():
            additions = [change for change in batch if not change.lift]
            if additions:
                body = _records(table, additions, account.list_slug)
                path = f"/v3/{account.target}/{table}"
                account.api.json("POST", path, data=body, headers=JSON_BODY)
                outcomes += accepted(additions)
            outcomes += [_lift(account, table, change) for change in batch if change.lift]
        return outcomes

    @classmethod
    def pull(cls, account: Account, since: datetime | None) -> Iterator[Pulled]:
        """Every page of the three tables; the suppressions API has no date filter, so
        ``since`` is not used."""
        for table, reason in PULLED_TABLES.items():
            page: Any = f"/v3/{account.target}/{table}?limit={MAX_RECORDS_PER_CALL}"
            while page:
                document = account.api.json("GET", page)
                items = document.get("items") or []
                for item in items:
                    entry = _pulled(item, reason, account.list_slug)
                    if entry:
                        yield entry
                page = items and (document.get("paging") or {}).get("next")

    def _signed(self, signature: dict, message: bytes) -> bool:
        # A subaccount's event also carries parent-signature, made with the parent account's
        # key ("Securing Webhooks"); either verifies when its key is configured.
        given = [signature.get(name) for name in ("signature", "parent-signature")]
        matched = False
        for key in self.settings["WEBHOOK_SIGNING_KEY"]:
            expected = hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
            matched |= any(same(value, expected) for value in given if isinstance(value, str))
        return matched


def _signature_block(delivery: Delivery) -> tuple[dict, str, str]:
    """The body's signature object, its timestamp and its token; without them nothing proves
    that Mailgun sent the request."""
    try:
        document = delivery.document
    except Malformed:
        document = None
    block = document.get("signature") if isinstance(document, dict) else None
    if not isinstance(block, dict):
        raise Rejected("no Mailgun signature in the body", 401)
    timestamp, token = block.get("timestamp"), block.get("token")
    # "Securing Webhooks" documents timestamp as an int; its examples send a string.
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    digits = isinstance(timestamp, str) and timestamp.isascii() and timestamp.isdigit()
    if not digits or not isinstance(token, str) or not token:
        raise Rejected("an incomplete Mailgun signature", 401)
    return block, timestamp, token


def _classify(raw: str, data: dict) -> tuple[str, str | None]:
    if raw != "failed":
        return EVENT_TYPES.get(raw, "unknown"), None
    reason = data.get("reason")
    if reason in SUPPRESSED_REASONS:
        return "dropped", None
    if reason == GAVE_UP_REASON:
        return "bounced", "soft"
    return SEVERITIES.get(data.get("severity"), ("unknown", None))


def _sender(data: dict, headers: dict) -> str | None:
    """Webhook Payloads (the Accepted Event example): ``message.headers.from`` is the From
    header, ``envelope.sender`` the envelope sender."""
    envelope = data.get("envelope") if isinstance(data.get("envelope"), dict) else {}
    return sender_of(headers.get("from"), envelope.get("sender"))


def _event_id(data: dict) -> str:
    # event-data.id is only unique within a day (anymail), so the event time joins it.
    event_id = required_text(data, "id")
    return f"{event_id}:{data.get('timestamp')}"


def _recipient(data: dict, raw: str, kind: str, headers: dict) -> str | None:
    recipient = data.get("recipient")
    if raw == "rejected" and not recipient:
        # A rejected request may name no recipient; the message's To header still does.
        recipient = headers.get("to")
    if isinstance(recipient, str) and recipient.strip():
        return recipient
    if kind != "unknown" and raw != "rejected":
        raise Malformed(f"a Mailgun {raw} event without its recipient")
    return None


def _diagnostic(status: Any) -> str | None:
    """delivery-status code, enhanced code, message and description as one line, each once."""
    if not isinstance(status, dict):
        return None
    fields = ("code", "enhanced-code", "message", "description")
    parts = list(dict.fromkeys(filter(None, (scalar_text(status.get(f)) for f in fields))))
    kept = [part for part in parts if not any(part != other and part in other for other in parts)]
    return " ".join(kept) or None


def _campaign(variables: Any) -> str | None:
    return scalar_text(variables.get(CAMPAIGN_VARIABLE)) if isinstance(variables, dict) else None


def _engagement(data: dict) -> dict[str, Any]:
    client = data.get("client-info") if isinstance(data.get("client-info"), dict) else {}
    return {
        "url": scalar_text(data.get("url")),
        "ip": scalar_text(data.get("ip")),
        "user_agent": scalar_text(client.get("user-agent")),
    }


def _by_table(changes: list[Change]) -> dict[str, list[Change]]:
    tables: dict[str, list[Change]] = {}
    for change in changes:
        tables.setdefault(TABLES.get(change.reason, "unsubscribes"), []).append(change)
    return tables


def _records(table: str, changes: list[Change], list_slug: str | None) -> bytes:
    """The call's body: a JSON array of records as the table documents them.

    Made as text: a record's fields besides its address are the same for every change of one
    kind (list or not, reason), so each kind's are encoded once per call rather than a dict
    built and encoded per record, which cost more than the rest of a push's own work.
    ``created_at`` is the moment of the call, in RFC 822 as the table asks.
    """
    created_at = format_datetime(_now(), True)
    tails: dict[tuple[bool, str], str] = {}
    records = []
    for change in changes:
        kind = (change.on_list, change.reason)
        if kind not in tails:
            # '{"created_at": ..., ...}' without its opening brace, to follow the address.
            tails[kind] = json.dumps(_fields(table, change, list_slug, created_at))[1:]
        records.append(f'{{"address": {encode_basestring_ascii(change.email)}, {tails[kind]}')
    return f"[{', '.join(records)}]".encode()


def _fields(table: str, change: Change, list_slug: str | None, created_at: str) -> dict[str, Any]:
    """A record's fields besides the address."""
    fields: dict[str, Any] = {"created_at": created_at}
    if table == "unsubscribes":
        fields["tags"] = [list_slug if change.on_list and list_slug else ALL_MAIL]
    elif table == "bounces":
        fields.update(code=BOUNCE_CODE, error=f"suppressed by suppress: {change.reason}")
    return fields


def _now() -> datetime:
    return datetime.now(UTC)


def _lift(account: Account, table: str, change: Change) -> Outcome:
    """``DELETE /v3/<domain>/<table>/<address>``: mail to the address resumes. A record that is
    gone already (404) is what we wanted."""
    params = {"tag": account.list_slug} if table == "unsubscribes" and change.on_list else None
    path = f"/v3/{account.target}/{table}/{quote(change.email, safe='@')}"
    account.api.call("DELETE", path, params=params, ok=(404,))
    return Outcome(change.key, ACCEPTED)


def _pulled(item: Mapping[str, Any], reason: str, list_slug: str | None) -> Pulled | None:
    address = nonblank(item.get("address"))
    if address is None:
        return None
    tags = item.get("tags") or [ALL_MAIL]
    on_list = ALL_MAIL not in tags
    if on_list and list_slug not in tags:
        return None  # unsubscribed from mail with some other tag, not from a list of ours
    at = _moment(item.get("created_at"))
    return Pulled(email=address, reason=reason, at=at, on_list=on_list)


def _moment(value: Any) -> datetime | None:
    """Mailgun answers RFC 822 dates ("Fri, 21 Oct 2011 11:02:55 UTC")."""
    try:
        return parsedate_to_datetime(value).astimezone(UTC) if isinstance(value, str) else None
    except (TypeError, ValueError):
        return None
