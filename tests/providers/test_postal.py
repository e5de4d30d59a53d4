"""Postal webhooks: RSA signatures over the raw body, Postal's key formats, its events."""

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from werkzeug.datastructures import Headers

from suppress.config import ConfigError
from suppress.providers import postal
from suppress.providers.delivery import Delivery, Malformed, Rejected
from suppress.providers.postal import Postal

PAYLOADS = Path(__file__).parent / "payloads" / "postal"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def bare_base64(key: rsa.RSAPrivateKey) -> str:
    """The key as older Postal shows it: base64 DER with no PEM armour, on one line."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()

    def encode(number: int) -> str:
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {
        "kty": "RSA",
        "kid": "a" * 64,
        "use": "sig",
        "e": encode(numbers.e),
        "n": encode(numbers.n),
    }


def signature(key: rsa.RSAPrivateKey, body: bytes, algorithm: hashes.HashAlgorithm) -> str:
    return base64.b64encode(key.sign(body, padding.PKCS1v15(), algorithm)).decode()


def signed(body: bytes, key: rsa.RSAPrivateKey) -> dict[str, str]:
    """Both headers, as Postal sends them (plus the key id, which is informational)."""
    return {
        "X-Postal-Signature-256": signature(key, body, hashes.SHA256()),
        "X-Postal-Signature": signature(key, body, hashes.SHA1()),
        "X-Postal-Signature-KID": "a" * 64,
    }


def delivery(body: bytes, headers: dict[str, str] | None = None) -> Delivery:
    all_headers = {"Content-Type": "application/json", "User-Agent": "Postal/3.3.7"}
    return Delivery(
        "POST",
        "https://suppress.example.fi/webhooks/postal",
        Headers({**all_headers, **(headers or {})}),
        body,
    )


def payload(name: str) -> bytes:
    return (PAYLOADS / f"{name}.json").read_bytes()


def document(name: str) -> dict[str, Any]:
    return json.loads(payload(name))


def body_of(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture
def provider(key) -> Postal:
    return Postal({"POSTAL_WEBHOOK_PUBLIC_KEY": pem(key)})


# Verification


def test_signed_message_sent_verifies_and_parses(provider, key):
    body = payload("message-sent")
    provider.verify(delivery(body, signed(body, key)))
    [event] = provider.parse(delivery(body))
    assert event.provider_event_id == "0b6f1c3e-6a0d-4e52-9f7e-2b1d9c8a7f60"
    assert (event.type, event.raw_type, event.recipient) == (
        "delivered",
        "MessageSent",
        "Maija.Meikalainen@example.com",
    )
    assert event.occurred_at == datetime(2025, 3, 4, 9, 15, 2, 500000, tzinfo=UTC)
    assert event.diagnostic == "250 2.0.0 Ok: queued as 4Q8yZ12abc"
    assert event.message_id == "a6c1f0e2-3b4d-4e5f-9a8b-7c6d5e4f3a2b@mail.example.fi"
    assert event.campaign == "maaliskuu-2025"


def test_signature_256_alone_verifies(provider, key):
    body = payload("message-sent")
    provider.verify(
        delivery(body, {"X-Postal-Signature-256": signature(key, body, hashes.SHA256())})
    )


def test_legacy_sha1_signature_is_accepted_from_an_older_postal(provider, key):
    body = payload("message-sent")
    provider.verify(delivery(body, {"X-Postal-Signature": signature(key, body, hashes.SHA1())}))


def test_good_sha256_signature_wins_over_a_bad_legacy_one(provider, key, other_key):
    body = payload("message-sent")
    headers = {**signed(body, key), "X-Postal-Signature": signature(other_key, body, hashes.SHA1())}
    provider.verify(delivery(body, headers))


def test_bad_sha256_signature_is_not_rescued_by_a_good_sha1_one(provider, key, other_key):
    """No downgrade: when the SHA-256 header is there, only it counts."""
    body = payload("message-sent")
    headers = {
        "X-Postal-Signature-256": signature(other_key, body, hashes.SHA256()),
        "X-Postal-Signature": signature(key, body, hashes.SHA1()),
    }
    with pytest.raises(Rejected) as refused:
        provider.verify(delivery(body, headers))
    assert refused.value.status == 403


def test_missing_signature_is_rejected(provider):
    with pytest.raises(Rejected) as refused:
        provider.verify(delivery(payload("message-sent")))
    assert refused.value.status == 401


def test_signature_by_another_key_is_rejected(provider, other_key):
    body = payload("message-sent")
    with pytest.raises(Rejected) as refused:
        provider.verify(delivery(body, signed(body, other_key)))
    assert refused.value.status == 403


def test_tampered_body_is_rejected(provider, key):
    body = payload("message-delivery-failed")
    headers = signed(body, key)
    tampered = body.replace(b"MessageDeliveryFailed", b"MessageSent")
    with pytest.raises(Rejected):
        provider.verify(delivery(tampered, headers))


def test_body_reformatted_after_signing_is_rejected(provider, key):
    """The signature covers the bytes sent, so a re-encoded body must not verify."""
    body = payload("message-sent")
    headers = signed(body, key)
    with pytest.raises(Rejected):
        provider.verify(delivery(json.dumps(json.loads(body)).encode(), headers))


@pytest.mark.parametrize("given", ["not base64!", ""])
def test_signature_that_is_not_base64_or_empty_is_rejected(provider, given):
    with pytest.raises(Rejected):
        provider.verify(delivery(payload("message-sent"), {"X-Postal-Signature-256": given}))


def test_postal_has_no_handshake(provider):
    assert provider.handshake(delivery(payload("message-sent"))) is None


# Key formats


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(pem, id="pem"),
        pytest.param(bare_base64, id="bare-base64"),
        pytest.param(lambda key: json.dumps(jwk(key)), id="jwk"),
        pytest.param(lambda key: json.dumps({"keys": [jwk(key)]}), id="jwks"),
    ],
)
def test_public_key_is_accepted_in_the_forms_postal_shows_it(key, form):
    provider = Postal({"POSTAL_WEBHOOK_PUBLIC_KEY": form(key)})
    body = payload("message-sent")
    provider.verify(delivery(body, signed(body, key)))


@pytest.mark.parametrize(
    "both",
    [
        pytest.param(lambda old, new: pem(old) + pem(new), id="pem-blocks"),
        pytest.param(lambda old, new: f"{bare_base64(old)},{bare_base64(new)}", id="base64"),
        pytest.param(lambda old, new: json.dumps({"keys": [jwk(old), jwk(new)]}), id="jwks"),
    ],
)
def test_old_and_new_keys_verify_side_by_side_during_rotation(key, other_key, both):
    provider = Postal({"POSTAL_WEBHOOK_PUBLIC_KEY": both(key, other_key)})
    body = payload("message-sent")
    provider.verify(delivery(body, signed(body, key)))
    provider.verify(delivery(body, signed(body, other_key)))


def test_public_key_is_required():
    with pytest.raises(ConfigError, match="SUPPRESS_POSTAL_WEBHOOK_PUBLIC_KEY"):
        Postal({"POSTAL_API_KEY": "key"})


def elliptic_pem() -> str:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    encoded = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return encoded.decode()


@pytest.mark.parametrize(
    "value",
    [
        "not a key",
        "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        elliptic_pem(),
        '{"kty": "EC", "crv": "P-256"}',
        '{"keys": [{"kty": "RSA", "e": "AQAB"}]}',
        "{not json",
        " , ",
    ],
)
def test_a_value_that_is_no_rsa_public_key_names_the_variable(value):
    with pytest.raises(ConfigError, match="SUPPRESS_POSTAL_WEBHOOK_PUBLIC_KEY"):
        Postal({"POSTAL_WEBHOOK_PUBLIC_KEY": value})


def test_api_settings_have_no_default_for_a_self_hosted_postal(provider):
    assert provider.settings["API_URL"] is None
    assert provider.settings["API_KEY"] is None


# Parsing


@pytest.mark.parametrize(
    ("name", "type_", "bounce_class", "recipient"),
    [
        ("message-sent", "delivered", None, "Maija.Meikalainen@example.com"),
        ("message-delayed", "deferred", None, "Maija.Meikalainen@example.com"),
        ("message-delivery-failed", "bounced", "hard", "Maija.Meikalainen@example.com"),
        ("message-held", "dropped", None, "Maija.Meikalainen@example.com"),
        ("message-bounced", "bounced", "hard", "Maija.Meikalainen@example.com"),
        ("message-link-clicked", "clicked", None, "Maija.Meikalainen@example.com"),
        ("message-loaded", "opened", None, "Maija.Meikalainen@example.com"),
        ("domain-dns-error", "unknown", None, None),
        ("send-limit-approaching", "unknown", None, None),
        ("send-limit-exceeded", "unknown", None, None),
    ],
)
def test_every_postal_event_maps_as_documented(provider, name, type_, bounce_class, recipient):
    [event] = provider.parse(delivery(payload(name)))
    assert (event.type, event.bounce_class, event.recipient) == (type_, bounce_class, recipient)
    assert event.provider_event_id == document(name)["uuid"]
    assert event.raw_type == document(name)["event"]


def test_table_covers_every_event_postal_documents():
    documented = {"MessageSent", "MessageDelayed", "MessageDeliveryFailed", "MessageHeld"}
    documented |= {"MessageBounced", "MessageLinkClicked", "MessageLoaded", "DomainDNSError"}
    documented |= {"SendLimitApproaching", "SendLimitExceeded"}
    assert set(postal.EVENT_TYPES) == documented


def test_failed_delivery_keeps_the_smtp_reply_for_policy_checks(provider):
    """R-MBP-6 needs the receiver's words to tell a sender-side block from a dead address."""
    [event] = provider.parse(delivery(payload("message-delivery-failed")))
    assert event.diagnostic.startswith("550 5.1.1")
    assert event.occurred_at == datetime(2025, 3, 4, 9, 15, 12, 750000, tzinfo=UTC)


def test_held_message_without_output_keeps_postals_details(provider):
    [event] = provider.parse(delivery(payload("message-held")))
    assert "suppression list" in event.diagnostic


def test_bounce_is_about_the_original_message_at_the_bounces_time(provider):
    [event] = provider.parse(delivery(payload("message-bounced")))
    assert event.message_id == "a6c1f0e2-3b4d-4e5f-9a8b-7c6d5e4f3a2b@mail.example.fi"
    assert event.occurred_at == datetime(2025, 3, 4, 9, 19, 55, 500000, tzinfo=UTC)
    assert event.diagnostic == "Undelivered Mail Returned to Sender"


@pytest.mark.parametrize("name", ["message-sent", "message-bounced"])
def test_sender_is_the_original_messages_from(provider, name):
    """R-MBP-4: complaint rates are counted per sending domain; a bounce names the message it
    returns, not the bounce's MAILER-DAEMON."""
    [event] = provider.parse(delivery(payload(name)))
    assert event.sender == "news@example.fi"


@pytest.mark.parametrize("value", [None, "", 42, ["news@example.fi"]])
def test_a_from_that_is_not_text_is_no_sender(provider, value):
    sent = document("message-sent")
    sent["payload"]["message"]["from"] = value
    [event] = provider.parse(delivery(body_of(sent)))
    assert event.sender is None


def test_click_keeps_url_ip_and_user_agent_at_the_time_postal_queued_it(provider):
    [event] = provider.parse(delivery(payload("message-link-clicked")))
    assert event.url == "https://example.fi/uutiset/maaliskuu"
    assert (event.ip, event.machine) == ("198.51.100.7", None)
    assert event.user_agent.startswith("Mozilla/5.0 (X11")
    assert event.occurred_at == datetime(2025, 3, 4, 10, 2, 40, 900000, tzinfo=UTC)


def test_events_about_incoming_mail_are_skipped(provider):
    incoming = document("message-sent")
    incoming["payload"]["message"]["direction"] = "incoming"
    assert provider.parse(delivery(body_of(incoming))) == []


def test_unknown_event_is_kept_as_unknown(provider):
    future = {**document("message-sent"), "event": "MessageTeleported"}
    [event] = provider.parse(delivery(body_of(future)))
    assert (event.type, event.raw_type) == ("unknown", "MessageTeleported")
    assert event.recipient == "Maija.Meikalainen@example.com"


def changed(name: str, **fields: Any) -> bytes:
    return body_of({**document(name), **fields})


def changed_payload(name: str, **fields: Any) -> bytes:
    original = document(name)
    return body_of({**original, "payload": {**original["payload"], **fields}})


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        changed("message-sent", event=None),
        changed("message-sent", uuid=""),
        changed("message-sent", payload=[]),
        changed("message-sent", timestamp="yesterday"),
        changed("message-sent", timestamp=None),
        changed_payload("message-sent", timestamp="later"),
        changed_payload("message-sent", message="to someone"),
        changed_payload("message-bounced", bounce=["not", "an", "object"]),
    ],
)
def test_body_that_is_not_a_documented_webhook_is_malformed(provider, body):
    with pytest.raises(Malformed):
        provider.parse(delivery(body))
