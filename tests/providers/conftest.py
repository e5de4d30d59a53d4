"""One signer per provider, for the webhook contract tests (test_contract.py); and, for the
sync tests of each provider, the account of a destination reaching its fake API.

A signer knows what the app needs to enable its provider, a documented sample with the events
it must store, a payload of an event type the provider has not documented, a body the provider
never sends, and how to sign a request exactly as the provider does: real HMAC, ECDSA and RSA
signatures with keys generated for the test session, basic auth, or a URL secret.

``request(payload, auth=...)`` signs with the configured credentials (``"good"``), with wrong
ones (``"wrong"``), or leaves them out (``"none"``). Bytes are sent as they are; anything else
is encoded as the provider encodes it. Mailgun, SES and Mandrill carry events inside their own
envelope (a signed body, an SNS message, a form field), so their ``request`` wraps the payload.

For the sync tests, ``sync_to`` points a provider's API settings at its fake
(``tests/providers/fakes/``), ``account`` builds the Account the sync job would use for a
destination, ``suppressed`` suppresses addresses as any write path does, ``synced_then_lifted``
lifts a suppression every destination accepted, ``outbox`` reads an address's outbox row and
``suppression_list`` what the suppression list holds.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from pytest_httpserver import HTTPServer
from sqlalchemy import select

from suppress import suppressions, sync
from suppress.models import Destination, Suppression, SyncState, db
from suppress.providers import PROVIDERS, ses
from suppress.providers.syncing import Account

PAYLOADS = Path(__file__).parent / "payloads"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
Auth = Literal["good", "wrong", "none"]


@dataclass(frozen=True)
class Signed:
    """A request as the provider sends it: what the test client posts."""

    headers: dict[str, str]
    body: bytes
    url: str
    content_type: str = JSON


@dataclass
class Signer:
    """Base: JSON bodies to ``/webhooks/<slug>``; subclasses add the credentials."""

    slug: str
    settings: dict[str, str]
    sample: Any
    stores: dict[str, int]  # event type -> rows the sample stores
    unknown: Any
    malformed: Any
    one_of: tuple[str, ...] = ()  # credentials of which one must be set (no single required)

    @property
    def path(self) -> str:
        return f"/webhooks/{self.slug}"

    def encode(self, payload: Any) -> bytes:
        return payload if isinstance(payload, bytes) else json.dumps(payload).encode()

    def request(self, payload: Any, auth: Auth = "good") -> Signed:
        body = self.encode(payload)
        return Signed(self.credentials(body, auth), body, self.path)

    def credentials(self, body: bytes, auth: Auth) -> dict[str, str]:
        raise NotImplementedError

    def prepare(self, app: Flask) -> None:
        """Anything the app's provider instance needs before it can verify (SES)."""


def sample(slug: str, name: str) -> Any:
    path = PAYLOADS / slug / name
    return path.read_bytes() if path.suffix == ".txt" else json.loads(path.read_text())


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def hex_hmac(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def stable_id(body: bytes) -> str:
    """An id derived from the body: the same delivery keeps it, another payload does not."""
    return "msg_" + hashlib.sha256(body).hexdigest()[:24]


@cache
def rsa_key(name: str) -> rsa.RSAPrivateKey:
    """One key per name for the whole session, so the apps built with it stay valid."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def ec_key(name: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def shown(key: Any) -> str:
    """A public key as SendGrid and older Postal show it: base64 DER, no PEM armour."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


# Basic auth (Postmark, Brevo, Mailjet, SparkPost): no signature, credentials in the URL.


USER, PASSWORD = "esp", "s3cret-Pa55"


@dataclass
class BasicAuth(Signer):
    def credentials(self, body: bytes, auth: Auth) -> dict[str, str]:
        if auth == "none":
            return {}
        return {"Authorization": basic(USER, PASSWORD if auth == "good" else "guess")}


def basic_auth_signer(slug: str, **fields: Any) -> BasicAuth:
    settings = {f"{slug.upper()}_WEBHOOK_BASIC_AUTH": f"{USER}:{PASSWORD}"}
    return BasicAuth(slug=slug, settings=settings, **fields)


# Amazon SES through SNS: RSA-signed envelopes; the certificate is served on 127.0.0.1.

TOPIC = "arn:aws:sns:eu-north-1:111122223333:ses-events"
SNS_HOST = "https://sns.eu-north-1.amazonaws.com"
# SNS signs these fields of a Notification, in this order (Subject only when present).
SNS_SIGNED = ("Message", "MessageId", "Timestamp", "TopicArn", "Type")


def certificate_pem(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class SesSigner(Signer):
    """Signs as SNS does (v2: SHA256 over ``name\\nvalue\\n``); the certificate URL is on SNS's
    host, fresh for each test, and the provider's ``fetch`` hook reads it from ``server``."""

    server: HTTPServer | None = None
    cert_url: str = field(init=False, default="")

    def __post_init__(self) -> None:
        path = f"/SimpleNotificationService-{secrets.token_hex(16)}.pem"
        self.server.expect_request(path).respond_with_data(certificate_pem(rsa_key("sns")))
        self.cert_url = SNS_HOST + path

    def prepare(self, app: Flask) -> None:
        def fetch_locally(address: str) -> bytes:
            parts = urlsplit(address)
            query = f"?{parts.query}" if parts.query else ""
            return ses.fetch(self.server.url_for(parts.path) + query)

        app.extensions["suppress.providers"]["ses"].fetch = fetch_locally

    def request(self, payload: Any, auth: Auth = "good") -> Signed:
        message = payload if isinstance(payload, str) else json.dumps(payload)
        envelope = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid5(uuid.NAMESPACE_URL, message)),
            "TopicArn": TOPIC,
            "Message": message,
            "Timestamp": "2025-03-04T09:15:05.000Z",
            "SignatureVersion": "2",
            "SigningCertURL": self.cert_url,
        }
        if auth != "none":
            signed = "".join(f"{name}\n{envelope[name]}\n" for name in SNS_SIGNED)
            key = rsa_key("sns" if auth == "good" else "intruder")
            signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
            envelope["Signature"] = base64.b64encode(signature).decode()
        headers = {
            "x-amz-sns-message-type": envelope["Type"],
            "x-amz-sns-message-id": envelope["MessageId"],
            "x-amz-sns-topic-arn": TOPIC,
        }
        body = json.dumps(envelope).encode()
        return Signed(headers, body, self.path, "text/plain; charset=UTF-8")


# SendGrid: ECDSA P-256 over the timestamp header followed by the body.


@dataclass
class SendGridSigner(Signer):
    def credentials(self, body: bytes, auth: Auth) -> dict[str, str]:
        if auth == "none":
            return {}
        stamp = str(int(time.time()))
        key = ec_key("sendgrid" if auth == "good" else "intruder")
        signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }


# Mailgun: the signature object travels in the body beside event-data.

MAILGUN_KEY = "mg-webhook-signing-key-0123456789abcdef"


@dataclass
class MailgunSigner(Signer):
    def request(self, payload: Any, auth: Auth = "good") -> Signed:
        document = {"event-data": payload}
        if auth != "none":
            stamp, token = str(int(time.time())), secrets.token_hex(25)
            key = MAILGUN_KEY if auth == "good" else "not-the-signing-key"
            signature = hex_hmac(key, (stamp + token).encode())
            document["signature"] = {"timestamp": stamp, "token": token, "signature": signature}
        return Signed({}, json.dumps(document).encode(), self.path)


# Mandrill: base64 HMAC-SHA1 over the registered URL and the sorted form fields.

MANDRILL_KEY = "mNd-webhook-key-7Hq2ZpL0"
MANDRILL_URL = "http://localhost/webhooks/mandrill"  # where the Flask test client posts


@dataclass
class MandrillSigner(Signer):
    def request(self, payload: Any, auth: Auth = "good") -> Signed:
        events = payload if isinstance(payload, str) else json.dumps(payload)
        fields = {"mandrill_events": events}
        headers = {}
        if auth != "none":
            key = MANDRILL_KEY if auth == "good" else "mNd-some-other-key"
            signed = MANDRILL_URL + "".join(name + fields[name] for name in sorted(fields))
            digest = hmac.new(key.encode(), signed.encode(), hashlib.sha1).digest()
            headers["X-Mandrill-Signature"] = base64.b64encode(digest).decode()
        return Signed(headers, urlencode(fields).encode(), self.path, FORM)


# Mailchimp: a form post; the secret is the webhook URL's ?secret=.

MAILCHIMP_SECRET = "kz3Jq8vR2mWx5Tn7"


@dataclass
class MailchimpSigner(Signer):
    def request(self, payload: Any, auth: Auth = "good") -> Signed:
        body = payload if isinstance(payload, bytes) else urlencode(payload).encode()
        secret = {"good": MAILCHIMP_SECRET, "wrong": "guess"}.get(auth)
        url = self.path if secret is None else f"{self.path}?{urlencode({'secret': secret})}"
        return Signed({}, body, url, FORM)


# Standard Webhooks (and Resend through Svix): HMAC-SHA256 over "id.timestamp.body".

STANDARD_KEY = b"standard-webhooks-test-key-32-bytes!"
RESEND_KEY = b"resend-test-signing-key!"


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


@dataclass
class StandardSigner(Signer):
    prefix: str = "webhook"
    key: bytes = STANDARD_KEY

    def credentials(self, body: bytes, auth: Auth) -> dict[str, str]:
        if auth == "none":
            return {}
        message_id, stamp = stable_id(body), str(int(time.time()))
        key = self.key if auth == "good" else b"a-key-the-receiver-never-saw"
        content = f"{message_id}.{stamp}.".encode() + body
        digest = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        return {
            f"{self.prefix}-id": message_id,
            f"{self.prefix}-timestamp": stamp,
            f"{self.prefix}-signature": f"v1,{digest}",
        }


# MailerSend: hex HMAC-SHA256 of the body in the Signature header.

MAILERSEND_SECRET = "Xq7mTt2LrV9cKd4NwZp1sHy6EbGf3Ju8"


@dataclass
class MailerSendSigner(Signer):
    def credentials(self, body: bytes, auth: Auth) -> dict[str, str]:
        if auth == "none":
            return {}
        secret = MAILERSEND_SECRET if auth == "good" else "not-the-webhook-secret"
        return {"Signature": hex_hmac(secret, body)}


# Postal: RSA PKCS#1 v1.5 over the body, SHA-256 and the legacy SHA-1.


@dataclass
class PostalSigner(Signer):
    def credentials(self, body: bytes, auth: Auth) -> dict[str, str]:
        if auth == "none":
            return {}
        key = rsa_key("postal" if auth == "good" else "intruder")

        def sign(algorithm: hashes.HashAlgorithm) -> str:
            return base64.b64encode(key.sign(body, padding.PKCS1v15(), algorithm)).decode()

        return {
            "X-Postal-Signature-256": sign(hashes.SHA256()),
            "X-Postal-Signature": sign(hashes.SHA1()),
        }


RECIPIENT = "aino.virtanen@example.fi"


def build_signer(slug: str, request: pytest.FixtureRequest) -> Signer:
    """The signer of ``slug``; SES also serves its certificate from pytest-httpserver."""
    builders: dict[str, Callable[[], Signer]] = {
        "ses": lambda: SesSigner(
            slug="ses",
            settings={"SES_TOPIC_ARNS": TOPIC},
            sample=sample("ses", "delivery.json"),
            stores={"delivered": 1},
            unknown=sample("ses", "unknown-type.json"),
            malformed="Amazon SES sends JSON records, and this is not one",
            server=request.getfixturevalue("httpserver"),
        ),
        "sendgrid": lambda: SendGridSigner(
            slug="sendgrid",
            settings={"SENDGRID_WEBHOOK_VERIFICATION_KEY": shown(ec_key("sendgrid"))},
            sample=sample("sendgrid", "batch.json"),
            stores={
                "sent": 1,
                "deferred": 1,
                "delivered": 1,
                "bounced": 2,
                "dropped": 1,
                "opened": 2,
                "clicked": 1,
                "complained": 1,
                "unsubscribed": 2,
                "resubscribed": 1,
            },
            unknown=[
                {
                    "email": RECIPIENT,
                    "timestamp": 1767261600,
                    "event": "teleport",
                    "sg_event_id": "dGVsZXBvcnQtMDAx",
                    "sg_message_id": "k3Jd8s0aQeWq.recvd-1.0",
                }
            ],
            malformed={"event": "delivered", "email": RECIPIENT},  # one object, not the array
        ),
        "mailgun": lambda: MailgunSigner(
            slug="mailgun",
            settings={"MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY},
            sample=sample("mailgun", "delivered.json"),
            stores={"delivered": 1},
            unknown={
                "id": "dGVsZXBvcnRlZC0wMDE",
                "timestamp": 1767261600.5,
                "event": "teleported",
                "recipient": RECIPIENT,
            },
            malformed="delivered",  # event-data is an object
        ),
        "postmark": lambda: basic_auth_signer(
            "postmark",
            sample=sample("postmark", "delivery.json"),
            stores={"delivered": 1},
            unknown={
                "RecordType": "Teleport",
                "Recipient": RECIPIENT,
                "ReceivedAt": "2024-03-05T16:40:00Z",
                "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            },
            malformed=b"[]",  # one JSON object per POST
            one_of=("WEBHOOK_BASIC_AUTH", "WEBHOOK_HEADER"),
        ),
        "brevo": lambda: basic_auth_signer(
            "brevo",
            sample=sample("brevo", "hard_bounce.json"),
            stores={"bounced": 1},
            unknown={
                "event": "teleport",
                "email": RECIPIENT,
                "ts_epoch": 1709656090123,
                "message-id": "<202403051628.1234567890@smtp-relay.mailin.fr>",
            },
            malformed=b"event=hard_bounce&email=gone%40example.org",
            one_of=("WEBHOOK_BASIC_AUTH", "WEBHOOK_BEARER_TOKEN"),
        ),
        "mailjet": lambda: basic_auth_signer(
            "mailjet",
            sample=sample("mailjet", "bounce.json"),
            stores={"bounced": 1},
            unknown={
                "event": "teleport",
                "time": 1709656090,
                "email": RECIPIENT,
                "MessageID": 13792286917004336,
            },
            malformed=b"<event>bounce</event>",
        ),
        "sparkpost": lambda: basic_auth_signer(
            "sparkpost",
            sample=sample("sparkpost", "batch.json"),
            stores={
                "sent": 1,
                "delivered": 1,
                "bounced": 1,
                "opened": 1,
                "clicked": 1,
                "unsubscribed": 1,
                "complained": 1,
            },
            unknown=[
                {
                    "msys": {
                        "message_event": {
                            "type": "teleport",
                            "event_id": "84500000000000777",
                            "timestamp": "1741079702",
                            "rcpt_to": RECIPIENT,
                        }
                    }
                }
            ],
            malformed={"msys": {"message_event": {"type": "delivery"}}},  # not in an array
        ),
        "mandrill": lambda: MandrillSigner(
            slug="mandrill",
            settings={"MANDRILL_WEBHOOK_KEY": MANDRILL_KEY, "MANDRILL_WEBHOOK_URL": MANDRILL_URL},
            sample=sample("mandrill", "events.json"),
            stores={
                "sent": 1,
                "deferred": 1,
                "delivered": 1,
                "bounced": 2,
                "opened": 1,
                "clicked": 1,
                "complained": 1,
                "unsubscribed": 1,
                "dropped": 1,
            },
            unknown=[
                {
                    "event": "teleport",
                    "_id": "6f1e2a9c4b8d4e0f9a7b3c5d2e1f0a9b",
                    "ts": 1767261700,
                    "msg": {"_id": "6f1e2a9c4b8d4e0f9a7b3c5d2e1f0a9b", "email": RECIPIENT},
                }
            ],
            malformed="[{not json",  # mandrill_events holds a JSON array
        ),
        "mailchimp": lambda: MailchimpSigner(
            slug="mailchimp",
            settings={"MAILCHIMP_WEBHOOK_SECRET": MAILCHIMP_SECRET},
            sample=sample("mailchimp", "unsubscribe.txt"),
            stores={"unsubscribed": 1},
            unknown={
                "type": "teleport",
                "fired_at": "2026-03-09 21:40:57",
                "data[email]": RECIPIENT,
                "data[list_id]": "a6b5da1054",
            },
            malformed=b"data%5Bemail%5D=ada%40example.com",  # no type, no fired_at
        ),
        "resend": lambda: StandardSigner(
            slug="resend",
            settings={"RESEND_WEBHOOK_SECRET": whsec(RESEND_KEY)},
            sample=sample("resend", "email.bounced.json"),
            stores={"bounced": 1},
            unknown={
                "type": "email.teleported",
                "created_at": "2026-02-22T23:41:12.126Z",
                "data": {"email_id": "56761188-7520-42d8-8898-ff6fc54ce618", "to": [RECIPIENT]},
            },
            malformed={"type": "email.bounced", "created_at": "2026-02-22T23:41:12.126Z"},
            prefix="svix",
            key=RESEND_KEY,
        ),
        "mailersend": lambda: MailerSendSigner(
            slug="mailersend",
            settings={"MAILERSEND_WEBHOOK_SECRET": MAILERSEND_SECRET},
            sample=sample("mailersend", "activity.delivered.json"),
            stores={"delivered": 1},
            unknown={
                "type": "activity.teleported",
                "created_at": "2026-03-05T21:23:58.000000Z",
                "data": {"id": "6892766a5b66e2daf3dc9777", "recipient": RECIPIENT},
            },
            malformed=b"not json",
        ),
        "postal": lambda: PostalSigner(
            slug="postal",
            settings={"POSTAL_WEBHOOK_PUBLIC_KEY": shown(rsa_key("postal"))},
            sample=sample("postal", "message-bounced.json"),
            stores={"bounced": 1},
            unknown={
                "event": "MessageTeleported",
                "timestamp": 1741079702.61,
                "uuid": "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
                "payload": {"message": {"direction": "outgoing", "to": RECIPIENT}},
            },
            malformed=b"not json",
        ),
        "standard": lambda: StandardSigner(
            slug="standard",
            settings={
                "STANDARD_WEBHOOK_SECRET": whsec(STANDARD_KEY),
                "STANDARD_EVENT_MAP": "email.bounced=bounced,email.sent=sent",
            },
            sample=sample("standard", "email.bounced.json"),
            stores={"bounced": 1},
            unknown={
                "type": "email.teleported",
                "timestamp": "2026-03-02T10:15:30Z",
                "data": {"email": RECIPIENT},
            },
            malformed=[{"type": "email.bounced"}],  # one object with a type
        ),
    }
    assert set(builders) == set(PROVIDERS), "every registered provider needs a signer"
    return builders[slug]()


@pytest.fixture(params=list(PROVIDERS))
def signer(request: pytest.FixtureRequest) -> Signer:
    """Each registered provider's signer in turn; the test ids are the provider slugs."""
    return build_signer(request.param, request)


# Sync


@pytest.fixture
def sync_to(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Point a provider's API settings at a fake API, with retries that do not wait."""

    def point(slug: str, fake: Any, **settings: str) -> None:
        for key, value in {"API_URL": fake.url, **settings}.items():
            monkeypatch.setitem(app.config, f"{slug.upper()}_{key}", value)
        monkeypatch.setitem(app.config, "SYNC_RETRIES", 2)
        monkeypatch.setattr("suppress.providers.api.BACKOFF_SECONDS", 0)

    return point


@contextmanager
def closing_accounts() -> Iterator[Callable[[Destination, Mapping[str, Any]], Account]]:
    """Accounts built as the sync job builds them, each API client closed at the end."""
    opened: list[Account] = []

    def build(destination: Destination, config: Mapping[str, Any]) -> Account:
        opened.append(sync.account_for(destination, config))
        return opened[-1]

    yield build
    for made in opened:
        made.api.close()


@pytest.fixture
def account(app: Flask) -> Iterator[Callable[..., Account]]:
    """The Account the sync job builds for a destination (one not stored)."""
    with closing_accounts() as build:

        def of(provider: str, *, target: str | None = None, list_slug: str | None = None):
            named = Destination(name="test", provider=provider, target=target, list_slug=list_slug)
            return build(named, app.config)

        yield of


@pytest.fixture
def suppressed(app: Flask) -> Callable[..., None]:
    def suppress(*addresses: str, reason: str = "unsubscribed", scope: str = "global") -> None:
        for address in addresses:
            suppressions.suppress(address, reason=reason, scope=scope, source="test", actor="test")
        db.session.commit()

    return suppress


@pytest.fixture
def synced_then_lifted(suppressed: Callable[..., None]) -> Callable[[str], None]:
    def lift(address: str) -> None:
        suppressed(address)
        sync.run()
        suppressions.lift(address, actor="test")
        db.session.commit()

    return lift


@pytest.fixture
def outbox(app: Flask) -> Callable[[str], SyncState | None]:
    def row(address: str) -> SyncState | None:
        return db.session.scalar(select(SyncState).where(SyncState.email == address))

    return row


@pytest.fixture
def suppression_list(app: Flask) -> Callable[[], set[tuple[str | None, str, str]]]:
    def held() -> set[tuple[str | None, str, str]]:
        rows = db.session.scalars(select(Suppression))
        return {(row.email, row.scope, row.reason) for row in rows}

    return held


@pytest.fixture
def account_of() -> Iterator[Callable[..., Account]]:
    """``account_of(slug, url, target, list_slug, api_key=...)``: the account of an
    unsaved destination reaching a fake API at ``url``, without retries."""
    with closing_accounts() as build:

        def of(
            slug: str,
            url: str,
            target: str | None = None,
            list_slug: str | None = None,
            *,
            api_key: str,
        ) -> Account:
            prefix = slug.upper()
            config = {
                f"{prefix}_API_KEY": api_key,
                f"{prefix}_API_URL": url,
                "SYNC_TIMEOUT": 5,
                "SYNC_RETRIES": 0,
            }
            destination = Destination(
                name=f"{slug}-fi", provider=slug, target=target, list_slug=list_slug
            )
            return build(destination, config)

        yield of
