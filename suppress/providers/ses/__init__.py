"""Amazon SES: event notifications delivered by Amazon SNS over HTTPS, and the SES API v2.

Owns the provider: verifying the SNS envelope (signature v1/v2, the signing certificate pinned
to SNS's own host in the topic's region, the topic allow-list, optional basic auth), the
subscription handshake, and one Event per recipient of each SES record. ``sns`` reads the
envelope, ``records`` the SES record inside it, and ``suppression_list`` makes the sync job's
calls to the account-level suppression list and the optional contact list (PROVIDERS.md § ses,
"Suppression API"). It stores nothing and decides nothing: ``events.py`` says what the events
mean.
"""

import base64
import binascii
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from suppress.config import Setting, text
from suppress.providers.api import Api
from suppress.providers.base import Provider
from suppress.providers.credentials import check_basic_auth
from suppress.providers.delivery import Delivery, Event, Malformed, Rejected, Reply
from suppress.providers.fields import from_iso, nonblank
from suppress.providers.ses.records import (
    EVENT_TYPES,
    READERS,
    Reading,
    load_record,
    read_unlisted,
    section,
    sender,
)
from suppress.providers.ses.sns import (
    HEADER_FIELDS,
    SIGNATURE_HASHES,
    TOPIC_HEADER,
    fetch,
    is_validation_notice,
    load_envelope,
    load_signing_key,
    pinned_url,
    string_to_sign,
    topic_arns,
)
from suppress.providers.ses.suppression_list import (
    CHANGES_PER_BATCH,
    SIGNING_SERVICE,
    aws_region,
    pull_contacts,
    pull_suppressed,
    push_one,
)
from suppress.providers.settings import REQUIRED, credentials_list, flag, url
from suppress.providers.sigv4 import SigV4
from suppress.providers.syncing import Account, Change, Outcome, Pulled

log = logging.getLogger(__name__)
REALM = "suppress ses"

# Signing keys by certificate URL, for the life of the process (PROVIDERS.md §0 Verification).
_signing_keys: dict[str, rsa.RSAPublicKey] = {}


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
    }
    API_SETTINGS: ClassVar[dict[str, Setting]] = {
        "REGION": Setting(REQUIRED, aws_region, "AWS region whose SES account list is synced."),
        "ACCESS_KEY_ID": Setting(REQUIRED, text, "AWS access key id; required to sync."),
        "SECRET_ACCESS_KEY": Setting(REQUIRED, text, "AWS secret access key; required to sync."),
        "API_URL": Setting(
            None, url, "SES API v2 base URL; default `https://email.<region>.amazonaws.com`."
        ),
        "CONTACT_LIST": Setting(
            None,
            text,
            "SES contact list that records unsubscribes, when a destination names none; "
            "without one, only bounces and complaints are synced.",
        ),
    }
    # One call per address (PutSuppressedDestination takes one), so a batch is only how many
    # changes are settled per transaction.
    PUSH_BATCH = CHANGES_PER_BATCH
    CAN_LIFT = True
    # The account-level list is one per region; a destination's target is an optional contact
    # list, hence no TARGET that would make it required.
    TARGET_SETTING = "CONTACT_LIST"

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

    @classmethod
    def api(cls, settings: Mapping[str, Any], **options: Any) -> Api:
        """Calls signed with SigV4 ("Signing AWS API requests") by the given access key."""
        region = settings["REGION"]
        auth = SigV4(
            settings["ACCESS_KEY_ID"], settings["SECRET_ACCESS_KEY"], region, SIGNING_SERVICE
        )
        base = settings["API_URL"] or f"https://email.{region}.amazonaws.com"
        return Api(base, auth=auth, **options)

    @classmethod
    def push(cls, account: Account, changes: list[Change]) -> list[Outcome]:
        """One call per change: bounces and complaints to the account-level list, the rest to
        the contact list when the destination has one, refused when it has none."""
        return [push_one(account, change) for change in changes]

    @classmethod
    def pull(cls, account: Account, since: datetime | None) -> Iterator[Pulled]:
        """The account-level list (added after ``since``, where given), then every contact of
        the contact list who unsubscribed; ListContacts has no date filter."""
        yield from pull_suppressed(account, since)
        if account.target:
            yield from pull_contacts(account)

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
        from_address = sender(mail)
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
                sender=from_address,
            )
            for address, diagnostic in recipients
        ]
