"""The Standard Webhooks receiver: the specification's signature scheme and the configurable
vocabulary. Signatures are made for real with test secrets and a test ed25519 key."""

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from werkzeug.datastructures import Headers

from suppress.config import ConfigError
from suppress.providers.delivery import Delivery, Malformed, Rejected
from suppress.providers.standard import Standard
from suppress.vocabulary import EVENT_TYPES

PAYLOADS = Path(__file__).parent / "payloads" / "standard"
URL = "https://suppress.example.net/webhooks/standard"
KEY = b"standard-webhooks-test-key-32-bytes!"
OLD_KEY = b"the-key-being-rotated-out-of-service"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
OLD_SECRET = "whsec_" + base64.b64encode(OLD_KEY).decode()
MESSAGE_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
EVENT_MAP = "email.bounced=bounced,email.sent=sent"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def provider(**settings: str) -> Standard:
    config = {"STANDARD_WEBHOOK_SECRET": SECRET, "STANDARD_EVENT_MAP": EVENT_MAP}
    config.update({f"STANDARD_{key}": value for key, value in settings.items()})
    return Standard(config)


def signature(body: bytes, stamp: str, key: bytes = KEY, message_id: str = MESSAGE_ID) -> str:
    content = f"{message_id}.{stamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def delivery(
    body: bytes,
    *,
    stamp: str | None = None,
    signatures: str | None = None,
    prefix: str = "webhook",
    message_id: str = MESSAGE_ID,
) -> Delivery:
    stamp = stamp or str(int(time.time()))
    signatures = signatures or signature(body, stamp, message_id=message_id)
    headers = Headers(
        {
            f"{prefix}-id": message_id,
            f"{prefix}-timestamp": stamp,
            f"{prefix}-signature": signatures,
            "Content-Type": "application/json",
        }
    )
    return Delivery(method="POST", url=URL, headers=headers, body=body)


def test_signed_bounce_verifies_and_parses_to_one_hard_bounce():
    standard = provider()
    request = delivery(payload("email.bounced.json"))

    standard.verify(request)
    [event] = standard.parse(request)

    assert event.provider == "standard"
    assert event.provider_event_id == MESSAGE_ID
    assert (event.type, event.bounce_class) == ("bounced", "hard")
    assert event.recipient == "ada@example.com"
    assert event.raw_type == "email.bounced"
    assert event.occurred_at == datetime(2026, 3, 2, 10, 15, 30, 250000, tzinfo=UTC)


def test_svix_header_family_verifies_the_same_way():
    """PROVIDERS.md standard: Svix-based senders use svix-* names for the same scheme."""
    standard = provider()
    request = delivery(payload("email.bounced.json"), prefix="svix")

    standard.verify(request)

    assert standard.parse(request)[0].provider_event_id == MESSAGE_ID


def test_any_matching_entry_verifies_while_keys_rotate():
    """Spec "Webhook headers": the header lists one signature per key; one match is enough."""
    standard = provider(WEBHOOK_SECRET=f"{SECRET},{OLD_SECRET}")
    body = payload("email.bounced.json")
    stamp = str(int(time.time()))
    stranger = signature(body, stamp, key=b"some-other-sender-s-secret-key!!")

    standard.verify(
        delivery(body, stamp=stamp, signatures=f"{stranger} {signature(body, stamp, OLD_KEY)}")
    )


def test_ed25519_v1a_signature_verifies_with_the_senders_public_key():
    private_key = Ed25519PrivateKey.generate()
    public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    standard = provider(WEBHOOK_SECRET="whpk_" + base64.b64encode(public).decode())
    body = payload("email.bounced.json")
    stamp = str(int(time.time()))
    signed = private_key.sign(f"{MESSAGE_ID}.{stamp}.".encode() + body)

    standard.verify(
        delivery(body, stamp=stamp, signatures="v1a," + base64.b64encode(signed).decode())
    )


def test_ed25519_signature_by_another_key_is_rejected():
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    standard = provider(WEBHOOK_SECRET="whpk_" + base64.b64encode(public).decode())
    body = payload("email.bounced.json")
    stamp = str(int(time.time()))
    forged = Ed25519PrivateKey.generate().sign(f"{MESSAGE_ID}.{stamp}.".encode() + body)

    with pytest.raises(Rejected):
        standard.verify(
            delivery(body, stamp=stamp, signatures="v1a," + base64.b64encode(forged).decode())
        )


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected(header):
    request = delivery(payload("email.bounced.json"))
    del request.headers[header]

    with pytest.raises(Rejected) as caught:
        provider().verify(request)

    assert caught.value.status == 401


def test_signature_made_with_another_secret_is_rejected():
    body = payload("email.bounced.json")
    stamp = str(int(time.time()))

    with pytest.raises(Rejected) as caught:
        provider().verify(delivery(body, stamp=stamp, signatures=signature(body, stamp, OLD_KEY)))

    assert caught.value.status == 401


def test_tampered_body_is_rejected():
    body = payload("email.bounced.json")
    stamp = str(int(time.time()))
    tampered = body.replace(b"ada@example.com", b"eve@example.com")

    with pytest.raises(Rejected):
        provider().verify(delivery(tampered, stamp=stamp, signatures=signature(body, stamp)))


def test_entry_that_is_not_base64_is_skipped_for_the_next_one():
    body = payload("email.bounced.json")
    stamp = str(int(time.time()))

    provider().verify(delivery(body, stamp=stamp, signatures=f"v1,%%% {signature(body, stamp)}"))
    with pytest.raises(Rejected):
        provider().verify(delivery(body, stamp=stamp, signatures="v1,%%% v1"))


def test_signature_of_another_version_is_not_taken_as_v1():
    body = payload("email.bounced.json")
    stamp = str(int(time.time()))

    with pytest.raises(Rejected):
        provider().verify(
            delivery(body, stamp=stamp, signatures="v1a" + signature(body, stamp)[2:])
        )


@pytest.mark.parametrize("offset", [-301, 301], ids=["old", "future"])
def test_timestamp_beyond_the_default_five_minutes_is_rejected(offset):
    """Spec "Verifying signatures": a replayed or post-dated request fails the tolerance."""
    with pytest.raises(Rejected) as caught:
        provider().verify(
            delivery(payload("email.bounced.json"), stamp=str(int(time.time()) + offset))
        )

    assert caught.value.status == 401


def test_timestamp_within_a_configured_tolerance_only_is_accepted():
    standard = provider(WEBHOOK_TOLERANCE_SECONDS="60")
    body = payload("email.bounced.json")

    standard.verify(delivery(body, stamp=str(int(time.time()) - 30)))
    with pytest.raises(Rejected):
        standard.verify(delivery(body, stamp=str(int(time.time()) - 120)))


@pytest.mark.parametrize("stamp", ["1.7e9", "2026-03-02T10:15:30Z", "-5"])
def test_timestamp_that_is_not_whole_unix_seconds_is_rejected(stamp):
    with pytest.raises(Rejected):
        provider().verify(delivery(payload("email.bounced.json"), stamp=stamp))


def test_message_id_holding_a_full_stop_is_rejected():
    """Spec "Signature scheme": a full stop in the id could move where the signed body starts."""
    with pytest.raises(Rejected):
        provider().verify(delivery(payload("email.bounced.json"), message_id="msg.1"))


def test_list_recipient_fans_out_one_event_each_with_the_recipient_in_the_id():
    events = provider().parse(delivery(payload("email.sent-two-recipients.json")))

    assert [event.recipient for event in events] == ["ada@example.com", "grace@example.org"]
    assert [event.provider_event_id for event in events] == [
        f"{MESSAGE_ID}:ada@example.com",
        f"{MESSAGE_ID}:grace@example.org",
    ]
    assert {event.type for event in events} == {"sent"}


def test_unlisted_type_is_kept_as_unknown_even_without_a_recipient():
    [event] = provider().parse(delivery(payload("account.updated.json")))

    assert (event.type, event.raw_type, event.recipient) == ("unknown", "account.updated", None)


@pytest.mark.parametrize("email", [{"primary": True}, "ops", ["a@example.com"]])
def test_unlisted_type_with_something_else_at_the_recipient_path_is_still_unknown(email):
    body = json.dumps({"type": "account.updated", "data": {"email": email}}).encode()

    [event] = provider(RECIPIENT_PATH="data.email.primary").parse(delivery(body))

    assert (event.type, event.recipient) == ("unknown", None)


COUNTED = "email.delivered=delivered,email.complained=complained"


@pytest.mark.parametrize("raw_type", ["email.delivered", "email.complained"])
def test_delivered_and_complaint_name_the_sender_at_data_from(raw_type):
    """R-MBP-4: complaint rates are counted per sending domain."""
    data = {"email": "ada@example.com", "from": "Uutiset <news@Yritys.FI>"}
    body = json.dumps({"type": raw_type, "data": data}).encode()

    [event] = provider(EVENT_MAP=COUNTED).parse(delivery(body))

    assert event.sender == "Uutiset <news@Yritys.FI>"


def test_every_recipient_of_a_fanned_event_shares_its_sender():
    data = {"email": ["ada@example.com", "grace@example.org"], "from": ["news@example.fi"]}
    body = json.dumps({"type": "email.sent", "data": data}).encode()

    assert {event.sender for event in provider().parse(delivery(body))} == {"news@example.fi"}


def test_sender_path_is_configurable():
    data = {"email": "ada@example.com", "envelope": {"sender": "bounces@example.fi"}}
    body = json.dumps({"type": "email.delivered", "data": data}).encode()

    standard = provider(EVENT_MAP=COUNTED, SENDER_PATH="data.envelope.sender")
    [event] = standard.parse(delivery(body))

    assert event.sender == "bounces@example.fi"


@pytest.mark.parametrize("sender", [None, "", 42, {"address": "news@example.fi"}, []])
def test_nothing_usable_at_the_sender_path_is_no_sender(sender):
    data = {"email": "ada@example.com", "from": sender}
    body = json.dumps({"type": "email.bounced", "data": data}).encode()

    [event] = provider().parse(delivery(body))

    assert event.sender is None


def test_sample_without_a_sender_names_none():
    [event] = provider().parse(delivery(payload("email.bounced.json")))

    assert event.sender is None


def test_listed_type_without_a_recipient_is_malformed():
    body = json.dumps({"type": "email.bounced", "data": {"id": "x"}}).encode()

    with pytest.raises(Malformed):
        provider().parse(delivery(body))


@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe", b'["email.bounced"]', b'{"data": {}}', b'{"type": 7}'],
    ids=["text", "not-utf8", "array", "no-type", "type-not-text"],
)
def test_body_that_is_not_a_typed_json_object_is_malformed(body):
    with pytest.raises(Malformed):
        provider().parse(delivery(body))


@pytest.mark.parametrize("kind", [kind for kind in EVENT_TYPES if kind != "bounced"])
def test_event_map_gives_each_normalised_type(kind):
    standard = provider(EVENT_MAP=f"thing.happened={kind}")
    body = json.dumps({"type": "thing.happened", "data": {"email": "ada@example.com"}}).encode()

    [event] = standard.parse(delivery(body))

    assert (event.type, event.bounce_class) == (kind, None)


@pytest.mark.parametrize(
    ("target", "bounce_class"),
    [("bounced", "hard"), ("bounced:hard", "hard"), ("bounced:soft", "soft")],
)
def test_event_map_gives_a_bounce_class(target, bounce_class):
    standard = provider(EVENT_MAP=f"email.bounced={target}")

    [event] = standard.parse(delivery(payload("email.bounced.json")))

    assert (event.type, event.bounce_class) == ("bounced", bounce_class)


def test_recipient_path_follows_list_indexes():
    standard = provider(RECIPIENT_PATH="data.to.1")
    body = json.dumps({"type": "email.sent", "data": {"to": ["a@example.com", "b@example.com"]}})

    [event] = standard.parse(delivery(body.encode()))

    assert event.recipient == "b@example.com"


def test_event_time_in_epoch_seconds_is_read_as_utc():
    body = json.dumps({"type": "email.sent", "timestamp": 1772446442, "data": {"email": "a@x.org"}})

    [event] = provider().parse(delivery(body.encode()))

    assert event.occurred_at == datetime(2026, 3, 2, 10, 14, 2, tzinfo=UTC)


def test_event_without_its_own_time_takes_the_attempt_timestamp():
    body = json.dumps({"type": "email.sent", "data": {"email": "a@x.org"}}).encode()

    [event] = provider().parse(delivery(body, stamp="1772446442"))

    assert event.occurred_at == datetime(2026, 3, 2, 10, 14, 2, tzinfo=UTC)


def test_missing_secret_names_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_STANDARD_WEBHOOK_SECRET"):
        Standard({"STANDARD_EVENT_MAP": EVENT_MAP})


@pytest.mark.parametrize(
    "secret", ["whsec_not base64!", "whsec_", "whpk_" + base64.b64encode(b"short").decode()]
)
def test_undecodable_secret_names_the_variable(secret):
    with pytest.raises(ConfigError, match="SUPPRESS_STANDARD_WEBHOOK_SECRET"):
        Standard({"STANDARD_WEBHOOK_SECRET": secret})


@pytest.mark.parametrize(
    "event_map", ["email.bounced", "email.bounced=suppressed", "x=bounced:maybe", "x=sent:hard"]
)
def test_bad_event_map_names_the_variable(event_map):
    with pytest.raises(ConfigError, match="SUPPRESS_STANDARD_EVENT_MAP"):
        Standard({"STANDARD_WEBHOOK_SECRET": SECRET, "STANDARD_EVENT_MAP": event_map})


def test_bad_recipient_path_names_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_STANDARD_RECIPIENT_PATH"):
        Standard({"STANDARD_WEBHOOK_SECRET": SECRET, "STANDARD_RECIPIENT_PATH": "data..email"})
