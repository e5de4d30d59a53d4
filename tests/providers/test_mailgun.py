"""Mailgun webhooks: the in-body HMAC, replay protection and the event vocabulary.

Payload files hold ``event-data`` objects; each test wraps one with a signature made for real:
hex HMAC-SHA256 of timestamp + token under the webhook signing key, as Mailgun signs.
"""

import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from werkzeug.datastructures import Headers

from suppress.config import ConfigError
from suppress.providers.api import ApiError
from suppress.providers.delivery import Delivery, Malformed, Rejected
from suppress.providers.mailgun import DEFAULT_TOLERANCE_SECONDS, Mailgun, SeenTokens
from suppress.providers.syncing import Account, Change, Outcome, Pulled
from tests.providers.fakes.mailgun import FakeMailgun

PAYLOADS = Path(__file__).resolve().parent / "payloads" / "mailgun"
URL = "https://suppress.example.fi/webhooks/mailgun"
SIGNING_KEY = "mg-webhook-signing-key-0123456789abcdef"
OTHER_KEY = "mg-webhook-signing-key-fedcba9876543210"


def provider(**settings: object) -> Mailgun:
    config = {"MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}
    config.update({f"MAILGUN_{key}": value for key, value in settings.items()})
    return Mailgun(config)


def event_data(name: str, **changes: object) -> dict:
    data = json.loads((PAYLOADS / f"{name}.json").read_text())
    data.update(changes)
    return data


def without(data: dict, field: str) -> dict:
    return {key: value for key, value in data.items() if key != field}


def sign(key: str, timestamp: str, token: str) -> str:
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def signature_block(key: str = SIGNING_KEY, timestamp: int | None = None) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = secrets.token_hex(25)
    return {"timestamp": stamp, "token": token, "signature": sign(key, stamp, token)}


def delivery_of(document: dict) -> Delivery:
    body = json.dumps(document).encode()
    headers = Headers({"Content-Type": "application/json"})
    return Delivery(method="POST", url=URL, headers=headers, body=body)


def signed(data: dict, key: str = SIGNING_KEY, timestamp: int | None = None) -> Delivery:
    return delivery_of({"signature": signature_block(key, timestamp), "event-data": data})


def parsed(data: dict):
    (event,) = provider().parse(signed(data))
    return event


def test_signed_delivered_event_verifies_and_parses():
    delivery = signed(event_data("delivered"))
    mailgun = provider()

    mailgun.verify(delivery)
    (event,) = mailgun.parse(delivery)

    assert event.provider == "mailgun"
    assert (event.type, event.raw_type, event.bounce_class) == ("delivered", "delivered", None)
    assert event.provider_event_id == "Ase7i2zsRYeDXztHGENqRA:1767261600.5"
    assert event.recipient == "aino.virtanen@example.fi"
    assert event.occurred_at == datetime(2026, 1, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert event.message_id == "20260101100000.1.5C2E7A@mg.example.fi"
    assert event.campaign == "spring-2026"
    assert event.diagnostic == "250 OK"


def test_permanent_failure_is_a_hard_bounce_with_the_smtp_reply():
    """R-MBP-6: the code and reply text reach the diagnostic."""
    event = parsed(event_data("failed-permanent"))

    assert (event.type, event.bounce_class) == ("bounced", "hard")
    assert event.recipient == "eero.nieminen@example.com"
    assert event.diagnostic == (
        "550 5.1.1 The email account that you tried to reach does not exist."
    )


def test_temporary_failure_is_a_deferral_mailgun_retries():
    event = parsed(event_data("failed-temporary"))

    assert (event.type, event.bounce_class) == ("deferred", None)
    assert event.diagnostic == "451 4.7.1 Please try again later"


@pytest.mark.parametrize(
    ("severity", "reason", "expected"),
    [
        ("permanent", "bounce", ("bounced", "hard")),
        ("permanent", "generic", ("bounced", "hard")),
        ("permanent", "suppress-bounce", ("dropped", None)),
        ("permanent", "suppress-unsubscribe", ("dropped", None)),
        ("permanent", "suppress-complaint", ("dropped", None)),
        ("permanent", "old", ("bounced", "soft")),
        ("temporary", "old", ("bounced", "soft")),
        ("temporary", "generic", ("deferred", None)),
        ("temporary", "espblock", ("deferred", None)),
        ("sideways", "bounce", ("unknown", None)),
    ],
)
def test_failure_class_follows_reason_then_severity(severity, reason, expected):
    event = parsed(event_data("failed-permanent", severity=severity, reason=reason))

    assert (event.type, event.bounce_class) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("accepted", "sent"),
        ("rejected", "dropped"),
        ("delivered", "delivered"),
        ("opened", "opened"),
        ("clicked", "clicked"),
        ("unsubscribed", "unsubscribed"),
        ("complained", "complained"),
        ("stored", "unknown"),
        ("list_member_uploaded", "unknown"),
        ("list_member_upload_error", "unknown"),
        ("list_uploaded", "unknown"),
    ],
)
def test_every_documented_event_type_maps_as_intended(raw, expected):
    assert parsed(event_data("delivered", event=raw)).type == expected


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("opened", "opened"),
        ("clicked", "clicked"),
        ("complained", "complained"),
        ("unsubscribed", "unsubscribed"),
    ],
)
def test_samples_parse_to_their_types(sample, expected):
    assert parsed(event_data(sample)).type == expected


def test_click_carries_url_ip_and_user_agent_but_no_machine_verdict():
    event = parsed(event_data("clicked"))

    assert event.url == "https://shop.example.fi/kevat"
    assert event.ip == "203.0.113.40"
    assert event.user_agent.endswith("Thunderbird/128.0")
    assert event.machine is None


@pytest.mark.parametrize("sample", ["delivered", "complained"])
def test_delivered_and_complained_name_the_from_header_as_sender(sample):
    """R-MBP-4: complaint rates are counted per sending domain."""
    assert parsed(event_data(sample)).sender == "Uutiset <uutiset@mg.example.fi>"


@pytest.mark.parametrize(
    ("message", "envelope", "sender"),
    [
        (
            {"headers": {"to": "aino.virtanen@example.fi"}},
            {"sender": "bounce@mg.example.fi"},
            "bounce@mg.example.fi",
        ),
        ("odd", {"sender": "bounce@mg.example.fi"}, "bounce@mg.example.fi"),
        ({"headers": {"from": 12}}, "odd", None),
        ({}, {"sender": ["bounce@mg.example.fi"]}, "bounce@mg.example.fi"),
        ({}, {}, None),
    ],
)
def test_sender_falls_back_to_the_envelope_and_never_fails(message, envelope, sender):
    event = parsed(event_data("delivered", message=message, envelope=envelope))

    assert event.sender == sender


def test_rejected_event_without_recipient_falls_back_to_the_to_header():
    event = parsed(event_data("rejected"))

    assert (event.type, event.recipient) == ("dropped", "matti.lahtinen@example.org")


def test_unknown_event_type_parses_to_unknown():
    event = parsed(event_data("delivered", event="teleported"))

    assert (event.type, event.raw_type) == ("unknown", "teleported")


def test_list_event_without_a_recipient_parses_to_unknown():
    data = {"id": "bGlzdC11cGxvYWQ", "timestamp": 1767272400, "event": "list_uploaded"}

    event = parsed(data)

    assert (event.type, event.recipient) == ("unknown", None)


def test_same_event_id_on_another_day_is_another_event():
    today = parsed(event_data("delivered"))
    tomorrow = parsed(event_data("delivered", timestamp=1767348000.5))

    assert today.provider_event_id != tomorrow.provider_event_id


def test_rotated_key_verifies_beside_the_old_one():
    rotating = provider(WEBHOOK_SIGNING_KEY=f"{OTHER_KEY}, {SIGNING_KEY}")

    rotating.verify(signed(event_data("delivered"), key=SIGNING_KEY))
    rotating.verify(signed(event_data("delivered"), key=OTHER_KEY))


def test_subaccount_event_verifies_by_its_parent_signature():
    block = signature_block(key="subaccount-key")
    block["parent-signature"] = sign(OTHER_KEY, block["timestamp"], block["token"])
    delivery = delivery_of({"signature": block, "event-data": event_data("delivered")})

    provider(WEBHOOK_SIGNING_KEY=OTHER_KEY).verify(delivery)


@pytest.mark.parametrize(
    "document",
    [
        {"event-data": {"event": "delivered"}},
        {"signature": "abc", "event-data": {}},
        {"signature": {"timestamp": "1767261600", "signature": "00"}, "event-data": {}},
        {"signature": {"token": "t" * 50, "signature": "00"}, "event-data": {}},
        {"signature": {"timestamp": "soon", "token": "t" * 50, "signature": "00"}},
    ],
    ids=["no-signature", "signature-not-object", "no-token", "no-timestamp", "bad-timestamp"],
)
def test_missing_signature_is_rejected(document):
    with pytest.raises(Rejected) as rejected:
        provider().verify(delivery_of(document))

    assert rejected.value.status == 401


def test_body_that_is_not_json_has_no_signature_and_is_rejected():
    """A legacy form-encoded webhook carries no signature object: refused, not parsed."""
    delivery = Delivery(
        method="POST",
        url=URL,
        headers=Headers({"Content-Type": "application/x-www-form-urlencoded"}),
        body=b"token=abc&timestamp=1767261600&signature=00&event=delivered",
    )

    with pytest.raises(Rejected) as rejected:
        provider().verify(delivery)

    assert rejected.value.status == 401


def test_signature_by_another_key_is_rejected():
    with pytest.raises(Rejected) as rejected:
        provider().verify(signed(event_data("delivered"), key=OTHER_KEY))

    assert rejected.value.status == 403


@pytest.mark.parametrize("field", ["timestamp", "token", "signature"])
def test_tampered_signature_field_is_rejected(field):
    """Mailgun signs timestamp + token, not the event-data; changing either breaks it."""
    block = signature_block()
    block[field] = str(int(block[field]) - 1) if field == "timestamp" else block[field][::-1]
    delivery = delivery_of({"signature": block, "event-data": event_data("delivered")})

    with pytest.raises(Rejected) as rejected:
        provider().verify(delivery)

    assert rejected.value.status == 403


@pytest.mark.parametrize("offset", [-DEFAULT_TOLERANCE_SECONDS - 1, DEFAULT_TOLERANCE_SECONDS + 1])
def test_timestamp_outside_the_tolerance_is_rejected(offset):
    delivery = signed(event_data("delivered"), timestamp=int(time.time()) + offset)

    with pytest.raises(Rejected) as rejected:
        provider().verify(delivery)

    assert rejected.value.status == 403


def test_tolerance_is_configurable():
    delivery = signed(event_data("delivered"), timestamp=int(time.time()) - 3600)

    provider(WEBHOOK_TOLERANCE_SECONDS="7200").verify(delivery)
    with pytest.raises(Rejected):
        provider(WEBHOOK_TOLERANCE_SECONDS="60").verify(
            signed(event_data("delivered"), timestamp=int(time.time()) - 3600)
        )


def test_a_token_reused_with_another_event_is_rejected():
    """Only timestamp and token are signed, so a captured signature must not carry new data."""
    block = signature_block()
    provider().verify(delivery_of({"signature": block, "event-data": event_data("delivered")}))

    forged = delivery_of({"signature": block, "event-data": event_data("unsubscribed")})
    with pytest.raises(Rejected) as rejected:
        provider().verify(forged)

    assert rejected.value.status == 403


def test_a_retry_of_the_same_request_is_admitted():
    """After a 5xx, Mailgun sends the request again; dedupe by event id makes it harmless."""
    delivery = signed(event_data("delivered"))
    provider().verify(delivery)
    provider().verify(delivery)


def test_signature_with_an_integer_timestamp_verifies():
    """Mailgun types the timestamp as an int ("Securing Webhooks"); its examples send text."""
    block = signature_block()
    block["timestamp"] = int(block["timestamp"])

    provider().verify(delivery_of({"signature": block, "event-data": event_data("delivered")}))


def test_remembered_tokens_expire_after_their_lifetime():
    seen = SeenTokens(limit=10)

    assert seen.admits("token-a", b"one", now=1000.0, lifetime=60)
    assert not seen.admits("token-a", b"two", now=1059.0, lifetime=60)
    assert seen.admits("token-a", b"two", now=1061.0, lifetime=60)


def test_remembered_tokens_are_bounded_oldest_first_out():
    seen = SeenTokens(limit=2)
    for token in ("token-a", "token-b", "token-c"):
        assert seen.admits(token, b"one", now=1000.0, lifetime=60)

    assert not seen.admits("token-c", b"two", now=1000.0, lifetime=60)
    assert seen.admits("token-a", b"two", now=1000.0, lifetime=60)


def test_wrongly_signed_request_does_not_use_up_its_token():
    block = signature_block()
    forged = dict(block, signature=sign(OTHER_KEY, block["timestamp"], block["token"]))
    with pytest.raises(Rejected):
        provider().verify(delivery_of({"signature": forged, "event-data": {}}))

    provider().verify(delivery_of({"signature": block, "event-data": event_data("delivered")}))


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"signature": {}},
        {"event-data": "delivered"},
        {"event-data": event_data("delivered", event=None)},
        {"event-data": event_data("delivered", id="")},
        {"event-data": event_data("delivered", timestamp="yesterday")},
        {"event-data": without(event_data("delivered"), "timestamp")},
        {"event-data": event_data("delivered", recipient=None)},
        {"event-data": event_data("failed-permanent", recipient=42)},
    ],
    ids=[
        "array",
        "no-event-data",
        "event-data-not-object",
        "no-event",
        "empty-id",
        "bad-timestamp",
        "no-timestamp",
        "no-recipient",
        "recipient-not-text",
    ],
)
def test_malformed_body_raises_malformed(document):
    with pytest.raises(Malformed):
        provider().parse(delivery_of(document))


def test_body_that_is_not_json_raises_malformed_in_parse():
    delivery = Delivery(method="POST", url=URL, headers=Headers(), body=b"\x00 not json")

    with pytest.raises(Malformed):
        provider().parse(delivery)


def test_handshake_is_none_because_mailgun_has_none():
    assert provider().handshake(signed(event_data("delivered"))) is None


def test_missing_signing_key_is_a_config_error_naming_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_MAILGUN_WEBHOOK_SIGNING_KEY"):
        Mailgun({"MAILGUN_API_KEY": "key-api", "MAILGUN_DOMAIN": "mg.example.fi"})


def test_bad_tolerance_is_a_config_error_naming_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_MAILGUN_WEBHOOK_TOLERANCE_SECONDS"):
        provider(WEBHOOK_TOLERANCE_SECONDS="a while")


def test_webhook_settings_default_to_a_nine_hour_tolerance_and_need_no_api_key():
    settings = provider().settings

    assert settings == {
        "WEBHOOK_SIGNING_KEY": (SIGNING_KEY,),
        "WEBHOOK_TOLERANCE_SECONDS": DEFAULT_TOLERANCE_SECONDS,
    }


def test_an_api_key_alone_does_not_enable_the_webhook_endpoint():
    assert not Mailgun.is_configured({"MAILGUN_API_KEY": "key-sync-only"})


# Sync: the suppressions API, played by tests/providers/fakes/mailgun.py.


@pytest.fixture
def mailgun_api(httpserver):
    fake = FakeMailgun(httpserver, api_key="key-sync", domain="mg.yritys.fi")
    api = Mailgun.api({"API_URL": fake.url, "API_KEY": "key-sync"}, timeout=5, retries=0)
    account = Account("mailgun-fi", "mg.yritys.fi", "uutiskirje", {}, api)
    yield fake, account
    api.close()


def test_pull_reads_every_page_of_the_three_tables(mailgun_api):
    fake, account = mailgun_api
    for n in range(2100):
        fake.tables["unsubscribes"][f"p{n:04}@yritys.fi"] = {
            "address": f"p{n:04}@yritys.fi",
            "tags": ["*"],
            "created_at": "Fri, 20 Nov 2026 11:02:55 UTC",
        }
    fake.tables["bounces"]["dead@yritys.fi"] = {"address": "dead@yritys.fi", "code": "550"}
    pulled = list(Mailgun.pull(account, since=None))
    assert len(pulled) == 2101
    assert pulled[0].at == datetime(2026, 11, 20, 11, 2, 55, tzinfo=UTC)
    assert pulled[-1] == Pulled("dead@yritys.fi", "bounced")
    # Each table is read until a page comes back empty, as "paging.next" never ends.
    assert sum(method == "GET" for method, _ in fake.calls) == (3 + 1) + (1 + 1) + 1


def test_pull_keeps_list_tags_of_our_list_and_skips_other_tags(mailgun_api):
    fake, account = mailgun_api
    for address, tags in (("a@yritys.fi", ["uutiskirje"]), ("b@yritys.fi", ["kampanja-x"])):
        fake.tables["unsubscribes"][address] = {"address": address, "tags": tags}
    assert list(Mailgun.pull(account, since=None)) == [
        Pulled("a@yritys.fi", "unsubscribed", None, on_list=True)
    ]


def test_lifting_a_list_unsubscribe_removes_only_that_tag(mailgun_api):
    fake, account = mailgun_api
    fake.tables["unsubscribes"]["a@yritys.fi"] = {
        "address": "a@yritys.fi",
        "tags": ["*", "uutiskirje"],
    }
    change = Change(7, "a@yritys.fi", "unsubscribed", on_list=True, lift=True)
    assert Mailgun.push(account, [change]) == [Outcome(7, "accepted")]
    assert fake.tables["unsubscribes"]["a@yritys.fi"]["tags"] == ["*"]


def test_lifting_what_is_gone_already_is_accepted(mailgun_api):
    _, account = mailgun_api
    change = Change(8, "gone@yritys.fi", "complained", lift=True)
    assert Mailgun.push(account, [change]) == [Outcome(8, "accepted")]


def test_a_refused_batch_raises_with_mailguns_words(mailgun_api):
    _, account = mailgun_api
    with pytest.raises(ApiError, match="address is required") as raised:
        Mailgun.push(account, [Change(9, "", "unsubscribed")])
    assert not raised.value.retry
