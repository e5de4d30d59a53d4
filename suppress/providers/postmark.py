"""Postmark: verifying its webhook requests and turning its records into normalised events.

Postmark signs nothing (developer/webhooks/webhooks-overview, "Protecting your webhook"): a request
proves its origin only by the HTTP basic-auth credentials in the webhook URL and/or a secret
custom header set through the Webhooks API (``HttpHeaders``). Every POST carries one JSON record
whose ``RecordType`` selects its shape. This module reads wire formats only; ``events.py``
decides what the events mean.

For the sync job it pushes suppressions to one message stream's suppression list (the
destination's target) through the Suppressions API, and reads that list back.
"""

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from werkzeug.datastructures import Headers

from suppress.config import ConfigError, Setting, text
from suppress.providers.api import Api
from suppress.providers.base import Provider
from suppress.providers.credentials import check_basic_auth, same
from suppress.providers.delivery import Delivery, Event, Malformed, Rejected, load_json
from suppress.providers.fields import from_iso, nonblank, optional_text, required_text, synthetic_id
from suppress.providers.settings import REQUIRED, credentials_list, secrets_list, url
from suppress.providers.syncing import ACCEPTED, Account, Change, Outcome, Pulled, refused

REALM = "suppress postmark webhook"

# RecordType → normalised type where the record type alone decides it
# (developer/webhooks: delivery-, spam-complaint-, open-tracking- and click-webhook).
RECORD_TYPES: dict[str, str] = {
    "Delivery": "delivered",
    "SpamComplaint": "complained",
    "Open": "opened",
    "Click": "clicked",
}

# Bounce record ``Type`` → (normalised type, bounce class), one row per row of Postmark's
# bounce-type table (developer/api/bounce-api, "Bounce types"). Map by ``Type``, never by
# ``TypeCode``: the spam-complaint webhook example sends TypeCode 512, which the table gives to
# SpamNotification.
BOUNCE_TYPES: dict[str, tuple[str, str | None]] = {
    "HardBounce": ("bounced", "hard"),
    # "Message delayed/Undeliverable": the server could not deliver for now.
    "Transient": ("bounced", "soft"),
    # An "Unsubscribe or Remove request" reply to the message.
    "Unsubscribe": ("unsubscribed", None),
    # A reply asking to be added; an auto-classified email is no consent, so it never lifts a
    # suppression.
    "Subscribe": ("unknown", None),
    "AutoResponder": ("unknown", None),
    "AddressChange": ("unknown", None),
    # "A temporary DNS error".
    "DnsError": ("bounced", "soft"),
    # The receiving server's filter, not the person: not a complaint.
    "SpamNotification": ("bounced", "soft"),
    "OpenRelayTest": ("unknown", None),
    "Unknown": ("unknown", None),
    "SoftBounce": ("bounced", "soft"),
    # About our message's content, not the recipient's mailbox.
    "VirusNotification": ("bounced", "soft"),
    "ChallengeVerification": ("unknown", None),
    "BadEmailAddress": ("bounced", "hard"),
    "SpamComplaint": ("complained", None),
    # Postmark refused to send: the address is already inactive on its side.
    "ManuallyDeactivated": ("dropped", None),
    "Unconfirmed": ("dropped", None),
    # "ISP block" and DMARC rejections describe our domain, not the recipient (RULES R-MBP-6).
    "Blocked": ("bounced", "soft"),
    "DMARCPolicy": ("bounced", "soft"),
    "SMTPApiError": ("unknown", None),
    "InboundError": ("unknown", None),
    "TemplateRenderingFailed": ("unknown", None),
}

# SubscriptionChange ``SuppressionReason`` when ``SuppressSending`` is true
# (developer/webhooks/subscription-change-webhook). A recipient's unsubscribe arrives as
# ManualSuppression; the bounce and spam-complaint webhooks do not exist on broadcast streams,
# so these records are the only report of them there.
SUPPRESSION_REASONS: dict[str, tuple[str, str | None]] = {
    "HardBounce": ("bounced", "hard"),
    "SpamComplaint": ("complained", None),
    "ManualSuppression": ("unsubscribed", None),
}

# Where each record keeps its recipient and its event time (developer/webhooks/*).
RECORD_FIELDS: dict[str, tuple[str, str]] = {
    "Delivery": ("Recipient", "DeliveredAt"),
    "Bounce": ("Email", "BouncedAt"),
    "SpamComplaint": ("Email", "BouncedAt"),
    "Open": ("Recipient", "ReceivedAt"),
    "Click": ("Recipient", "ReceivedAt"),
    "SubscriptionChange": ("Recipient", "ChangedAt"),
}
TIME_FIELDS = ("BouncedAt", "DeliveredAt", "ReceivedAt", "ChangedAt")
# Bounce records (spam complaints included) carry Postmark's bounce ``ID``; the rest carry none.
RECORDS_WITH_ID = ("Bounce", "SpamComplaint")

# Sync: the Suppressions API (developer/api/suppressions-api), one list per message stream.
# "Create a Suppression" and "Delete a Suppression" take up to 50 addresses a call (more is
# ErrorCode 1410, "You cannot provide more than the maximum number of suppressions").
MAX_SUPPRESSIONS_PER_CALL = 50
# Marketing mail goes through a broadcast stream; "broadcast" is the id of the one a server has.
DEFAULT_STREAM = "broadcast"
# A pushed suppression is always a ManualSuppression of Origin Customer, whatever our reason:
# the API records no other kind. Each address gets its own Status in the answer.
DONE_STATUSES = frozenset({"Suppressed", "Deleted"})
# The answer for an address whose suppression only the recipient or Postmark may change (the
# example is a spam complaint). Created again, such an address is suppressed already; deleted,
# it stays suppressed: "Delete a Suppression" cannot reactivate a SpamComplaint.
NO_AUTHORITY = "You do not have the required authority to change this suppression."
# "Suppression dump", SuppressionReason: a hard bounce or a complaint is a fact about the address,
# for every list. A ManualSuppression concerns what the stream carries (the destination's list,
# if it has one): an unsubscribe when the recipient made it (Origin Recipient), else manual.
PULLED_REASONS = {"HardBounce": "bounced", "SpamComplaint": "complained"}


def header_list(value: Any) -> tuple[tuple[str, str], ...]:
    """Comma-separated ``Name: value`` pairs, so a header secret can rotate like a password."""
    pairs = []
    for item in secrets_list(value):
        name, sep, secret = (part.strip() for part in item.partition(":"))
        if not sep or not name or not secret or " " in name:
            raise ValueError("expected Name: value")
        pairs.append((name, secret))
    return tuple(pairs)


class Postmark(Provider):
    slug = "postmark"
    name = "Postmark"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_BASIC_AUTH": Setting(
            None, credentials_list, "user:password in the webhook URL (comma-separated to rotate)"
        ),
        "WEBHOOK_HEADER": Setting(
            None, header_list, "Name: value of a secret header set on the webhook (HttpHeaders)"
        ),
    }
    API_SETTINGS: ClassVar[dict[str, Setting]] = {
        "API_KEY": Setting(REQUIRED, text, "server token; required to sync suppressions"),
        "API_URL": Setting("https://api.postmarkapp.com", url, "Postmark API base URL"),
        "MESSAGE_STREAM": Setting(
            DEFAULT_STREAM, text, "message stream synced when a destination names none"
        ),
    }
    PUSH_BATCH = MAX_SUPPRESSIONS_PER_CALL
    CAN_LIFT = True
    TARGET = "the message stream"
    TARGET_SETTING = "MESSAGE_STREAM"

    def __init__(self, config: Mapping[str, Any]):
        super().__init__(config)
        if not (self.settings["WEBHOOK_BASIC_AUTH"] or self.settings["WEBHOOK_HEADER"]):
            raise ConfigError(
                f"{self.variable('WEBHOOK_BASIC_AUTH')} or {self.variable('WEBHOOK_HEADER')} "
                "must be set to use Postmark: its webhooks carry no signature"
            )

    def verify(self, delivery: Delivery) -> None:
        """Every configured check must pass; failures answer 401, never 403, because a 403
        makes Postmark stop retrying (support article "Understanding inbound webhook retries")
        and a misconfiguration would then lose events silently."""
        if self.settings["WEBHOOK_BASIC_AUTH"]:
            check_basic_auth(delivery.headers, self.settings["WEBHOOK_BASIC_AUTH"], realm=REALM)
        if self.settings["WEBHOOK_HEADER"]:
            check_header(delivery.headers, self.settings["WEBHOOK_HEADER"])

    def parse(self, delivery: Delivery) -> list[Event]:
        record = load_json(delivery.body)
        if not isinstance(record, dict):
            raise Malformed("a Postmark webhook posts one JSON object")
        record_type = required_text(record, "RecordType")
        kind, bounce_class = classify(record_type, record)
        recipient, occurred_raw = recipient_and_time(record_type, record)
        return [
            Event(
                provider=self.slug,
                provider_event_id=event_id(record_type, record, recipient, occurred_raw),
                type=kind,
                bounce_class=bounce_class,
                recipient=recipient,
                occurred_at=from_iso(occurred_raw),
                raw_type=raw_type(record_type, record),
                diagnostic=optional_text(record, "Details") or optional_text(record, "Description"),
                message_id=optional_text(record, "MessageID"),
                list_ref=stream_scope(record_type, record),
                campaign=optional_text(record, "Tag"),
                url=optional_text(record, "OriginalLink"),
                ip=geo_ip(record),
                user_agent=optional_text(record, "UserAgent"),
                # developer/webhooks: only the bounce and spam-complaint webhooks carry From;
                # the delivery, open, click and subscription-change ones name no sender.
                sender=optional_text(record, "From"),
            )
        ]

    @classmethod
    def api(cls, settings: Mapping[str, Any], **options: Any) -> Api:
        """The server token in ``X-Postmark-Server-Token`` (developer/api/overview,
        "Authentication")."""
        headers = {"X-Postmark-Server-Token": settings["API_KEY"]}
        return Api(settings["API_URL"], headers=headers, **options)

    @classmethod
    def push(cls, account: Account, changes: list[Change]) -> list[Outcome]:
        """Create and delete suppressions on the stream; the stream is the destination's scope,
        so a list-level change goes there like a global one. Postmark processes a created
        suppression "asynchronously", within a minute: its answer is still the outcome."""
        additions = [change for change in changes if not change.lift]
        lifts = [change for change in changes if change.lift]
        return _suppressions(account, "suppressions", additions) + _suppressions(
            account, "suppressions/delete", lifts
        )

    @classmethod
    def pull(cls, account: Account, since: datetime | None) -> Iterator[Pulled]:
        """The stream's whole list in one answer ("Suppression dump" has no paging), from the
        day of ``since`` on (``fromdate`` is a date, inclusive)."""
        params = {"fromdate": since.date().isoformat()} if since else None
        document = account.api.json("GET", f"{_stream(account)}/suppressions/dump", params=params)
        for item in (document or {}).get("Suppressions") or []:
            entry = _pulled(item)
            if entry:
                yield entry


def check_header(headers: Headers, accepted: tuple[tuple[str, str], ...]) -> None:
    """Raise Rejected unless one accepted header carries its secret; all are compared."""
    matched = False
    for name, secret in accepted:
        matched |= same(headers.get(name, ""), secret)
    if not matched:
        raise Rejected("missing or wrong webhook header", status=401)


def classify(record_type: str, record: Mapping[str, Any]) -> tuple[str, str | None]:
    if record_type == "Bounce":
        return BOUNCE_TYPES.get(required_text(record, "Type"), ("unknown", None))
    if record_type == "SubscriptionChange":
        return subscription_change(record)
    return RECORD_TYPES.get(record_type, "unknown"), None


def subscription_change(record: Mapping[str, Any]) -> tuple[str, str | None]:
    """SuppressSending false is a reactivation; true is a suppression whose reason refines it.

    A reason Postmark adds later still stops its sending, so it is honoured as an unsubscribe.
    """
    suppress = record.get("SuppressSending")
    if not isinstance(suppress, bool):
        raise Malformed("SubscriptionChange without a true/false SuppressSending")
    if not suppress:
        return "resubscribed", None
    return SUPPRESSION_REASONS.get(record.get("SuppressionReason"), ("unsubscribed", None))


def recipient_and_time(record_type: str, record: Mapping[str, Any]) -> tuple[str | None, str]:
    """The recipient and the raw event time; a record type Postmark adds later is read from
    whichever documented fields it has."""
    if record_type in RECORD_FIELDS:
        recipient_field, time_field = RECORD_FIELDS[record_type]
        return required_text(record, recipient_field), required_text(record, time_field)
    recipient = optional_text(record, "Recipient") or optional_text(record, "Email")
    for time_field in TIME_FIELDS:
        if time_field in record:
            return recipient, required_text(record, time_field)
    raise Malformed(f"{record_type} record without an event time")


def event_id(
    record_type: str, record: Mapping[str, Any], recipient: str | None, occurred_raw: str
) -> str:
    """Postmark's bounce ``ID`` where the record has one, else a synthetic id (PROVIDERS §0)."""
    if record_type in RECORDS_WITH_ID:
        bounce_id = record.get("ID")
        if isinstance(bounce_id, bool) or not isinstance(bounce_id, int | str) or bounce_id == "":
            raise Malformed(f"{record_type} record without an ID")
        return str(bounce_id)
    return synthetic_id("postmark", record_type, recipient, record.get("MessageID"), occurred_raw)


def raw_type(record_type: str, record: Mapping[str, Any]) -> str:
    """A bounce record is named by its bounce ``Type``, the name that decides what it means."""
    return record["Type"] if record_type == "Bounce" else record_type


def stream_scope(record_type: str, record: Mapping[str, Any]) -> str | None:
    """Postmark suppresses per message stream, so a subscription change concerns that stream."""
    if record_type == "SubscriptionChange":
        return optional_text(record, "MessageStream")
    return None


def geo_ip(record: Mapping[str, Any]) -> str | None:
    geo = record.get("Geo")
    return optional_text(geo, "IP") if isinstance(geo, dict) else None


def _stream(account: Account) -> str:
    return f"/message-streams/{quote(str(account.target), safe='')}"


def _suppressions(account: Account, action: str, changes: list[Change]) -> list[Outcome]:
    """One call for ``changes``, an Outcome for each address Postmark answered for (matched by
    address, as it may write it in another case); an address it left out stays pending."""
    if not changes:
        return []
    body = {"Suppressions": [{"EmailAddress": change.email} for change in changes]}
    document = account.api.json("POST", f"{_stream(account)}/{action}", json=body)
    answers = {
        str(item.get("EmailAddress", "")).lower(): item
        for item in (document or {}).get("Suppressions") or []
        if isinstance(item, dict)
    }
    return [
        _outcome(change, answers[change.email.lower()])
        for change in changes
        if change.email.lower() in answers
    ]


def _outcome(change: Change, answer: Mapping[str, Any]) -> Outcome:
    message = nonblank(answer.get("Message"))
    if answer.get("Status") in DONE_STATUSES:
        return Outcome(change.key, ACCEPTED)
    if message == NO_AUTHORITY and not change.lift:
        return Outcome(change.key, ACCEPTED, f"suppressed already by the recipient: {message}")
    return refused(change, message or f"Postmark answered {answer.get('Status')!r}")


def _pulled(item: Any) -> Pulled | None:
    address = nonblank(item.get("EmailAddress")) if isinstance(item, dict) else None
    if address is None:
        return None
    kind = item.get("SuppressionReason")
    if kind in PULLED_REASONS:
        reason, on_list = PULLED_REASONS[kind], False
    else:
        by_recipient = item.get("Origin") == "Recipient"
        reason, on_list = ("unsubscribed" if by_recipient else "manual"), True
    return Pulled(email=address, reason=reason, at=_moment(item.get("CreatedAt")), on_list=on_list)


def _moment(value: Any) -> datetime | None:
    try:
        return from_iso(value)
    except Malformed:
        return None
