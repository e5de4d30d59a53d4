"""MailerSend webhooks: real hex HMAC-SHA256 signatures over the raw body, both payload shapes
MailerSend has sent, and the webhook.test ping that saving a webhook fires."""

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from werkzeug.datastructures import Headers

from suppress.config import ConfigError
from suppress.providers.base import Delivery, Malformed, Rejected, Reply
from suppress.providers.mailersend import EVENT_MAP, PING_SECRET, MailerSend

PAYLOADS = Path(__file__).parent / "payloads" / "mailersend"
URL = "https://suppress.example.net/webhooks/mailersend"
SECRET = "Xq7mTt2LrV9cKd4NwZp1sHy6EbGf3Ju8"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def provider(secret: str = SECRET) -> MailerSend:
    return MailerSend({"MAILERSEND_WEBHOOK_SECRET": secret})


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery(body: bytes, signature: str | None = None) -> Delivery:
    headers = Headers({"Signature": sign(body) if signature is None else signature})
    return Delivery(method="POST", url=URL, headers=headers, body=body)


def retyped(raw_type: str) -> bytes:
    document = json.loads(payload("activity.delivered.json"))
    document["type"] = raw_type
    return json.dumps(document).encode()


def parse(body: bytes):
    return provider().parse(delivery(body))


def test_signed_hard_bounce_verifies_and_parses():
    mailersend = provider()
    request = delivery(payload("activity.hard_bounced.json"))

    mailersend.verify(request)
    assert mailersend.handshake(request) is None
    [event] = mailersend.parse(request)

    assert event.provider == "mailersend"
    assert event.provider_event_id == "6892766a5b66e2daf3dc9158"
    assert (event.type, event.bounce_class) == ("bounced", "hard")
    assert event.recipient == "ada@example.com"
    assert event.message_id == "6892766ae78995a317577aa1"
    assert event.raw_type == "activity.hard_bounced"
    assert event.occurred_at == datetime(2026, 3, 5, 21, 24, 2, tzinfo=UTC)
    assert event.diagnostic == "550 5.1.1 Recipient address rejected: User unknown"


def test_bounce_diagnostic_carries_the_smtp_code_and_reason():
    """R-MBP-6: the SMTP text reaches events.py, which tells policy blocks from bad addresses."""
    [event] = parse(payload("activity.hard_bounced-policy.json"))

    assert event.diagnostic.startswith("550 5.7.515 Access denied")


def test_nested_shape_with_escaped_slashes_verifies_on_the_raw_bytes():
    """MailerSend escapes "/" as "\\/" (anymail tests): only the raw body verifies."""
    body = payload("activity.soft_bounced-nested.json")
    assert b"\\/" in body
    mailersend = provider()
    request = delivery(body)

    mailersend.verify(request)
    [event] = mailersend.parse(request)

    assert event.provider_event_id == "62f114f8165fe0d8db0288e5"
    assert (event.type, event.bounce_class) == ("bounced", "soft")
    assert event.recipient == "ada@example.com"
    assert event.message_id == "62fb66bef54a112e920b5493"
    assert event.diagnostic == "452 4.2.2 The recipient's inbox is out of storage space"
    # The activity's own time, not the webhook's.
    assert event.occurred_at == datetime(2026, 3, 5, 13, 51, 52, 747000, tzinfo=UTC)


def test_missing_signature_is_rejected():
    request = Delivery(
        method="POST", url=URL, headers=Headers(), body=payload("activity.delivered.json")
    )

    with pytest.raises(Rejected) as caught:
        provider().verify(request)

    assert caught.value.status == 401


def test_signature_made_with_another_secret_is_rejected():
    body = payload("activity.hard_bounced.json")

    with pytest.raises(Rejected) as caught:
        provider().verify(delivery(body, sign(body, "not-the-webhook-secret")))

    assert caught.value.status == 401


def test_tampered_body_is_rejected():
    body = payload("activity.hard_bounced.json")
    tampered = body.replace(b"ada@example.com", b"eve@example.com")

    with pytest.raises(Rejected):
        provider().verify(delivery(tampered, sign(body)))


def test_body_that_is_not_json_still_needs_the_webhook_secret():
    body = b"<html>not an event</html>"

    provider().verify(delivery(body))
    with pytest.raises(Rejected):
        provider().verify(delivery(body, sign(body, PING_SECRET)))


def test_hex_digits_in_upper_case_verify():
    body = payload("activity.delivered.json")

    provider().verify(delivery(body, sign(body).upper()))


def test_either_secret_verifies_while_one_rotates():
    body = payload("activity.delivered.json")

    provider(f"old-secret,{SECRET}").verify(delivery(body))


def test_ping_signed_with_the_published_test_secret_is_answered_and_stores_nothing():
    """Webhooks overview: saving a webhook sends webhook.test signed with a fixed test secret."""
    mailersend = provider()
    body = payload("webhook.test.json")
    request = delivery(body, sign(body, PING_SECRET))

    mailersend.verify(request)

    assert mailersend.handshake(request) == Reply()


def test_ping_signed_with_the_webhook_secret_is_answered_too():
    mailersend = provider()
    request = delivery(payload("webhook.test.json"))

    mailersend.verify(request)

    assert mailersend.handshake(request) == Reply()


def test_published_test_secret_never_verifies_an_activity():
    body = payload("activity.hard_bounced.json")

    with pytest.raises(Rejected):
        provider().verify(delivery(body, sign(body, PING_SECRET)))


def test_click_carries_url_ip_and_user_agent():
    [event] = parse(payload("activity.clicked.json"))

    assert event.type == "clicked"
    assert event.url == "https://example.net/receipts/42"
    assert event.ip == "198.51.100.23"
    assert event.user_agent == "Mozilla/5.0 (X11; Linux x86_64) Firefox/135.0"


@pytest.mark.parametrize(("raw_type", "kind"), sorted(EVENT_MAP.items()))
def test_documented_event_type_maps_as_intended(raw_type, kind):
    [event] = parse(retyped(raw_type))

    assert (event.raw_type, event.type) == (raw_type, kind)


def test_expected_mapping_of_activity_events():
    assert {raw: kind for raw, kind in EVENT_MAP.items() if kind != "unknown"} == {
        "activity.sent": "sent",
        "activity.delivered": "delivered",
        "activity.deferred": "deferred",
        "activity.soft_bounced": "bounced",
        "activity.hard_bounced": "bounced",
        "activity.opened": "opened",
        "activity.opened_unique": "opened",
        "activity.clicked": "clicked",
        "activity.clicked_unique": "clicked",
        "activity.unsubscribed": "unsubscribed",
        "activity.spam_complaint": "complained",
        "activity.suppressed": "dropped",
    }


def test_undocumented_type_is_unknown_never_an_error():
    [event] = parse(retyped("activity.teleported"))

    assert (event.type, event.raw_type) == ("unknown", "activity.teleported")


def test_undocumented_activity_without_a_recipient_is_unknown_too():
    body = b'{"type": "activity.teleported", "created_at": "2026-03-05T21:23:58Z", "data": {}}'

    [event] = parse(body)

    assert (event.type, event.recipient) == ("unknown", None)


def test_account_event_without_a_recipient_is_unknown():
    [event] = parse(payload("maintenance.start.json"))

    assert (event.type, event.recipient) == ("unknown", None)
    assert event.provider_event_id == "67c8e1a2b3c4d5e6f7a8b9c0"


def test_event_without_an_id_gets_a_stable_synthetic_one():
    document = json.loads(payload("activity.delivered.json"))
    del document["data"]["id"]
    body = json.dumps(document).encode()

    first, again = parse(body)[0], parse(body)[0]

    assert first.provider_event_id == again.provider_event_id
    assert len(first.provider_event_id) == 64


def test_inbound_message_posted_here_is_malformed():
    with pytest.raises(Malformed, match="inbound"):
        parse(payload("inbound.message.json"))


@pytest.mark.parametrize(
    "body",
    [
        b"ok",
        b'"activity.sent"',
        b'{"data": {"recipient": "a@example.com"}}',
        b'{"type": "activity.sent", "created_at": "2026-03-05T21:23:58Z"}',
        b'{"type": "activity.sent", "data": {"id": "1", "recipient": "a@example.com"}}',
        b'{"type": "activity.sent", "created_at": "2026-03-05T21:23:58Z", "data": {"id": "1"}}',
    ],
    ids=["text", "string", "no-type", "no-data", "no-time", "no-recipient"],
)
def test_body_not_as_documented_is_malformed(body):
    with pytest.raises(Malformed):
        parse(body)


def test_missing_secret_names_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_MAILERSEND_WEBHOOK_SECRET"):
        MailerSend({"MAILERSEND_DOMAIN_ID": "yv69oxl5kl785kw2"})


def test_api_url_defaults_to_mailersend_v1():
    assert provider().settings["API_URL"] == "https://api.mailersend.com/v1"
