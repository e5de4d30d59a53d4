"""SparkPost event webhooks: basic auth, msys batches, the test batch and bounce classes."""

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from suppress.config import ConfigError
from suppress.providers import sparkpost
from suppress.providers.base import Delivery, Malformed, Rejected
from suppress.providers.sparkpost import SparkPost

PAYLOADS = Path(__file__).parent / "payloads" / "sparkpost"
CREDENTIALS = "sparkpost:old-secret,sparkpost:new-secret"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def delivery(body: bytes | str, authorization: str | None = None) -> Delivery:
    headers = {"Content-Type": "application/json", "X-MessageSystems-Batch-ID": "batch-1"}
    if authorization is not None:
        headers["Authorization"] = authorization
    if isinstance(body, str):
        body = body.encode()
    return Delivery(
        "POST", "https://suppress.example.fi/webhooks/sparkpost", Headers(headers), body
    )


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def batch_of(event_class: str, **fields: Any) -> bytes:
    event = {"event_id": "84500000000000099", "timestamp": "1741079702"}
    event |= {"rcpt_to": "maija@example.com", **fields}
    return json.dumps([{"msys": {event_class: event}}]).encode()


@pytest.fixture
def provider() -> SparkPost:
    return SparkPost({"SPARKPOST_WEBHOOK_BASIC_AUTH": CREDENTIALS})


# Verification


@pytest.mark.parametrize("password", ["old-secret", "new-secret"])
def test_batch_with_either_rotated_credential_verifies(provider, password):
    provider.verify(delivery(payload("batch.json"), basic("sparkpost", password)))


def test_batch_without_credentials_is_challenged(provider):
    with pytest.raises(Rejected) as refused:
        provider.verify(delivery(payload("batch.json")))
    assert refused.value.status == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize(
    "authorization",
    [
        basic("sparkpost", "guess"),
        basic("someone", "new-secret"),
        "Basic not-base64!",
        "Bearer new-secret",
        "X-MessageSystems-Webhook-Token new-secret",
    ],
)
def test_wrong_credentials_are_rejected(provider, authorization):
    with pytest.raises(Rejected) as refused:
        provider.verify(delivery(payload("batch.json"), authorization))
    assert refused.value.status == 401


# Handshake


def test_validation_batch_is_answered_without_events(provider):
    """Webhooks "Validate a Webhook": SparkPost posts [{"msys": {}}] and wants a 200."""
    ping = delivery(payload("ping.json"), basic("sparkpost", "new-secret"))
    provider.verify(ping)
    reply = provider.handshake(ping)
    assert reply is not None
    assert reply.status == 200
    assert provider.parse(ping) == []


@pytest.mark.parametrize("body", [payload("batch.json"), b"[]", b"{}", b"not json"])
def test_anything_but_the_validation_batch_is_no_handshake(provider, body):
    assert provider.handshake(delivery(body)) is None


# Parsing


def test_batch_parses_to_one_event_per_element(provider):
    events = provider.parse(delivery(payload("batch.json")))
    assert [(e.type, e.raw_type) for e in events] == [
        ("sent", "injection"),
        ("delivered", "delivery"),
        ("bounced", "bounce"),
        ("opened", "open"),
        ("clicked", "click"),
        ("unsubscribed", "list_unsubscribe"),
        ("complained", "spam_complaint"),
    ]
    assert [e.provider_event_id for e in events] == [f"8450000000000000{n}" for n in range(1, 8)]
    assert {e.provider for e in events} == {"sparkpost"}


def test_event_fields_come_from_the_documented_attributes(provider):
    _, delivered, bounce, opened, click, unsubscribe, complaint = provider.parse(
        delivery(payload("batch.json"))
    )
    assert delivered.recipient == "Maija.Meikalainen@example.com"
    assert delivered.occurred_at == datetime(2025, 3, 4, 9, 15, 2, tzinfo=UTC)
    assert (delivered.message_id, delivered.campaign) == ("0001f2e3d4c5b6a79881", "maaliskuu-2025")
    assert delivered.ip is None
    assert (bounce.recipient, bounce.bounce_class) == ("erik@example.se", "hard")
    assert bounce.diagnostic == "550 5.1.1 <erik@example.se> User unknown"
    assert (opened.ip, opened.machine) == ("198.51.100.7", None)
    assert opened.user_agent.startswith("Mozilla/5.0 (Windows")
    assert click.url == "https://example.fi/uutiset/maaliskuu"
    assert unsubscribe.list_slug is None
    assert complaint.diagnostic == "abuse"


@pytest.mark.parametrize(
    ("event_class", "raw_type", "type_"),
    [
        ("message_event", "injection", "sent"),
        ("message_event", "delivery", "delivered"),
        ("message_event", "delay", "deferred"),
        ("message_event", "policy_rejection", "dropped"),
        ("message_event", "spam_complaint", "complained"),
        ("message_event", "sms_status", "unknown"),
        ("track_event", "initial_open", "opened"),
        ("track_event", "open", "opened"),
        ("track_event", "click", "clicked"),
        ("track_event", "amp_initial_open", "opened"),
        ("track_event", "amp_open", "opened"),
        ("track_event", "amp_click", "clicked"),
        ("gen_event", "generation_failure", "dropped"),
        ("gen_event", "generation_rejection", "dropped"),
        ("unsubscribe_event", "list_unsubscribe", "unsubscribed"),
        ("unsubscribe_event", "link_unsubscribe", "unsubscribed"),
        ("relay_event", "relay_injection", "unknown"),
        ("relay_event", "relay_rejection", "unknown"),
        ("relay_event", "relay_delivery", "unknown"),
        ("relay_event", "relay_tempfail", "unknown"),
        ("relay_event", "relay_permfail", "unknown"),
        ("ab_test_event", "ab_test_completed", "unknown"),
        ("ab_test_event", "ab_test_cancelled", "unknown"),
        ("ingest_event", "success", "unknown"),
        ("ingest_event", "error", "unknown"),
    ],
)
def test_every_sparkpost_event_type_maps_as_documented(provider, event_class, raw_type, type_):
    [event] = provider.parse(delivery(batch_of(event_class, type=raw_type)))
    assert (event.type, event.raw_type, event.bounce_class) == (type_, raw_type, None)


def test_table_covers_every_type_sparkpost_documents():
    covered = {
        "injection", "delivery", "delay", "bounce", "out_of_band", "policy_rejection",
        "spam_complaint", "sms_status", "initial_open", "open", "click", "amp_initial_open",
        "amp_open", "amp_click", "generation_failure", "generation_rejection",
        "list_unsubscribe", "link_unsubscribe", "relay_injection", "relay_rejection",
        "relay_delivery", "relay_tempfail", "relay_permfail", "ab_test_completed",
        "ab_test_cancelled", "success", "error",
    }  # fmt: skip
    assert set(sparkpost.EVENT_TYPES) == covered


@pytest.mark.parametrize(
    ("code", "type_", "bounce_class"),
    [
        ("1", "bounced", "soft"),
        ("10", "bounced", "hard"),
        ("20", "bounced", "soft"),
        ("21", "bounced", "soft"),
        ("22", "bounced", "soft"),
        ("23", "bounced", "soft"),
        ("24", "bounced", "soft"),
        ("25", "dropped", None),
        ("26", "dropped", None),
        ("30", "bounced", "hard"),
        ("40", "bounced", "soft"),
        ("50", "bounced", "soft"),
        ("51", "bounced", "soft"),
        ("52", "bounced", "soft"),
        ("53", "bounced", "soft"),
        ("54", "bounced", "soft"),
        ("60", "bounced", "soft"),
        ("70", "bounced", "soft"),
        ("80", "unknown", None),
        ("90", "unsubscribed", None),
        ("100", "bounced", "soft"),
        ("999", "bounced", "soft"),
        (None, "bounced", "soft"),
    ],
)
@pytest.mark.parametrize("raw_type", ["bounce", "out_of_band"])
def test_bounce_class_decides_hard_soft_or_other(provider, raw_type, code, type_, bounce_class):
    """R-MBP-6: block classes (50-54) name the sender's reputation, so they are never hard."""
    fields = {"type": raw_type} if code is None else {"type": raw_type, "bounce_class": code}
    [event] = provider.parse(delivery(batch_of("message_event", **fields)))
    assert (event.type, event.bounce_class) == (type_, bounce_class)


def test_relay_event_names_no_recipient(provider):
    body = batch_of("relay_event", type="relay_delivery", rcpt_to="inbound@relay.example.fi")
    [event] = provider.parse(delivery(body))
    assert event.recipient is None


def test_unknown_event_type_is_kept_as_unknown(provider):
    [event] = provider.parse(delivery(batch_of("future_event", type="teleport")))
    assert (event.type, event.raw_type, event.recipient) == ("unknown", "teleport", None)


def test_validation_elements_inside_a_real_batch_are_skipped(provider):
    events = json.loads(batch_of("message_event", type="delivery"))
    body = json.dumps([{"msys": {}}, *events]).encode()
    assert [e.type for e in provider.parse(delivery(body))] == ["delivered"]


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("1741079702", datetime(2025, 3, 4, 9, 15, 2, tzinfo=UTC)),
        (1741079702, datetime(2025, 3, 4, 9, 15, 2, tzinfo=UTC)),
        ("2025-03-04T09:15:02.000+00:00", datetime(2025, 3, 4, 9, 15, 2, tzinfo=UTC)),
    ],
)
def test_timestamp_in_seconds_or_iso_8601_is_read_as_utc(provider, timestamp, expected):
    [event] = provider.parse(
        delivery(batch_of("message_event", type="delivery", timestamp=timestamp))
    )
    assert event.occurred_at == expected


def test_event_without_event_id_gets_a_stable_synthetic_id(provider):
    """PROVIDERS.md §0 Deduplication: a retried batch must produce the same id."""
    body = json.dumps(
        [{"msys": {"ab_test_event": {"type": "ab_test_completed", "timestamp": "1"}}}]
    )
    [first] = provider.parse(delivery(body))
    [again] = provider.parse(delivery(body))
    assert first.provider_event_id == again.provider_event_id
    assert len(first.provider_event_id) == 64


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"msys": {}}',
        b"[1]",
        b'[{"nomsys": {}}]',
        b'[{"msys": []}]',
        b'[{"msys": {"message_event": {}, "track_event": {}}}]',
        b'[{"msys": {"message_event": "delivery"}}]',
        b'[{"msys": {"message_event": {"event_id": "1", "timestamp": "1741079702"}}}]',
        b'[{"msys": {"message_event": {"type": "delivery", "event_id": "1"}}}]',
        b'[{"msys": {"message_event": {"type": "delivery", "timestamp": "yesterday"}}}]',
        b'[{"msys": {"message_event": {"type": "delivery", "timestamp": true}}}]',
    ],
)
def test_body_that_is_not_a_documented_batch_is_malformed(provider, body):
    with pytest.raises(Malformed):
        provider.parse(delivery(body))


# Configuration


def test_basic_auth_is_required():
    with pytest.raises(ConfigError, match="SUPPRESS_SPARKPOST_WEBHOOK_BASIC_AUTH"):
        SparkPost({"SPARKPOST_API_KEY": "key"})


def test_basic_auth_must_be_user_colon_password():
    with pytest.raises(ConfigError, match="SUPPRESS_SPARKPOST_WEBHOOK_BASIC_AUTH"):
        SparkPost({"SPARKPOST_WEBHOOK_BASIC_AUTH": "only-a-password"})


def test_api_settings_have_their_documented_defaults(provider):
    assert provider.settings["API_URL"] == "https://api.sparkpost.com/api/v1"
    assert provider.settings["API_KEY"] is None
