"""SparkPost event webhooks: basic auth, msys batches, the test batch and bounce classes."""

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from suppress import suppressions, sync
from suppress.config import ConfigError
from suppress.models import db
from suppress.providers import sparkpost
from suppress.providers.api import ApiError
from suppress.providers.delivery import Delivery, Malformed, Rejected
from suppress.providers.sparkpost import SparkPost
from suppress.providers.syncing import Account, Change
from tests.providers.fakes.sparkpost import FakeSparkPost

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


def test_delivery_and_complaint_name_the_from_header_as_sender(provider):
    """R-MBP-4: complaint rates are counted per sending domain."""
    events = provider.parse(delivery(payload("batch.json")))
    senders = {e.type: e.sender for e in events}
    assert senders["delivered"] == senders["complained"] == "news@example.fi"


@pytest.mark.parametrize(
    ("fields", "sender"),
    [
        ({"msg_from": "bounces@mail.example.fi"}, "bounces@mail.example.fi"),
        ({"friendly_from": "", "msg_from": "bounces@mail.example.fi"}, "bounces@mail.example.fi"),
        ({"friendly_from": 7, "msg_from": {"odd": True}}, None),
        ({}, None),
    ],
)
def test_sender_falls_back_to_the_envelope_and_never_fails(provider, fields, sender):
    body = batch_of("message_event", type="delivery", **fields)
    [event] = provider.parse(delivery(body))
    assert event.sender == sender


def test_relay_event_names_no_sender(provider):
    body = batch_of("relay_event", type="relay_delivery", msg_from="someone@example.org")
    [event] = provider.parse(delivery(body))
    assert event.sender is None


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


def test_the_webhook_reads_no_api_settings_and_an_api_key_alone_enables_nothing(provider):
    assert set(provider.settings) == {"WEBHOOK_BASIC_AUTH"}
    assert not SparkPost.is_configured({"SPARKPOST_API_KEY": "sync-only-key"})


# Sync: the Suppression List API played by FakeSparkPost.

API_KEY = "14ac5499cfdd2bb2859e4476d2e5b1d2bad079bf"


@pytest.fixture
def sparkpost_api(httpserver) -> FakeSparkPost:
    return FakeSparkPost(httpserver, api_key=API_KEY)


def account(fake: FakeSparkPost, target: str | None = None, key: str = API_KEY) -> Account:
    settings = {"API_KEY": key, "API_URL": f"{fake.url}/api/v1"}
    return Account(
        "sparkpost", target, None, settings, SparkPost.api(settings, timeout=5, retries=0)
    )


def statuses(outcomes: list) -> list[str]:
    return [outcome.status for outcome in outcomes]


@pytest.mark.parametrize(
    ("reason", "types"),
    [
        ("unsubscribed", {"non_transactional"}),
        ("objected", {"non_transactional"}),
        ("manual", {"non_transactional"}),
        ("soft_bounced", {"non_transactional"}),
        ("bounced", {"transactional", "non_transactional"}),
        ("complained", {"transactional", "non_transactional"}),
    ],
)
def test_each_reason_is_suppressed_for_the_types_it_stops(sparkpost_api, reason, types):
    """Team rule: unsubscribes stop marketing mail; hard bounces and complaints all mail."""
    (outcome,) = SparkPost.push(account(sparkpost_api), [Change(1, "matti@yritys.fi", reason)])
    assert outcome.status == "accepted"
    assert sparkpost_api.entries() == {"matti@yritys.fi": types}


def test_a_full_batch_is_one_call_within_the_ten_thousand_entry_limit(sparkpost_api):
    """5,000 complaints are 10,000 entries: one PUT, at the documented maximum."""
    changes = [Change(n, f"h{n}@yritys.fi", "complained") for n in range(SparkPost.PUSH_BATCH)]
    assert set(statuses(SparkPost.push(account(sparkpost_api), changes))) == {"accepted"}
    assert sparkpost_api.pushes() == 1
    assert len(sparkpost_api.lists["0"]) == 10_000


def test_a_destination_s_target_is_the_subaccount_whose_list_it_fills(sparkpost_api):
    change = Change(1, "lukija@yritys.fi", "unsubscribed", on_list=True)
    SparkPost.push(account(sparkpost_api, target="146"), [change])
    assert sparkpost_api.entries("146") == {"lukija@yritys.fi": {"non_transactional"}}
    assert sparkpost_api.entries() == {}


def test_pushing_again_what_sparkpost_holds_is_accepted(sparkpost_api):
    changes = [Change(1, "kahdesti@yritys.fi", "bounced")]
    SparkPost.push(account(sparkpost_api), changes)
    assert statuses(SparkPost.push(account(sparkpost_api), changes)) == ["accepted"]
    assert len(sparkpost_api.lists["0"]) == 2


def test_recipients_sparkpost_calls_invalid_are_refused_and_the_rest_pushed(sparkpost_api):
    sparkpost_api.invalid.add("huono@yritys.fi")
    changes = [Change(1, "huono@yritys.fi", "bounced"), Change(2, "hyva@yritys.fi", "bounced")]
    refusal, accepted = SparkPost.push(account(sparkpost_api), changes)
    assert refusal.status == "refused"
    assert "invalid or malformed recipient(s): huono@yritys.fi" in refusal.detail
    assert accepted.status == "accepted"
    assert set(sparkpost_api.entries()) == {"hyva@yritys.fi"}


def test_a_lift_deletes_only_the_type_that_was_pushed(sparkpost_api):
    sparkpost_api.lists["0"][("palaaja@yritys.fi", "transactional")] = {
        "recipient": "palaaja@yritys.fi",
        "type": "transactional",
        "source": "Bounce Rule",
        "updated": "2026-01-01T10:00:00+00:00",
    }
    SparkPost.push(account(sparkpost_api), [Change(1, "palaaja@yritys.fi", "unsubscribed")])
    lift = Change(2, "palaaja@yritys.fi", "unsubscribed", lift=True)
    assert statuses(SparkPost.push(account(sparkpost_api), [lift])) == ["accepted"]
    assert sparkpost_api.entries() == {"palaaja@yritys.fi": {"transactional"}}


def test_a_lift_of_an_entry_already_gone_is_accepted(sparkpost_api):
    lift = Change(1, "poissa@yritys.fi", "bounced", lift=True)
    assert statuses(SparkPost.push(account(sparkpost_api), [lift])) == ["accepted"]


def test_a_lift_of_a_compliance_entry_is_refused_with_sparkposts_words(sparkpost_api):
    SparkPost.push(account(sparkpost_api), [Change(1, "pysyva@yritys.fi", "complained")])
    sparkpost_api.compliance.add("pysyva@yritys.fi")
    lift = Change(2, "pysyva@yritys.fi", "complained", lift=True)
    (outcome,) = SparkPost.push(account(sparkpost_api), [lift])
    assert (outcome.status, outcome.detail) == (
        "refused",
        "Recipient could not be removed - Compliance",
    )


def test_a_wrong_api_key_is_a_fatal_api_error(sparkpost_api):
    with pytest.raises(ApiError) as raised:
        SparkPost.push(account(sparkpost_api, key="wrong"), [Change(1, "a@yritys.fi", "bounced")])
    assert (raised.value.status, raised.value.fatal) == (401, True)


def test_a_failed_lift_does_not_name_the_address_the_sync_job_logs(sparkpost_api):
    sparkpost_api.fail_next(503)
    with pytest.raises(ApiError) as raised:
        SparkPost.push(account(sparkpost_api), [Change(1, "matti@yritys.fi", "bounced", lift=True)])
    assert "matti" not in str(raised.value)


def test_pull_follows_the_cursor_until_a_page_comes_back_empty(sparkpost_api):
    changes = [Change(n, f"h{n:05}@yritys.fi", "complained") for n in range(5000)]
    SparkPost.push(account(sparkpost_api), changes)
    SparkPost.push(account(sparkpost_api), [Change(9, "lahtija@yritys.fi", "unsubscribed")])
    pulled = list(SparkPost.pull(account(sparkpost_api), None))
    assert len(pulled) == 10_001
    assert sparkpost_api.calls.count(("GET", "/api/v1/suppression-list")) == 3


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("Spam Complaint", "complained"),
        ("Bounce Rule", "bounced"),
        ("List Unsubscribe", "unsubscribed"),
        ("Unsubscribe Link", "unsubscribed"),
        ("Manually Added", "manual"),
        ("Compliance", "manual"),
    ],
)
def test_pull_reads_each_source_as_our_nearest_reason(sparkpost_api, source, reason):
    sparkpost_api.lists["0"][("x@yritys.fi", "non_transactional")] = {
        "recipient": "x@yritys.fi",
        "type": "non_transactional",
        "source": source,
        "updated": "2026-01-01T10:00:00+00:00",
    }
    (entry,) = SparkPost.pull(account(sparkpost_api), None)
    assert (entry.email, entry.reason) == ("x@yritys.fi", reason)
    assert entry.at == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_pull_since_a_moment_reads_only_entries_updated_after_it(sparkpost_api):
    for address, updated in (("vanha@yritys.fi", "2026-01-01"), ("uusi@yritys.fi", "2026-01-03")):
        sparkpost_api.lists["0"][(address, "transactional")] = {
            "recipient": address,
            "type": "transactional",
            "source": "Bounce Rule",
            "updated": f"{updated}T00:00:00+00:00",
        }
    since = datetime(2026, 1, 2, tzinfo=UTC)
    assert [e.email for e in SparkPost.pull(account(sparkpost_api), since)] == ["uusi@yritys.fi"]


def test_a_sync_pass_pushes_and_lifts_through_a_sparkpost_destination(
    app, sparkpost_api, monkeypatch
):
    monkeypatch.setitem(app.config, "SPARKPOST_API_KEY", API_KEY)
    monkeypatch.setitem(app.config, "SPARKPOST_API_URL", f"{sparkpost_api.url}/api/v1")
    sync.add_destination("sparkpost", "sparkpost")
    for address, reason in (
        ("kuollut@yritys.fi", "bounced"),
        ("lahtija@yritys.fi", "unsubscribed"),
    ):
        suppressions.suppress(address, reason=reason, source="test", actor="test")
    db.session.commit()
    (report,) = sync.run()
    assert (report.accepted, report.error) == (2, None)
    assert sparkpost_api.entries() == {
        "kuollut@yritys.fi": {"transactional", "non_transactional"},
        "lahtija@yritys.fi": {"non_transactional"},
    }
    suppressions.lift("lahtija@yritys.fi", actor="test")
    db.session.commit()
    (report,) = sync.run()
    assert report.lifted == 1
    assert set(sparkpost_api.entries()) == {"kuollut@yritys.fi"}
