"""Amazon SES event notifications delivered by Amazon SNS over HTTPS.

Owns the SNS envelope (message signature v1/v2, signing certificate pinned to SNS's own host in
the topic's region, the topic allow-list, optional basic auth), the subscription handshake, and
the translation of SES records, from event publishing (``eventType``) or identity notifications
(``notificationType``), into one Event per recipient. It stores nothing and decides nothing:
``events.py`` says what the events mean.
"""

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from suppress.config import Setting
from suppress.providers.base import (
    REQUIRED,
    Delivery,
    Event,
    Malformed,
    Provider,
    Rejected,
    Reply,
    check_basic_auth,
    credentials_list,
    flag,
    from_iso,
    load_json,
    nonblank,
    secrets_list,
    text,
    url,
)

log = logging.getLogger(__name__)

# SES "Contents of event data that Amazon SES publishes to Amazon SNS", top-level `eventType`
# (`notificationType` in identity notifications). Records of other types become `unknown`.
EVENT_TYPES: dict[str, str] = {
    "Send": "sent",
    "Delivery": "delivered",
    "DeliveryDelay": "deferred",
    "Bounce": "bounced",  # refined by bounceType and bounceSubType, see read_bounce
    "Complaint": "complained",  # refined by complaintSubType, see read_complaint
    "Reject": "dropped",  # SES found a virus and did not try to deliver (Reject object)
    "Open": "opened",
    "Click": "clicked",
    "Rendering Failure": "unknown",  # a template error: nothing was sent, nothing about the address
    "Subscription": "unsubscribed",  # refined by the preference change, see subscription_type
}
# SES "Bounce types": Undetermined is SES failing to classify, never proof of a dead address.
BOUNCE_TYPES: dict[str, str] = {"Permanent": "hard", "Transient": "soft", "Undetermined": "soft"}
# SES "Bounce types": SES refused to send because the address is already on a suppression list.
SUPPRESSED_SUBTYPES = frozenset({"Suppressed", "OnAccountSuppressionList"})
# SES "Complaint subtypes": accepted but never sent, so nobody complained.
SUPPRESSED_COMPLAINT = "OnAccountSuppressionList"

# SNS "Verifying the signature of an Amazon SNS message": the fields signed, in this order; a
# field is left out when the message does not carry it (only Subject ever is).
CONFIRMATION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn")
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (*CONFIRMATION_FIELDS, "Type"),
    "UnsubscribeConfirmation": (*CONFIRMATION_FIELDS, "Type"),
}
OPTIONAL_SIGNED_FIELDS = frozenset({"Subject"})
# SNS "Verifying the signatures": SignatureVersion 1 hashes with SHA1, 2 with SHA256.
SIGNATURE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
# SNS "HTTP/HTTPS headers": what SNS says in headers must match what it signed in the body.
HEADER_FIELDS = {"x-amz-sns-message-type": "Type", "x-amz-sns-message-id": "MessageId"}
TOPIC_HEADER = "x-amz-sns-topic-arn"

TOPIC_ARN = re.compile(r"arn:(aws|aws-cn|aws-us-gov):sns:([a-z0-9-]+):(\d{12}):([\w.-]+)")
# SNS endpoints per partition: sns.<region>.amazonaws.com, and .amazonaws.com.cn in China.
SNS_DOMAINS = {"aws": "amazonaws.com", "aws-us-gov": "amazonaws.com", "aws-cn": "amazonaws.com.cn"}
# The notification SES publishes right after an event destination is added (SES event
# publishing set-up); its Message is this plain sentence, not JSON.
VALIDATION_NOTICE = "Successfully validated SNS topic"
FETCH_TIMEOUT_SECONDS = 10
REALM = "suppress ses"

# Signing keys by certificate URL, for the life of the process (PROVIDERS.md §0 Verification).
_signing_keys: dict[str, rsa.RSAPublicKey] = {}


def topic_arns(value: Any) -> tuple[str, ...]:
    """Comma-separated SNS topic ARNs; each must name a region, which pins its certificates."""
    arns = secrets_list(value)
    for arn in arns:
        if not TOPIC_ARN.fullmatch(arn):
            raise ValueError(f"not an SNS topic ARN: {arn!r}")
    return arns


def fetch(address: str) -> bytes:
    """The body at ``address``; redirects are refused so the host that was checked is the one
    that answers. Network errors propagate: the request is answered 5xx and SNS retries."""
    response = requests.get(address, timeout=FETCH_TIMEOUT_SECONDS, allow_redirects=False)
    if response.status_code != 200:
        raise requests.HTTPError(f"{address} answered {response.status_code}", response=response)
    return response.content


def pinned_url(address: Any, topic_arn: str) -> str:
    """``address`` when it is https on SNS's own host in the topic's region; Rejected otherwise.

    A certificate or subscription URL anywhere else could be an attacker's (SNS "Verifying the
    signatures": the certificate must come from SNS over HTTPS).
    """
    match = TOPIC_ARN.fullmatch(topic_arn)
    if match is None or not isinstance(address, str):
        raise Rejected("no SNS URL to check", status=403)
    partition, region = match.group(1), match.group(2)
    expected = f"sns.{region}.{SNS_DOMAINS[partition]}"
    try:
        parts = urlsplit(address)
    except ValueError:
        raise Rejected(f"not a URL: {address!r}", status=403) from None
    if parts.scheme != "https" or parts.netloc.lower() != expected:
        raise Rejected(f"SNS URL outside {expected}: {address!r}", status=403)
    return address


def load_signing_key(pem: bytes) -> rsa.RSAPublicKey:
    """The RSA key of a PEM certificate that is valid now; Rejected for anything else."""
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise Rejected("the signing certificate is not a PEM certificate", status=403) from None
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise Rejected("the signing certificate is not valid now", status=403)
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Rejected("the signing certificate does not hold an RSA key", status=403)
    return key


def string_to_sign(envelope: dict[str, Any]) -> bytes:
    """The bytes SNS signed: ``name\\nvalue\\n`` per signed field, in SNS's order."""
    fields = SIGNED_FIELDS.get(envelope.get("Type"))
    if fields is None:
        raise Rejected(f"not a signed SNS message type: {envelope.get('Type')!r}", status=403)
    lines = []
    for name in fields:
        value = envelope.get(name)
        if value is None and name in OPTIONAL_SIGNED_FIELDS:
            continue
        if not isinstance(value, str):
            raise Rejected(f"the SNS message has no {name}", status=403)
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


def load_envelope(body: bytes) -> dict[str, Any]:
    """The SNS envelope; SNS posts JSON as text/plain by default, so the body is read as is."""
    envelope = load_json(body)
    if not isinstance(envelope, dict):
        raise Malformed("the body is not an SNS message object")
    return envelope


def is_validation_notice(envelope: dict[str, Any]) -> bool:
    message = envelope.get("Message")
    return (
        envelope.get("Type") == "Notification"
        and isinstance(message, str)
        and message.startswith(VALIDATION_NOTICE)
    )


@dataclass(frozen=True)
class Reading:
    """What one SES record says before it is fanned out: one (address, diagnostic) per
    recipient; ``type`` overrides the table's type where the record refines it."""

    recipients: list[tuple[str, str | None]]
    timestamp: Any = None
    type: str | None = None
    bounce_class: str | None = None
    url: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    list_ref: str | None = None


def section(record: dict[str, Any], name: str) -> dict[str, Any]:
    value = record.get(name)
    if not isinstance(value, dict):
        raise Malformed(f"the SES record has no {name} object")
    return value


def address_list(items: Any, where: str) -> list[str]:
    """Addresses given as strings or as objects with ``emailAddress``; at least one."""
    if not isinstance(items, list) or not items:
        raise Malformed(f"the SES record has no recipients in {where}")
    addresses = [item.get("emailAddress") if isinstance(item, dict) else item for item in items]
    if not all(isinstance(address, str) and address for address in addresses):
        raise Malformed(f"a recipient in {where} has no address")
    return addresses


def destinations(mail: dict[str, Any], diagnostic: str | None = None) -> list[tuple[str, Any]]:
    """Every recipient of the message: SES does not say which of them opened, clicked or was
    refused (anymail's reading of the Open and Click objects), so all of them get the event."""
    return [(address, diagnostic) for address in address_list(mail.get("destination"), "mail")]


def with_diagnostics(items: Any, where: str) -> list[tuple[str, str | None]]:
    """Per-recipient DSN fields (SES "Bounced recipients"): the diagnostic code, else status."""
    addresses = address_list(items, where)
    return [
        (address, nonblank(item.get("diagnosticCode")) or nonblank(item.get("status")))
        for address, item in zip(addresses, items, strict=True)
    ]


def read_send(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    # SES "Send object" is always empty: the send time is the mail's.
    return Reading(destinations(mail), mail.get("timestamp"))


def read_delivery(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    delivery = section(record, "delivery")
    reply = nonblank(delivery.get("smtpResponse"))
    recipients = address_list(delivery.get("recipients"), "delivery.recipients")
    return Reading([(address, reply) for address in recipients], delivery.get("timestamp"))


def read_delay(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    delay = section(record, "deliveryDelay")
    items = delay.get("delayedRecipients")
    return Reading(with_diagnostics(items, "deliveryDelay"), delay.get("timestamp"))


def read_bounce(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    bounce = section(record, "bounce")
    recipients = with_diagnostics(bounce.get("bouncedRecipients"), "bounce")
    bounce_type, subtype = bounce.get("bounceType"), bounce.get("bounceSubType")
    if bounce_type == "Permanent" and subtype in SUPPRESSED_SUBTYPES:
        return Reading(recipients, bounce.get("timestamp"), type="dropped")
    # A bounce type SES adds later is not evidence of a dead address: soft.
    bounce_class = BOUNCE_TYPES.get(bounce_type, "soft")
    return Reading(recipients, bounce.get("timestamp"), bounce_class=bounce_class)


def read_complaint(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    complaint = section(record, "complaint")
    feedback = nonblank(complaint.get("complaintFeedbackType"))
    items = address_list(complaint.get("complainedRecipients"), "complaint")
    refused = complaint.get("complaintSubType") == SUPPRESSED_COMPLAINT
    recipients = [(address, feedback) for address in items]
    return Reading(recipients, complaint.get("timestamp"), type="dropped" if refused else None)


def read_reject(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    # SES "Reject object" has no time of its own: the SNS Timestamp stands in.
    reason = nonblank(section(record, "reject").get("reason"))
    return Reading(destinations(mail, reason))


def read_open(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    opened = section(record, "open")
    return Reading(
        destinations(mail),
        opened.get("timestamp"),
        ip=nonblank(opened.get("ipAddress")),
        user_agent=nonblank(opened.get("userAgent")),
    )


def read_click(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    click = section(record, "click")
    return Reading(
        destinations(mail),
        click.get("timestamp"),
        url=nonblank(click.get("link")),
        ip=nonblank(click.get("ipAddress")),
        user_agent=nonblank(click.get("userAgent")),
    )


def read_rendering_failure(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    error = nonblank(section(record, "failure").get("errorMessage"))
    return Reading(destinations(mail, error))


def topic_statuses(preferences: Any) -> dict[str, Any]:
    topics = preferences.get("topicSubscriptionStatus") if isinstance(preferences, dict) else None
    if not isinstance(topics, list):
        return {}
    return {
        topic.get("topicName"): topic.get("subscriptionStatus")
        for topic in topics
        if isinstance(topic, dict)
    }


def subscription_type(subscription: dict[str, Any]) -> str:
    """SES "Subscription record": leaving everything or any topic is an unsubscribe; coming
    back to everything or to a topic is a resubscribe; anything else changed nothing we track."""
    new, old = subscription.get("newTopicPreferences"), subscription.get("oldTopicPreferences")
    new_topics, old_topics = topic_statuses(new), topic_statuses(old)
    left_all = isinstance(new, dict) and new.get("unsubscribeAll") is True
    if left_all or any(
        status == "OptOut" and old_topics.get(name) != "OptOut"
        for name, status in new_topics.items()
    ):
        return "unsubscribed"
    came_back = isinstance(old, dict) and old.get("unsubscribeAll") is True
    if came_back or any(
        status == "OptIn" and old_topics.get(name) != "OptIn" for name, status in new_topics.items()
    ):
        return "resubscribed"
    return "unknown"


def read_subscription(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    # SES list management names no address in the subscription object: the mail's recipients.
    subscription = section(record, "subscription")
    return Reading(
        destinations(mail),
        subscription.get("timestamp"),
        type=subscription_type(subscription),
        list_ref=nonblank(subscription.get("contactList")),
    )


def read_unlisted(record: dict[str, Any], mail: dict[str, Any]) -> Reading:
    has_recipients = isinstance(mail.get("destination"), list) and mail["destination"]
    return Reading(destinations(mail) if has_recipients else [])


READERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Reading]] = {
    "Send": read_send,
    "Delivery": read_delivery,
    "DeliveryDelay": read_delay,
    "Bounce": read_bounce,
    "Complaint": read_complaint,
    "Reject": read_reject,
    "Open": read_open,
    "Click": read_click,
    "Rendering Failure": read_rendering_failure,
    "Subscription": read_subscription,
}


def load_record(envelope: dict[str, Any]) -> dict[str, Any]:
    """The SES record inside a Notification: its Message is a JSON string."""
    message = envelope.get("Message")
    if not isinstance(message, str):
        raise Malformed("the SNS notification has no Message")
    try:
        record = json.loads(message)
    except ValueError:
        raise Malformed("the SNS Message is not an SES record (not JSON)") from None
    if not isinstance(record, dict):
        raise Malformed("the SNS Message is not an SES record object")
    return record


class Ses(Provider):
    """SES via SNS. ``fetch`` is how certificates and subscription URLs are fetched, after
    their host has been checked; tests aim it at a local server."""

    slug: ClassVar[str] = "ses"
    name: ClassVar[str] = "Amazon SES"
    SETTINGS: ClassVar[dict[str, Setting]] = {
        "WEBHOOK_BASIC_AUTH": Setting(
            None,
            credentials_list,
            "`user:password` pairs (comma-separated) SNS must send, given in the subscription "
            "URL as `https://user:password@host/webhooks/ses`; optional.",
        ),
        "TOPIC_ARNS": Setting(
            REQUIRED,
            topic_arns,
            "SNS topic ARNs (comma-separated) whose messages are accepted; others are refused.",
        ),
        "AUTO_CONFIRM": Setting(
            True,
            flag,
            "Confirm an SNS subscription by visiting its SubscribeURL; when false, the URL is "
            "logged for manual confirmation.",
        ),
        "REGION": Setting(None, text, "AWS region of the SES account (suppression sync)."),
        "ACCESS_KEY_ID": Setting(None, text, "AWS access key id for the SES API v2."),
        "SECRET_ACCESS_KEY": Setting(None, text, "AWS secret access key for the SES API v2."),
        "API_URL": Setting(
            None, url, "SES API v2 base URL; default `https://email.<region>.amazonaws.com`."
        ),
    }

    def __init__(self, config: Any):
        super().__init__(config)
        self.fetch: Callable[[str], bytes] = fetch

    def verify(self, delivery: Delivery) -> None:
        credentials = self.settings["WEBHOOK_BASIC_AUTH"]
        if credentials:
            # SNS sends credentials only after a 401 with a Basic challenge (SNS "HTTPS
            # endpoints": basic and digest access authentication).
            check_basic_auth(delivery.headers, credentials, realm=REALM)
        try:
            envelope = load_envelope(delivery.body)
        except Malformed as error:
            raise Rejected(f"not an SNS message: {error}", status=403) from None
        self.check_headers(delivery, envelope)
        topic = envelope.get("TopicArn")
        if topic not in self.settings["TOPIC_ARNS"]:
            raise Rejected(f"topic not accepted: {topic!r}", status=403)
        self.check_signature(envelope, topic)

    def handshake(self, delivery: Delivery) -> Reply | None:
        envelope = load_envelope(delivery.body)
        kind = envelope.get("Type")
        if kind == "SubscriptionConfirmation":
            return self.confirm(envelope)
        if kind == "UnsubscribeConfirmation":
            log.info("SNS unsubscribed this endpoint from %s", envelope.get("TopicArn"))
            return Reply()
        if is_validation_notice(envelope):
            return Reply()
        return None

    def parse(self, delivery: Delivery) -> list[Event]:
        envelope = load_envelope(delivery.body)
        if envelope.get("Type") != "Notification":
            return []
        record = load_record(envelope)
        raw_type = record.get("eventType") or record.get("notificationType")
        if not isinstance(raw_type, str):
            raise Malformed("the SES record has no eventType or notificationType")
        mail = section(record, "mail")
        reading = READERS.get(raw_type, read_unlisted)(record, mail)
        return self.fan_out(envelope, raw_type, mail, reading)

    def check_headers(self, delivery: Delivery, envelope: dict[str, Any]) -> None:
        """Headers and body must agree: a mismatch means a hand-made request (anymail)."""
        for header, name in HEADER_FIELDS.items():
            if delivery.headers.get(header) != envelope.get(name):
                raise Rejected(f"{header} disagrees with the signed {name}", status=403)
        topic = delivery.headers.get(TOPIC_HEADER)
        if topic is not None and topic != envelope.get("TopicArn"):
            raise Rejected(f"{TOPIC_HEADER} disagrees with the signed TopicArn", status=403)

    def check_signature(self, envelope: dict[str, Any], topic: str) -> None:
        algorithm = SIGNATURE_HASHES.get(envelope.get("SignatureVersion"))
        if algorithm is None:
            version = envelope.get("SignatureVersion")
            raise Rejected(f"unknown SignatureVersion {version!r}", status=403)
        signed = string_to_sign(envelope)
        try:
            signature = base64.b64decode(envelope.get("Signature") or "", validate=True)
        except (binascii.Error, TypeError):
            raise Rejected("the Signature is not base64", status=403) from None
        if not signature:
            raise Rejected("the SNS message is not signed", status=403)
        key = self.signing_key(pinned_url(envelope.get("SigningCertURL"), topic))
        try:
            key.verify(signature, signed, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise Rejected("the SNS signature does not match", status=403) from None

    def signing_key(self, address: str) -> rsa.RSAPublicKey:
        key = _signing_keys.get(address)
        if key is None:
            key = _signing_keys[address] = load_signing_key(self.fetch(address))
        return key

    def confirm(self, envelope: dict[str, Any]) -> Reply:
        """Visit SubscribeURL, which is how an HTTPS endpoint confirms (SNS "Confirm the
        subscription"); the URL's host is pinned like the certificate's."""
        address = pinned_url(envelope.get("SubscribeURL"), envelope["TopicArn"])
        if not self.settings["AUTO_CONFIRM"]:
            log.warning(
                "SNS subscription to %s awaits confirmation: %s", envelope["TopicArn"], address
            )
            return Reply()
        try:
            self.fetch(address)
        except requests.RequestException as error:
            log.error("confirming the SNS subscription failed: %s", error)
            return Reply(status=self.retry_status, body={"status": "error", "reason": str(error)})
        log.info("confirmed the SNS subscription to %s", envelope["TopicArn"])
        return Reply()

    def fan_out(
        self, envelope: dict[str, Any], raw_type: str, mail: dict[str, Any], reading: Reading
    ) -> list[Event]:
        """One Event per recipient, id ``<SNS MessageId>:<recipient>`` (PROVIDERS.md §0
        Fan-out); the record's own time, or the SNS Timestamp where it has none."""
        sns_id = envelope.get("MessageId")
        if not isinstance(sns_id, str) or not sns_id:
            raise Malformed("the SNS notification has no MessageId")
        stamp = reading.timestamp if reading.timestamp is not None else envelope.get("Timestamp")
        occurred_at = from_iso(stamp)
        kind = reading.type or EVENT_TYPES.get(raw_type, "unknown")
        recipients: list[tuple[str | None, str | None]] = list(reading.recipients) or [(None, None)]
        return [
            Event(
                provider=self.slug,
                provider_event_id=f"{sns_id}:{address}" if address else sns_id,
                type=kind,
                recipient=address,
                occurred_at=occurred_at,
                raw_type=raw_type,
                bounce_class=reading.bounce_class if kind == "bounced" else None,
                diagnostic=diagnostic,
                message_id=nonblank(mail.get("messageId")),
                list_ref=reading.list_ref,
                url=reading.url,
                ip=reading.ip,
                user_agent=reading.user_agent,
            )
            for address, diagnostic in recipients
        ]
