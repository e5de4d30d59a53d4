"""SendGrid Event Webhook: ECDSA verification and the event vocabulary.

Signatures are made for real with a P-256 key generated for the test session, exactly as
SendGrid signs: ECDSA/SHA-256 over the timestamp header followed by the raw body.
"""

import base64
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from werkzeug.datastructures import Headers

from suppress.config import ConfigError
from suppress.providers.base import Delivery, Malformed, Rejected
from suppress.providers.sendgrid import (
    DEFAULT_TOLERANCE_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SendGrid,
)

PAYLOADS = Path(__file__).resolve().parent / "payloads" / "sendgrid"
URL = "https://suppress.example.fi/webhooks/sendgrid"
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def shown(private_key) -> str:
    """The public key as SendGrid's Mail Settings page shows it: base64 DER, no armour."""
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def provider(**settings: object) -> SendGrid:
    config = {"SENDGRID_WEBHOOK_VERIFICATION_KEY": shown(SIGNING_KEY)}
    config.update({f"SENDGRID_{key}": value for key, value in settings.items()})
    return SendGrid(config)


def signed(body: bytes, key=SIGNING_KEY, timestamp: int | None = None) -> Delivery:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = Headers(
        {
            SIGNATURE_HEADER: base64.b64encode(signature).decode(),
            TIMESTAMP_HEADER: stamp,
            "Content-Type": "application/json",
        }
    )
    return Delivery(method="POST", url=URL, headers=headers, body=body)


def batch_body(*events: dict) -> bytes:
    return json.dumps(list(events)).encode()


def one_event(**fields: object) -> dict:
    event = {
        "email": "aino.virtanen@example.fi",
        "timestamp": 1767261600,
        "event": "processed",
        "sg_event_id": "c2luZ2xlLWV2ZW50",
        "sg_message_id": "k3Jd8s0aQeWq.recvd-1.0",
    }
    event.update(fields)
    return event


def parsed_one(**fields: object):
    (event,) = provider().parse(signed(batch_body(one_event(**fields))))
    return event


def test_signed_batch_verifies_and_parses_one_event_per_item():
    delivery = signed((PAYLOADS / "batch.json").read_bytes())
    sendgrid = provider(GROUP_IDS="uutiskirje=4821")

    sendgrid.verify(delivery)
    events = sendgrid.parse(delivery)

    assert [(e.raw_type, e.type, e.bounce_class) for e in events] == [
        ("processed", "sent", None),
        ("deferred", "deferred", None),
        ("delivered", "delivered", None),
        ("bounce", "bounced", "hard"),
        ("bounce", "bounced", "soft"),
        ("dropped", "dropped", None),
        ("open", "opened", None),
        ("open", "opened", None),
        ("click", "clicked", None),
        ("spamreport", "complained", None),
        ("unsubscribe", "unsubscribed", None),
        ("group_unsubscribe", "unsubscribed", None),
        ("group_resubscribe", "resubscribed", None),
    ]
    assert events[0].provider == "sendgrid"
    assert events[0].provider_event_id == "cHJvY2Vzc2VkLTAwMQ"
    assert events[0].recipient == "aino.virtanen@example.fi"
    assert events[0].occurred_at == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert events[0].message_id == "k3Jd8s0aQeWq.recvd-1.0"
    assert events[0].campaign == "spring-2026"
    assert events[3].recipient == "eero.nieminen@example.com"
    assert len({e.provider_event_id for e in events}) == len(events)


def test_bounce_diagnostic_carries_the_smtp_reply():
    """R-MBP-6: the reply text is kept so sender-side policy codes can be recognised."""
    events = provider().parse(signed((PAYLOADS / "batch.json").read_bytes()))

    assert events[3].diagnostic == (
        "550 5.1.1 The email account that you tried to reach does not exist"
    )
    assert events[5].diagnostic == "5.0.0 Bounced Address"
    assert events[1].diagnostic == "451 4.7.1 Greylisted, try again later"


def test_policy_rejection_text_reaches_the_diagnostic():
    """R-MBP-6: a 5.7.26 refusal of our mail is visible to the bounce rules."""
    event = parsed_one(
        event="bounce",
        type="bounce",
        reason="550 5.7.26 Unauthenticated email from example.fi is not accepted",
        status="5.7.26",
    )

    assert "5.7.26" in event.diagnostic
    assert event.diagnostic.count("5.7.26") == 1


def test_engagement_events_carry_click_details_and_machine_verdict():
    events = provider().parse(signed((PAYLOADS / "batch.json").read_bytes()))
    machine_open, human_open, click = events[6], events[7], events[8]

    assert machine_open.machine is True
    assert human_open.machine is False
    assert click.machine is None
    assert click.url == "https://shop.example.fi/kevat?utm_campaign=spring"
    assert click.ip == "203.0.113.40"
    assert click.user_agent.endswith("Thunderbird/128.0")


def test_delivery_events_do_not_take_the_sending_ip_as_the_recipients():
    events = provider().parse(signed((PAYLOADS / "batch.json").read_bytes()))

    assert events[2].raw_type == "delivered"
    assert events[2].ip is None


def test_group_unsubscribe_names_the_list_mapped_to_its_group():
    events = provider(GROUP_IDS="uutiskirje=4821, tarjoukset=77").parse(
        signed((PAYLOADS / "batch.json").read_bytes())
    )
    group_unsubscribe, group_resubscribe = events[11], events[12]

    assert (group_unsubscribe.list_ref, group_unsubscribe.list_slug) == ("4821", "uutiskirje")
    assert (group_resubscribe.list_ref, group_resubscribe.list_slug) == ("4821", "uutiskirje")


def test_group_without_a_mapped_list_keeps_only_sendgrids_id():
    event = parsed_one(event="group_unsubscribe", asm_group_id=999)

    assert (event.list_ref, event.list_slug) == ("999", None)


def test_global_unsubscribe_names_no_list_even_with_a_group_id():
    events = provider(GROUP_IDS="uutiskirje=4821").parse(
        signed((PAYLOADS / "batch.json").read_bytes())
    )
    unsubscribe = events[10]

    assert unsubscribe.raw_type == "unsubscribe"
    assert (unsubscribe.list_ref, unsubscribe.list_slug) == (None, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("processed", "sent"),
        ("delivered", "delivered"),
        ("deferred", "deferred"),
        ("bounce", "bounced"),
        ("dropped", "dropped"),
        ("open", "opened"),
        ("click", "clicked"),
        ("spamreport", "complained"),
        ("unsubscribe", "unsubscribed"),
        ("group_unsubscribe", "unsubscribed"),
        ("group_resubscribe", "resubscribed"),
        ("account_status_change", "unknown"),
        ("Processed", "sent"),
    ],
)
def test_every_documented_event_type_maps_as_intended(raw, expected):
    assert parsed_one(event=raw).type == expected


@pytest.mark.parametrize(
    ("fields", "bounce_class"),
    [
        ({"type": "bounce"}, "hard"),
        ({"type": "blocked"}, "soft"),
        ({"type": "bounce", "bounce_classification": "Invalid Address"}, "hard"),
        ({"type": "bounce", "bounce_classification": "Mailbox Unavailable"}, "hard"),
        ({"type": "bounce", "bounce_classification": "Unclassified"}, "hard"),
        ({"type": "bounce", "bounce_classification": "Technical"}, "soft"),
        ({"type": "bounce", "bounce_classification": "Technical Failure"}, "soft"),
        ({"type": "bounce", "bounce_classification": "content"}, "soft"),
        ({"type": "bounce", "bounce_classification": "Reputation"}, "soft"),
        ({"type": "bounce", "bounce_classification": "Frequency or Volume Too High"}, "soft"),
        ({"type": "blocked", "bounce_classification": "Invalid Address"}, "soft"),
    ],
)
def test_bounce_class_follows_type_and_classification(fields, bounce_class):
    assert parsed_one(event="bounce", **fields).bounce_class == bounce_class


def test_unknown_event_type_parses_to_unknown():
    event = parsed_one(event="something_new")

    assert (event.type, event.raw_type) == ("unknown", "something_new")


def test_account_event_without_a_recipient_parses_to_unknown():
    account_event = {
        "event": "account_status_change",
        "sg_event_id": "YWNjb3VudC0wMTQ",
        "timestamp": 1767261600,
        "type": "compliance_suspend",
    }

    (event,) = provider().parse(signed(batch_body(account_event)))

    assert (event.type, event.recipient) == ("unknown", None)


def test_event_without_sg_event_id_gets_a_stable_synthetic_id():
    body = (PAYLOADS / "legacy-unsubscribe.json").read_bytes()

    (first,) = provider().parse(signed(body))
    (retried,) = provider().parse(signed(body))

    assert first.type == "unsubscribed"
    assert len(first.provider_event_id) == 64
    assert first.provider_event_id == retried.provider_event_id


def test_key_rotation_accepts_the_old_and_the_new_key():
    rotating = provider(WEBHOOK_VERIFICATION_KEY=f"{shown(OTHER_KEY)},{shown(SIGNING_KEY)}")

    rotating.verify(signed(batch_body(one_event()), key=SIGNING_KEY))
    rotating.verify(signed(batch_body(one_event()), key=OTHER_KEY))


def test_pem_armoured_key_is_accepted_too():
    pem = (
        SIGNING_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    provider(WEBHOOK_VERIFICATION_KEY=pem).verify(signed(batch_body(one_event())))


@pytest.mark.parametrize("missing", [SIGNATURE_HEADER, TIMESTAMP_HEADER])
def test_missing_signature_header_is_rejected(missing):
    delivery = signed(batch_body(one_event()))
    delivery.headers.remove(missing)

    with pytest.raises(Rejected) as rejected:
        provider().verify(delivery)

    assert rejected.value.status == 401


def test_signature_by_another_key_is_rejected():
    with pytest.raises(Rejected) as rejected:
        provider().verify(signed(batch_body(one_event()), key=OTHER_KEY))

    assert rejected.value.status == 403


def test_signature_that_is_not_base64_is_rejected():
    delivery = signed(batch_body(one_event()))
    delivery.headers[SIGNATURE_HEADER] = "not base64!"

    with pytest.raises(Rejected) as rejected:
        provider().verify(delivery)

    assert rejected.value.status == 403


def test_tampered_body_is_rejected():
    delivery = signed(batch_body(one_event(event="processed")))
    tampered = Delivery(
        method="POST",
        url=URL,
        headers=delivery.headers,
        body=delivery.body.replace(b"processed", b"spamreport"),
    )

    with pytest.raises(Rejected) as rejected:
        provider().verify(tampered)

    assert rejected.value.status == 403


def test_tampered_timestamp_is_rejected():
    delivery = signed(batch_body(one_event()))
    delivery.headers[TIMESTAMP_HEADER] = str(int(delivery.headers[TIMESTAMP_HEADER]) - 1)

    with pytest.raises(Rejected):
        provider().verify(delivery)


@pytest.mark.parametrize("offset", [-601, 601])
def test_timestamp_outside_the_tolerance_is_rejected(offset):
    delivery = signed(batch_body(one_event()), timestamp=int(time.time()) + offset)

    with pytest.raises(Rejected) as rejected:
        provider(WEBHOOK_TOLERANCE_SECONDS="600").verify(delivery)

    assert rejected.value.status == 403


def test_default_tolerance_accepts_a_retry_from_a_day_ago():
    """SendGrid retries for up to 24 h; the default window must not turn them away."""
    day_ago = int(time.time()) - 24 * 60 * 60

    provider().verify(signed(batch_body(one_event()), timestamp=day_ago))

    assert DEFAULT_TOLERANCE_SECONDS > 24 * 60 * 60


def test_timestamp_that_is_not_a_number_is_rejected():
    delivery = signed(batch_body(one_event()))
    delivery.headers[TIMESTAMP_HEADER] = "yesterday"

    with pytest.raises(Rejected):
        provider().verify(delivery)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        json.dumps(one_event()).encode(),
        b"[1]",
        batch_body({"email": "a@example.fi", "timestamp": 1767261600}),
        batch_body({**one_event(), "email": None}),
        batch_body({**one_event(), "timestamp": "soon"}),
        batch_body({key: value for key, value in one_event().items() if key != "timestamp"}),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "object-not-array",
        "item-not-object",
        "no-event-name",
        "no-recipient",
        "bad-timestamp",
        "no-timestamp",
    ],
)
def test_malformed_body_raises_malformed(body):
    with pytest.raises(Malformed):
        provider().parse(signed(body))


def test_handshake_is_none_because_sendgrid_has_none():
    assert provider().handshake(signed(batch_body(one_event()))) is None


def test_missing_verification_key_is_a_config_error_naming_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_SENDGRID_WEBHOOK_VERIFICATION_KEY"):
        SendGrid({"SENDGRID_API_KEY": "SG.test"})


@pytest.mark.parametrize(
    "key",
    [
        "not base64!",
        base64.b64encode(b"not a key").decode(),
        base64.b64encode(
            ec.generate_private_key(ec.SECP384R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode(),
        base64.b64encode(
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode(),
    ],
    ids=["not-base64", "not-a-key", "p384", "rsa"],
)
def test_unusable_verification_key_is_a_config_error_naming_the_variable(key):
    with pytest.raises(ConfigError, match="SUPPRESS_SENDGRID_WEBHOOK_VERIFICATION_KEY"):
        provider(WEBHOOK_VERIFICATION_KEY=key)


def test_bad_tolerance_is_a_config_error_naming_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_SENDGRID_WEBHOOK_TOLERANCE_SECONDS"):
        provider(WEBHOOK_TOLERANCE_SECONDS="0")


def test_api_settings_default_to_sendgrids_global_api():
    settings = provider().settings

    assert settings["API_URL"] == "https://api.sendgrid.com"
    assert settings["API_KEY"] is None
    assert settings["WEBHOOK_TOLERANCE_SECONDS"] == DEFAULT_TOLERANCE_SECONDS
