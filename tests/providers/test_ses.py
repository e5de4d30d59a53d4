"""Amazon SES through SNS: signed envelopes in, one Event per recipient out.

Messages are signed for real with a generated RSA key whose self-signed certificate is served by
pytest-httpserver on 127.0.0.1; the provider's ``fetch`` is aimed there only after the URL it was
given has passed the production host check.
"""

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer
from sqlalchemy import select
from werkzeug.datastructures import Headers

from suppress import suppressions, sync
from suppress.config import ConfigError
from suppress.models import Suppression, db
from suppress.providers import ses
from suppress.providers.api import ApiError
from suppress.providers.delivery import Delivery, Malformed, Rejected, Reply
from suppress.providers.ses import Ses
from suppress.providers.syncing import Account, Change
from tests.providers.fakes.ses import FakeSes

PAYLOADS = Path(__file__).parent / "payloads" / "ses"
TOPIC = "arn:aws:sns:eu-north-1:111122223333:ses-events"
SNS_HOST = "https://sns.eu-north-1.amazonaws.com"
SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
SIGNED["UnsubscribeConfirmation"] = SIGNED["SubscriptionConfirmation"]


def certificate_pem(key: rsa.RSAPrivateKey, *, expired: bool = False) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now - timedelta(days=1) if expired else now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def sign(envelope: dict[str, Any], key: rsa.RSAPrivateKey) -> dict[str, Any]:
    """Sign as SNS does: ``name\\nvalue\\n`` per present field, SHA1 for v1, SHA256 for v2."""
    signed = "".join(
        f"{name}\n{envelope[name]}\n" for name in SIGNED[envelope["Type"]] if name in envelope
    )
    algorithm = hashes.SHA1() if envelope["SignatureVersion"] == "1" else hashes.SHA256()
    signature = key.sign(signed.encode(), padding.PKCS1v15(), algorithm)
    return {**envelope, "Signature": base64.b64encode(signature).decode()}


@dataclass
class Sns:
    """Builds messages as the topic would send them, signed with ``key`` and pointing at the
    certificate the test server holds at ``cert_url``'s path."""

    key: rsa.RSAPrivateKey
    cert_url: str

    def envelope(self, kind: str, message: str, **fields: Any) -> dict[str, Any]:
        envelope = {
            "Type": kind,
            "MessageId": f"sns-{secrets.token_hex(8)}",
            "TopicArn": TOPIC,
            "Message": message,
            "Timestamp": "2025-03-04T09:15:05.000Z",
            "SignatureVersion": "2",
            "SigningCertURL": self.cert_url,
        }
        return {**envelope, **fields}

    def notification(self, record: dict[str, Any] | str, **fields: Any) -> dict[str, Any]:
        message = record if isinstance(record, str) else json.dumps(record)
        return sign(self.envelope("Notification", message, **fields), self.key)

    def confirmation(self, kind: str = "SubscriptionConfirmation", **fields: Any) -> dict:
        query = urlencode({"Action": "ConfirmSubscription", "TopicArn": TOPIC, "Token": "t0ken"})
        extra = {"Token": "t0ken", "SubscribeURL": f"{SNS_HOST}/?{query}", **fields}
        return sign(self.envelope(kind, "You have chosen to subscribe ...", **extra), self.key)


def record(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def delivery(envelope: dict[str, Any], **headers: str) -> Delivery:
    sns_headers = {
        "x-amz-sns-message-type": envelope.get("Type", ""),
        "x-amz-sns-message-id": envelope.get("MessageId", ""),
        "x-amz-sns-topic-arn": envelope.get("TopicArn", ""),
        "Content-Type": "text/plain; charset=UTF-8",
    }
    return Delivery(
        method="POST",
        url="https://suppress.example.fi/webhooks/ses",
        headers=Headers({**sns_headers, **headers}),
        body=json.dumps(envelope).encode(),
    )


def raw(body: bytes) -> Delivery:
    return Delivery("POST", "https://suppress.example.fi/webhooks/ses", Headers(), body)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def serve_certificate(httpserver: HTTPServer, pem: bytes) -> str:
    """A fresh certificate URL on SNS's host, served locally (the key cache is per URL)."""
    path = f"/SimpleNotificationService-{secrets.token_hex(16)}.pem"
    httpserver.expect_request(path).respond_with_data(pem, content_type="application/x-pem-file")
    return SNS_HOST + path


@pytest.fixture
def sns(httpserver: HTTPServer, signing_key: rsa.RSAPrivateKey) -> Sns:
    return Sns(signing_key, serve_certificate(httpserver, certificate_pem(signing_key)))


def make_provider(httpserver: HTTPServer, **settings: str) -> Ses:
    provider = Ses({"SES_TOPIC_ARNS": TOPIC, **settings})

    def fetch_locally(address: str) -> bytes:
        parts = urlsplit(address)
        return ses.fetch(
            httpserver.url_for(parts.path) + (f"?{parts.query}" if parts.query else "")
        )

    provider.fetch = fetch_locally
    return provider


@pytest.fixture
def provider(httpserver: HTTPServer) -> Ses:
    return make_provider(httpserver)


def answered(reply: Reply | None) -> int:
    assert reply is not None, "expected a handshake reply"
    return reply.status


def never_fetch(address: str) -> bytes:
    raise AssertionError(f"fetched {address} although it should have been refused first")


def requests_to(httpserver: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in httpserver.log if request.path == path)


# Verification


def test_signed_bounce_verifies_and_fans_out_one_event_per_recipient(provider, sns):
    envelope = sns.notification(record("bounce-permanent"))
    provider.verify(delivery(envelope))
    events = provider.parse(delivery(envelope))
    assert [e.recipient for e in events] == ["Maija.Meikalainen@example.com", "erik@example.se"]
    assert [e.provider_event_id for e in events] == [
        f"{envelope['MessageId']}:Maija.Meikalainen@example.com",
        f"{envelope['MessageId']}:erik@example.se",
    ]
    assert {(e.type, e.bounce_class, e.raw_type) for e in events} == {("bounced", "hard", "Bounce")}
    assert events[0].occurred_at == datetime(2025, 3, 4, 9, 15, 3, 250000, tzinfo=UTC)
    assert events[0].diagnostic == "smtp; 550 5.1.1 user unknown"
    assert events[1].diagnostic == "5.1.1"
    assert events[0].message_id == "0100018f-ses-message-0001"


def test_signature_version_1_is_sha1_and_verifies(provider, sns):
    envelope = sign({**sns.notification(record("delivery")), "SignatureVersion": "1"}, sns.key)
    provider.verify(delivery(envelope))


def test_subject_when_present_is_signed(provider, sns):
    envelope = sns.notification(record("delivery"), Subject="Amazon SES Email Event Notification")
    provider.verify(delivery(envelope))
    tampered = {**envelope, "Subject": "Something else"}
    with pytest.raises(Rejected):
        provider.verify(delivery(tampered))


def test_missing_signature_is_rejected(provider, sns):
    envelope = sns.notification(record("delivery"))
    del envelope["Signature"]
    with pytest.raises(Rejected) as refused:
        provider.verify(delivery(envelope))
    assert refused.value.status == 403


def test_signature_by_another_key_is_rejected(provider, sns, other_key):
    envelope = sign(sns.notification(record("delivery")), other_key)
    with pytest.raises(Rejected) as refused:
        provider.verify(delivery(envelope))
    assert refused.value.status == 403


def test_tampered_message_is_rejected(provider, sns):
    envelope = sns.notification(record("bounce-permanent"))
    tampered = {**envelope, "Message": envelope["Message"].replace("Permanent", "Transient")}
    with pytest.raises(Rejected):
        provider.verify(delivery(tampered))


def test_signature_that_is_not_base64_is_rejected(provider, sns):
    envelope = {**sns.notification(record("delivery")), "Signature": "not base64!"}
    with pytest.raises(Rejected):
        provider.verify(delivery(envelope))


@pytest.mark.parametrize("version", ["3", None, 2])
def test_unknown_signature_version_is_rejected(provider, sns, version):
    envelope = {**sns.notification(record("delivery")), "SignatureVersion": version}
    with pytest.raises(Rejected, match="SignatureVersion"):
        provider.verify(delivery(envelope))


def test_body_that_is_not_an_sns_message_is_rejected(provider):
    with pytest.raises(Rejected):
        provider.verify(raw(b"<xml/>"))


def test_topic_outside_the_allow_list_is_rejected_before_any_fetch(provider, sns):
    """AWS: a valid SNS signature proves only that some topic sent it; ours must be listed."""
    other_topic = "arn:aws:sns:eu-north-1:999988887777:someone-else"
    envelope = sign({**sns.notification(record("delivery")), "TopicArn": other_topic}, sns.key)
    provider.fetch = never_fetch
    with pytest.raises(Rejected, match="topic"):
        provider.verify(delivery(envelope))


@pytest.mark.parametrize(
    "cert_url",
    [
        "http://sns.eu-north-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.eu-north-1.amazonaws.com.attacker.example/SimpleNotificationService-abc.pem",
        "https://sns.eu-north-1.amazonaws.com@attacker.example/SimpleNotificationService-abc.pem",
        "https://sns.eu-north-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
        "https://attacker.example/sns.eu-north-1.amazonaws.com/cert.pem",
        "https://[not-a-host/cert.pem",
        None,
    ],
)
def test_certificate_url_must_be_sns_in_the_topics_region(provider, sns, cert_url):
    envelope = sign({**sns.notification(record("delivery")), "SigningCertURL": cert_url}, sns.key)
    provider.fetch = never_fetch
    with pytest.raises(Rejected) as refused:
        provider.verify(delivery(envelope))
    assert refused.value.status == 403


@pytest.mark.parametrize(
    ("topic", "host"),
    [
        ("arn:aws:sns:us-east-1:111122223333:t", "sns.us-east-1.amazonaws.com"),
        ("arn:aws-cn:sns:cn-north-1:111122223333:t", "sns.cn-north-1.amazonaws.com.cn"),
        ("arn:aws-us-gov:sns:us-gov-west-1:111122223333:t", "sns.us-gov-west-1.amazonaws.com"),
    ],
)
def test_certificate_host_follows_the_topics_partition_and_region(topic, host):
    address = f"https://{host}/SimpleNotificationService-abc.pem"
    assert ses.pinned_url(address, topic) == address
    with pytest.raises(Rejected):
        ses.pinned_url(address.replace(".amazonaws.com", ".amazonaws.net"), topic)


def test_expired_certificate_is_rejected(httpserver, provider, signing_key):
    expired = Sns(
        signing_key, serve_certificate(httpserver, certificate_pem(signing_key, expired=True))
    )
    with pytest.raises(Rejected, match="not valid now"):
        provider.verify(delivery(expired.notification(record("delivery"))))


def test_certificate_url_that_is_not_a_certificate_is_rejected(httpserver, provider, signing_key):
    bogus = Sns(signing_key, serve_certificate(httpserver, b"<html>hello</html>"))
    with pytest.raises(Rejected, match="PEM"):
        provider.verify(delivery(bogus.notification(record("delivery"))))


def test_certificate_without_an_rsa_key_is_rejected(httpserver, provider, signing_key):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ec_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(ec_key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    elliptic = Sns(signing_key, serve_certificate(httpserver, pem))
    with pytest.raises(Rejected, match="RSA"):
        provider.verify(delivery(elliptic.notification(record("delivery"))))


@pytest.mark.parametrize(
    "change",
    [{"Type": "Teleport"}, {"Timestamp": None}, {"Message": {"not": "a string"}}],
)
def test_message_missing_a_signed_field_is_rejected(provider, sns, change):
    envelope = {**sns.notification(record("delivery")), **change}
    with pytest.raises(Rejected):
        provider.verify(delivery(envelope, **{"x-amz-sns-message-type": str(envelope["Type"])}))


def test_certificate_is_fetched_once_per_url(httpserver, provider, sns):
    provider.verify(delivery(sns.notification(record("delivery"))))
    provider.verify(delivery(sns.notification(record("open"))))
    assert requests_to(httpserver, urlsplit(sns.cert_url).path) == 1


@pytest.mark.parametrize(
    "header", ["x-amz-sns-message-type", "x-amz-sns-message-id", "x-amz-sns-topic-arn"]
)
def test_headers_disagreeing_with_the_signed_body_are_rejected(provider, sns, header):
    envelope = sns.notification(record("delivery"))
    with pytest.raises(Rejected, match=header):
        provider.verify(delivery(envelope, **{header: "SubscriptionConfirmation"}))


def test_missing_message_type_header_is_rejected(provider, sns):
    envelope = sns.notification(record("delivery"))
    forged = delivery(envelope)
    forged.headers.remove("x-amz-sns-message-type")
    with pytest.raises(Rejected):
        provider.verify(forged)


# Basic auth


@pytest.fixture
def guarded(httpserver) -> Ses:
    return make_provider(httpserver, SES_WEBHOOK_BASIC_AUTH="sns:old-secret,sns:new-secret")


def test_request_without_credentials_gets_a_basic_challenge(guarded, sns):
    """SNS sends the URL's credentials only after a 401 carrying WWW-Authenticate: Basic."""
    with pytest.raises(Rejected) as refused:
        guarded.verify(delivery(sns.notification(record("delivery"))))
    assert refused.value.status == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Basic ")


def test_wrong_credentials_are_rejected(guarded, sns):
    envelope = sns.notification(record("delivery"))
    with pytest.raises(Rejected) as refused:
        guarded.verify(delivery(envelope, Authorization=basic("sns", "guess")))
    assert refused.value.status == 401


@pytest.mark.parametrize("password", ["old-secret", "new-secret"])
def test_either_rotated_credential_is_accepted(guarded, sns, password):
    envelope = sns.notification(record("delivery"))
    guarded.verify(delivery(envelope, Authorization=basic("sns", password)))


def test_credentials_do_not_replace_the_signature(guarded, sns, other_key):
    envelope = sign(sns.notification(record("delivery")), other_key)
    with pytest.raises(Rejected, match="signature"):
        guarded.verify(delivery(envelope, Authorization=basic("sns", "new-secret")))


# Handshakes


def confirm_endpoint(httpserver: HTTPServer, status: int = 200) -> None:
    query = {"Action": "ConfirmSubscription", "TopicArn": TOPIC, "Token": "t0ken"}
    httpserver.expect_request("/", query_string=query).respond_with_data(
        "<ConfirmSubscriptionResponse/>", status=status
    )


def test_subscription_confirmation_is_verified_and_confirmed(httpserver, provider, sns):
    confirm_endpoint(httpserver)
    envelope = sns.confirmation()
    provider.verify(delivery(envelope))
    assert answered(provider.handshake(delivery(envelope))) == 200
    assert requests_to(httpserver, "/") == 1
    assert provider.parse(delivery(envelope)) == []


def test_without_auto_confirm_the_subscription_is_left_for_the_operator(httpserver, sns, caplog):
    provider = make_provider(httpserver, SES_AUTO_CONFIRM="false")
    assert answered(provider.handshake(delivery(sns.confirmation()))) == 200
    assert requests_to(httpserver, "/") == 0
    assert "Token=t0ken" in caplog.text


def test_failed_confirmation_asks_sns_to_try_again(httpserver, provider, sns):
    confirm_endpoint(httpserver, status=500)
    assert answered(provider.handshake(delivery(sns.confirmation()))) == provider.retry_status


def test_subscribe_url_outside_sns_is_never_visited(provider, sns):
    envelope = sns.confirmation(SubscribeURL="https://attacker.example/?Token=t0ken")
    provider.fetch = never_fetch
    with pytest.raises(Rejected):
        provider.handshake(delivery(envelope))


def test_unsubscribe_confirmation_is_acknowledged(provider, sns):
    envelope = sns.confirmation("UnsubscribeConfirmation")
    provider.verify(delivery(envelope))
    assert answered(provider.handshake(delivery(envelope))) == 200


def test_ses_topic_validation_notice_is_acknowledged(provider, sns):
    envelope = sns.notification("Successfully validated SNS topic for Amazon SES event publishing.")
    provider.verify(delivery(envelope))
    assert answered(provider.handshake(delivery(envelope))) == 200


def test_event_notification_is_no_handshake(provider, sns):
    assert provider.handshake(delivery(sns.notification(record("delivery")))) is None


# Parsing


@pytest.mark.parametrize(
    ("name", "type_", "bounce_class"),
    [
        ("send", "sent", None),
        ("delivery", "delivered", None),
        ("delivery-delay", "deferred", None),
        ("bounce-permanent", "bounced", "hard"),
        ("bounce-transient", "bounced", "soft"),
        ("bounce-undetermined", "bounced", "soft"),
        ("bounce-suppressed", "dropped", None),
        ("complaint", "complained", None),
        ("complaint-on-suppression-list", "dropped", None),
        ("reject", "dropped", None),
        ("open", "opened", None),
        ("click", "clicked", None),
        ("rendering-failure", "unknown", None),
        ("subscription-unsubscribe", "unsubscribed", None),
        ("subscription-resubscribe", "resubscribed", None),
        ("identity-bounce", "bounced", "hard"),
        ("unknown-type", "unknown", None),
    ],
)
def test_every_ses_event_type_maps_as_documented(provider, sns, name, type_, bounce_class):
    events = provider.parse(delivery(sns.notification(record(name))))
    assert events
    assert {(e.type, e.bounce_class) for e in events} == {(type_, bounce_class)}


def test_table_covers_every_type_ses_documents():
    documented = {"Send", "Delivery", "DeliveryDelay", "Bounce", "Complaint", "Reject", "Open"}
    documented |= {"Click", "Rendering Failure", "Subscription"}
    assert set(ses.EVENT_TYPES) == documented == set(ses.READERS)


def test_delivery_keeps_the_smtp_reply_and_its_own_time(provider, sns):
    [event] = provider.parse(delivery(sns.notification(record("delivery"))))
    assert event.diagnostic == "250 2.6.0 Message received"
    assert event.occurred_at == datetime(2025, 3, 4, 9, 15, 2, 480000, tzinfo=UTC)


def test_delay_keeps_the_receivers_diagnostic(provider, sns):
    [event] = provider.parse(delivery(sns.notification(record("delivery-delay"))))
    assert event.diagnostic == "smtp; 452 4.2.2 Mailbox full"


def test_complaint_keeps_the_feedback_type(provider, sns):
    [event] = provider.parse(delivery(sns.notification(record("complaint"))))
    assert (event.type, event.diagnostic) == ("complained", "abuse")


@pytest.mark.parametrize("name", ["delivery", "complaint"])
def test_delivery_and_complaint_name_the_from_header_as_sender(provider, sns, name):
    """R-MBP-4: complaint rates are counted per sending domain."""
    [event] = provider.parse(delivery(sns.notification(record(name))))
    assert event.sender == "Uutiskirje <news@example.fi>"


@pytest.mark.parametrize(
    ("mail", "sender"),
    [
        ({"commonHeaders": {"to": ["erik@example.se"]}}, "bounces@example.fi"),
        ({"commonHeaders": {"from": []}}, "bounces@example.fi"),
        ({"commonHeaders": "odd"}, "bounces@example.fi"),
        ({"commonHeaders": {"from": [42]}, "source": None}, None),
        ({"commonHeaders": {"from": {"address": "x@example.fi"}}, "source": 7}, None),
    ],
)
def test_sender_falls_back_to_the_envelope_and_never_fails(provider, sns, mail, sender):
    document = record("delivery")
    document["mail"] = {**document["mail"], "source": "bounces@example.fi", **mail}
    [event] = provider.parse(delivery(sns.notification(document)))
    assert event.sender == sender


def test_open_applies_to_every_recipient_with_ip_and_user_agent(provider, sns):
    """SES does not say which recipient opened: every mail.destination gets the open."""
    events = provider.parse(delivery(sns.notification(record("open"))))
    assert [e.recipient for e in events] == ["Maija.Meikalainen@example.com", "erik@example.se"]
    assert {e.ip for e in events} == {"198.51.100.7"}
    assert all(e.user_agent.startswith("Mozilla/5.0 (iPhone") for e in events)
    assert {e.machine for e in events} == {None}


def test_click_keeps_the_link(provider, sns):
    [event] = provider.parse(delivery(sns.notification(record("click"))))
    assert event.url == "https://example.fi/uutiset/maaliskuu"
    assert event.occurred_at == datetime(2025, 3, 4, 10, 3, 40, tzinfo=UTC)


def test_reject_without_a_time_of_its_own_takes_the_sns_timestamp(provider, sns):
    [event] = provider.parse(delivery(sns.notification(record("reject"))))
    assert event.occurred_at == datetime(2025, 3, 4, 9, 15, 5, tzinfo=UTC)
    assert event.diagnostic == "Bad content"


def test_subscription_names_the_contact_list(provider, sns):
    [event] = provider.parse(delivery(sns.notification(record("subscription-unsubscribe"))))
    assert (event.type, event.list_ref, event.list_slug) == ("unsubscribed", "uutiskirje", None)


@pytest.mark.parametrize(
    "subscription",
    [
        {"contactList": "uutiskirje", "timestamp": "2025-03-06T11:00:00.000Z"},
        {
            "timestamp": "2025-03-06T11:00:00.000Z",
            "newTopicPreferences": {"unsubscribeAll": False, "topicSubscriptionStatus": "?"},
            "oldTopicPreferences": {"unsubscribeAll": False},
        },
    ],
)
def test_subscription_that_changes_nothing_we_track_is_unknown(provider, sns, subscription):
    document = {**record("subscription-unsubscribe"), "subscription": subscription}
    [event] = provider.parse(delivery(sns.notification(document)))
    assert (event.type, event.raw_type) == ("unknown", "Subscription")


def test_unknown_event_type_is_kept_as_unknown(provider, sns):
    events = provider.parse(delivery(sns.notification(record("unknown-type"))))
    assert {(e.type, e.raw_type) for e in events} == {("unknown", "Teleport")}


def test_unknown_event_without_recipients_is_one_event_keyed_by_the_sns_id(provider, sns):
    envelope = sns.notification({"eventType": "Teleport", "mail": {"messageId": "m-1"}})
    [event] = provider.parse(delivery(envelope))
    assert (event.recipient, event.provider_event_id) == (None, envelope["MessageId"])


def broken(name: str, change) -> dict[str, Any]:
    document = record(name)
    change(document)
    return document


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"[]",
        json.dumps({"Type": "Notification", "MessageId": "x"}).encode(),
        json.dumps({"Type": "Notification", "MessageId": "x", "Message": "{not json"}).encode(),
        json.dumps({"Type": "Notification", "MessageId": "x", "Message": "[1, 2]"}).encode(),
    ],
)
def test_body_that_is_not_an_ses_notification_is_malformed(provider, body):
    with pytest.raises(Malformed):
        provider.parse(raw(body))


@pytest.mark.parametrize(
    "document",
    [
        broken("delivery", lambda d: d.pop("eventType")),
        broken("delivery", lambda d: d.pop("mail")),
        broken("delivery", lambda d: d.pop("delivery")),
        broken("bounce-permanent", lambda d: d["bounce"].pop("bouncedRecipients")),
        broken(
            "bounce-permanent", lambda d: d["bounce"]["bouncedRecipients"][0].pop("emailAddress")
        ),
        broken("complaint", lambda d: d["complaint"].update(complainedRecipients=[])),
        broken("open", lambda d: d["mail"].pop("destination")),
        broken("delivery", lambda d: d["delivery"].update(timestamp="yesterday")),
        broken("delivery", lambda d: d["delivery"].update(timestamp=1741079702)),
    ],
)
def test_record_missing_what_ses_documents_is_malformed(provider, sns, document):
    with pytest.raises(Malformed):
        provider.parse(delivery(sns.notification(document)))


def test_notification_without_message_id_is_malformed(provider, sns):
    envelope = sns.notification(record("delivery"))
    del envelope["MessageId"]
    with pytest.raises(Malformed):
        provider.parse(delivery(envelope))


# Configuration


def test_topic_arns_are_required():
    with pytest.raises(ConfigError, match="SUPPRESS_SES_TOPIC_ARNS"):
        Ses({"SES_AUTO_CONFIRM": "true"})


def test_topic_arns_must_be_sns_topic_arns():
    with pytest.raises(ConfigError, match="SUPPRESS_SES_TOPIC_ARNS"):
        Ses({"SES_TOPIC_ARNS": "ses-events"})


def test_settings_read_with_their_documented_defaults_and_no_api_credentials():
    settings = Ses({"SES_TOPIC_ARNS": f"{TOPIC}, arn:aws:sns:eu-west-1:111122223333:b"})
    assert settings.settings == {
        "TOPIC_ARNS": (TOPIC, "arn:aws:sns:eu-west-1:111122223333:b"),
        "AUTO_CONFIRM": True,
        "WEBHOOK_BASIC_AUTH": None,
    }


def test_api_credentials_alone_do_not_enable_the_webhook_endpoint():
    config = {"SES_ACCESS_KEY_ID": "AKIAEXAMPLE", "SES_SECRET_ACCESS_KEY": "secret"}
    assert not Ses.is_configured({**config, "SES_REGION": "eu-north-1"})


# Sync: the account-level suppression list and a contact list, through the SES API v2 played
# by FakeSes, which checks every call's SigV4 signature.

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "eu-north-1"
CONTACT_LIST = "yritys-uutiset"


@pytest.fixture
def ses_api(httpserver: HTTPServer) -> FakeSes:
    fake = FakeSes(httpserver, access_key_id=KEY_ID, secret_access_key=SECRET_KEY, region=REGION)
    fake.contact_lists[CONTACT_LIST] = {}
    return fake


@pytest.fixture
def configured(app, ses_api, monkeypatch) -> FakeSes:
    """The app reaching the fake, with no retry delays."""
    settings = {"ACCESS_KEY_ID": KEY_ID, "SECRET_ACCESS_KEY": SECRET_KEY, "REGION": REGION}
    for key, value in {**settings, "API_URL": ses_api.url}.items():
        monkeypatch.setitem(app.config, f"SES_{key}", value)
    monkeypatch.setitem(app.config, "SYNC_RETRIES", 1)
    monkeypatch.setattr("suppress.providers.api.BACKOFF_SECONDS", 0)
    return ses_api


def account(
    fake: FakeSes, target: str | None = None, list_slug: str | None = None, secret=SECRET_KEY
) -> Account:
    settings = {
        "REGION": REGION,
        "ACCESS_KEY_ID": KEY_ID,
        "SECRET_ACCESS_KEY": secret,
        "API_URL": fake.url,
        "CONTACT_LIST": None,
    }
    return Account("ses-fi", target, list_slug, settings, Ses.api(settings, timeout=5, retries=0))


def statuses(outcomes: list) -> list[str]:
    return [outcome.status for outcome in outcomes]


def suppressed(*addresses: str, reason: str = "bounced", scope: str = "global") -> None:
    for address in addresses:
        suppressions.suppress(address, reason=reason, scope=scope, source="test", actor="test")
    db.session.commit()


def test_bounces_and_complaints_go_to_the_account_list_one_call_each(ses_api):
    changes = [
        Change(1, "kuollut@yritys.fi", "bounced"),
        Change(2, "tayna@yritys.fi", "soft_bounced"),
        Change(3, "valittaja@yritys.fi", "complained"),
    ]
    assert statuses(Ses.push(account(ses_api), changes)) == ["accepted"] * 3
    assert {address: row["Reason"] for address, row in ses_api.suppressed.items()} == {
        "kuollut@yritys.fi": "BOUNCE",
        "tayna@yritys.fi": "BOUNCE",
        "valittaja@yritys.fi": "COMPLAINT",
    }
    assert ses_api.pushes() == 3


@pytest.mark.parametrize("reason", ["unsubscribed", "objected", "manual", "imported"])
def test_without_a_contact_list_an_unsubscribe_is_refused_never_mislabelled(ses_api, reason):
    (outcome,) = Ses.push(account(ses_api), [Change(1, "lahtija@yritys.fi", reason)])
    assert outcome.status == "refused"
    assert "contact list" in outcome.detail
    assert ses_api.calls == []


def test_an_unsubscribe_creates_the_contact_unsubscribed_from_everything(ses_api):
    (outcome,) = Ses.push(account(ses_api, CONTACT_LIST), [Change(1, "uusi@yritys.fi", "objected")])
    assert outcome.status == "accepted"
    contact = ses_api.contact_lists[CONTACT_LIST]["uusi@yritys.fi"]
    assert contact["UnsubscribeAll"] is True
    assert ses_api.suppressed == {}


def test_an_unsubscribe_keeps_the_contact_s_topics_and_attributes(ses_api):
    """UpdateContact drops every preference it is not given again, so they are sent back."""
    topics = [{"TopicName": "tapahtumat", "SubscriptionStatus": "OPT_IN"}]
    ses_api.contact_lists[CONTACT_LIST]["vanha@yritys.fi"] = {
        "EmailAddress": "vanha@yritys.fi",
        "TopicPreferences": topics,
        "UnsubscribeAll": False,
        "AttributesData": '{"kieli": "fi"}',
    }
    Ses.push(account(ses_api, CONTACT_LIST), [Change(1, "vanha@yritys.fi", "unsubscribed")])
    contact = ses_api.contact_lists[CONTACT_LIST]["vanha@yritys.fi"]
    assert contact["UnsubscribeAll"] is True
    assert (contact["TopicPreferences"], contact["AttributesData"]) == (topics, '{"kieli": "fi"}')


def test_a_list_suppression_opts_out_of_the_topic_named_after_the_list(ses_api):
    other = {"TopicName": "tapahtumat", "SubscriptionStatus": "OPT_IN"}
    ses_api.contact_lists[CONTACT_LIST]["lukija@yritys.fi"] = {
        "EmailAddress": "lukija@yritys.fi",
        "TopicPreferences": [other],
        "UnsubscribeAll": False,
    }
    change = Change(1, "lukija@yritys.fi", "unsubscribed", on_list=True)
    Ses.push(account(ses_api, CONTACT_LIST, list_slug="uutiskirje"), [change])
    contact = ses_api.contact_lists[CONTACT_LIST]["lukija@yritys.fi"]
    assert contact["TopicPreferences"] == [
        other,
        {"TopicName": "uutiskirje", "SubscriptionStatus": "OPT_OUT"},
    ]
    assert contact["UnsubscribeAll"] is False


def test_lifts_delete_the_suppression_and_opt_the_contact_back_in(ses_api):
    Ses.push(account(ses_api, CONTACT_LIST), [Change(1, "palaaja@yritys.fi", "bounced")])
    Ses.push(account(ses_api, CONTACT_LIST), [Change(2, "palaaja@yritys.fi", "unsubscribed")])
    lifts = [
        Change(3, "palaaja@yritys.fi", "bounced", lift=True),
        Change(4, "palaaja@yritys.fi", "unsubscribed", lift=True),
    ]
    assert statuses(Ses.push(account(ses_api, CONTACT_LIST), lifts)) == ["accepted"] * 2
    assert ses_api.suppressed == {}
    assert ses_api.contact_lists[CONTACT_LIST]["palaaja@yritys.fi"]["UnsubscribeAll"] is False


@pytest.mark.parametrize("reason", ["bounced", "unsubscribed"])
def test_a_lift_of_what_ses_no_longer_holds_is_accepted(ses_api, reason):
    (outcome,) = Ses.push(
        account(ses_api, CONTACT_LIST), [Change(1, "poissa@yritys.fi", reason, lift=True)]
    )
    assert outcome.status == "accepted"
    assert ses_api.contact_lists[CONTACT_LIST] == {}


def test_pushing_again_what_ses_holds_is_accepted(ses_api):
    changes = [Change(1, "kahdesti@yritys.fi", "complained")]
    Ses.push(account(ses_api), changes)
    assert statuses(Ses.push(account(ses_api), changes)) == ["accepted"]
    assert list(ses_api.suppressed) == ["kahdesti@yritys.fi"]


def test_an_address_ses_refuses_is_refused_and_the_rest_pushed(ses_api):
    """SES does not support SMTPUTF8: a non-ASCII local part is a BadRequestException."""
    changes = [Change(1, "jöns@yritys.fi", "bounced"), Change(2, "jons@yritys.fi", "bounced")]
    refusal, accepted = Ses.push(account(ses_api), changes)
    assert refusal.status == "refused"
    assert "7-bit ASCII" in refusal.detail
    assert accepted.status == "accepted"
    assert list(ses_api.suppressed) == ["jons@yritys.fi"]


def test_a_wrong_secret_is_a_fatal_api_error(ses_api):
    with pytest.raises(ApiError) as raised:
        Ses.push(account(ses_api, secret="not-the-secret"), [Change(1, "a@yritys.fi", "bounced")])
    assert (raised.value.status, raised.value.fatal) == (403, True)
    assert ses_api.suppressed == {}


def test_a_failed_call_does_not_name_the_address_the_sync_job_logs(ses_api):
    ses_api.fail_next(503)
    with pytest.raises(ApiError) as raised:
        Ses.push(account(ses_api, CONTACT_LIST), [Change(1, "matti@yritys.fi", "unsubscribed")])
    assert raised.value.retry
    assert "matti" not in str(raised.value)
    assert "<address>" in str(raised.value)


def test_pull_pages_through_the_account_list_and_maps_its_reasons(ses_api):
    for number in range(2500):
        reason = "COMPLAINT" if number % 2 else "BOUNCE"
        ses_api.suppressed[f"h{number:04}@yritys.fi"] = {
            "EmailAddress": f"h{number:04}@yritys.fi",
            "Reason": reason,
            "LastUpdateTime": 1767261600,
        }
    pulled = list(Ses.pull(account(ses_api), None))
    assert len(pulled) == 2500
    assert ses_api.calls.count(("GET", "/v2/email/suppression/addresses")) == 3
    assert {entry.reason for entry in pulled} == {"bounced", "complained"}
    assert pulled[0].at == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def test_pull_since_a_moment_reads_only_what_was_added_after_it(ses_api):
    for address, moment in (("vanha@yritys.fi", 1767261600), ("uusi@yritys.fi", 1767348000)):
        ses_api.suppressed[address] = {
            "EmailAddress": address,
            "Reason": "BOUNCE",
            "LastUpdateTime": moment,
        }
    since = datetime(2026, 1, 2, tzinfo=UTC)
    assert [entry.email for entry in Ses.pull(account(ses_api), since)] == ["uusi@yritys.fi"]


def test_pull_reads_the_contact_list_s_unsubscribes(ses_api):
    def contact(address, unsubscribe_all=False, status="OPT_IN"):
        topics = [{"TopicName": "uutiskirje", "SubscriptionStatus": status}]
        return {
            "EmailAddress": address,
            "UnsubscribeAll": unsubscribe_all,
            "TopicPreferences": topics,
        }

    ses_api.contact_lists[CONTACT_LIST] = {
        "kaikki@yritys.fi": contact("kaikki@yritys.fi", unsubscribe_all=True),
        "lista@yritys.fi": contact("lista@yritys.fi", status="OPT_OUT"),
        "tilaaja@yritys.fi": contact("tilaaja@yritys.fi"),
    }
    pulled = Ses.pull(account(ses_api, CONTACT_LIST, list_slug="uutiskirje"), None)
    assert [(entry.email, entry.reason, entry.on_list) for entry in pulled] == [
        ("kaikki@yritys.fi", "unsubscribed", False),
        ("lista@yritys.fi", "unsubscribed", True),
    ]


def test_a_sync_pass_pushes_and_lifts_through_an_ses_destination(app, configured):
    sync.add_destination("ses-fi", "ses", target=CONTACT_LIST)
    db.session.commit()
    suppressed("kuollut@yritys.fi", reason="bounced")
    suppressed("lahtija@yritys.fi", reason="unsubscribed")
    (report,) = sync.run()
    assert (report.accepted, report.refused, report.error) == (2, 0, None)
    assert list(configured.suppressed) == ["kuollut@yritys.fi"]
    assert configured.contact_lists[CONTACT_LIST]["lahtija@yritys.fi"]["UnsubscribeAll"] is True
    suppressions.lift("lahtija@yritys.fi", actor="test")
    db.session.commit()
    (report,) = sync.run()
    assert report.lifted == 1
    assert configured.contact_lists[CONTACT_LIST]["lahtija@yritys.fi"]["UnsubscribeAll"] is False


def test_reconcile_imports_a_complaint_only_ses_holds(app, configured):
    destination = sync.add_destination("ses-fi", "ses")
    db.session.commit()
    configured.suppressed["valittaja@yritys.fi"] = {
        "EmailAddress": "valittaja@yritys.fi",
        "Reason": "COMPLAINT",
        "LastUpdateTime": 1767261600,
    }
    drift = sync.reconcile(destination, full=False, dry_run=False)
    assert drift.imported == 1
    row = db.session.scalar(select(Suppression))
    assert (row.reason, row.source) == ("complained", "sync:ses-fi")


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("SES_REGION", None, "SUPPRESS_SES_REGION"),
        ("SES_SECRET_ACCESS_KEY", None, "SUPPRESS_SES_SECRET_ACCESS_KEY"),
        ("SES_REGION", "Stockholm", "not an AWS region"),
    ],
)
def test_a_destination_without_good_credentials_is_refused_when_added(
    app, configured, monkeypatch, variable, value, why
):
    monkeypatch.setitem(app.config, variable, value)
    with pytest.raises(ConfigError, match=why):
        sync.add_destination("ses-fi", "ses")
