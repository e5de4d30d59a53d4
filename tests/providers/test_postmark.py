"""Postmark: webhooks (basic auth and/or a secret header, one JSON record per POST), then the
sync job's pushes and pulls against Postmark's Suppressions API played on 127.0.0.1."""

import base64
import functools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from suppress import suppressions, sync
from suppress.config import ConfigError
from suppress.lists import create_list
from suppress.models import REASONS as MODEL_REASONS
from suppress.models import db
from suppress.providers.api import ApiError
from suppress.providers.delivery import Delivery, Malformed, Rejected
from suppress.providers.postmark import (
    BOUNCE_TYPES,
    MAX_SUPPRESSIONS_PER_CALL,
    RECORD_TYPES,
    Postmark,
)
from suppress.providers.syncing import ACCEPTED, REFUSED, Change
from tests.providers.fakes.postmark import INVALID, NO_AUTHORITY, FakePostmark

PAYLOADS = Path(__file__).parent / "payloads" / "postmark"
URL = "https://suppress.example.com/webhooks/postmark"
CONFIG = {"POSTMARK_WEBHOOK_BASIC_AUTH": "postmark:s3cret"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


GOOD_AUTH = {"Authorization": basic("postmark", "s3cret")}


def payload(name: str, **changes: Any) -> dict[str, Any]:
    record = json.loads((PAYLOADS / name).read_text())
    record.update(changes)
    return record


def without(name: str, key: str) -> dict[str, Any]:
    return {field: value for field, value in payload(name).items() if field != key}


def delivery(body: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> Delivery:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(
        method="POST",
        url=URL,
        headers=Headers(GOOD_AUTH if headers is None else headers),
        body=raw,
        remote_addr="203.0.113.5",
    )


def parse_one(record: dict[str, Any], config: dict[str, str] = CONFIG):
    (event,) = Postmark(config).parse(delivery(record))
    return event


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sample", "kind", "bounce_class", "recipient"),
    [
        ("delivery.json", "delivered", None, "anna@example.com"),
        ("bounce.json", "bounced", "hard", "gone@example.org"),
        ("spam_complaint.json", "complained", None, "annoyed@example.net"),
        ("open.json", "opened", None, "anna@example.com"),
        ("click.json", "clicked", None, "anna@example.com"),
        ("subscription_change.json", "unsubscribed", None, "leaving@example.com"),
        ("reactivation.json", "resubscribed", None, "back@example.com"),
        ("test_bounce.json", "bounced", "hard", "john@example.com"),
    ],
)
def test_authenticated_sample_verifies_and_parses_to_one_event(
    sample, kind, bounce_class, recipient
):
    """Each documented record shape, the dashboard's test bounce included, is one event."""
    provider = Postmark(CONFIG)
    request = delivery(payload(sample))

    provider.verify(request)
    (event,) = provider.parse(request)

    assert (event.provider, event.type, event.bounce_class) == ("postmark", kind, bounce_class)
    assert event.recipient == recipient


@pytest.mark.parametrize(
    ("sample", "occurred_at"),
    [
        ("delivery.json", utc(2024, 3, 5, 16, 33, 54, 907025)),
        ("bounce.json", utc(2024, 3, 5, 16, 28, 10, 273539)),
        ("spam_complaint.json", utc(2024, 3, 6, 8, 0, 0, 123456)),
        ("open.json", utc(2024, 3, 5, 17, 2, 11)),
        ("click.json", utc(2024, 3, 5, 17, 3, 40, 500000)),
        ("subscription_change.json", utc(2024, 3, 7, 10, 53, 34, 416071)),
        ("reactivation.json", utc(2024, 3, 8, 9)),
    ],
)
def test_event_time_is_the_records_own_time_in_utc(sample, occurred_at):
    """BouncedAt, DeliveredAt, ReceivedAt or ChangedAt, whatever offset Postmark wrote."""
    assert parse_one(payload(sample)).occurred_at == occurred_at


@pytest.mark.parametrize(
    ("sample", "event_id"),
    [
        ("bounce.json", "4323372036854775807"),
        ("spam_complaint.json", "987654321"),
        ("test_bounce.json", "42"),
    ],
)
def test_bounce_records_keep_postmarks_own_id(sample, event_id):
    assert parse_one(payload(sample)).provider_event_id == event_id


def test_bounce_keeps_the_smtp_reply_message_and_tag():
    event = parse_one(payload("bounce.json"))

    assert event.raw_type == "HardBounce"
    assert event.diagnostic.startswith("smtp;550 5.1.1")
    assert event.message_id == "2c1b3e8f-6a0f-4f0e-9d52-4c3b8f0e3a11"
    assert event.campaign == "invoice"


def test_bounce_without_details_falls_back_to_the_type_description():
    event = parse_one(payload("bounce.json", Details=""))

    assert event.diagnostic.startswith("The server was unable to deliver")


def test_open_and_click_carry_address_agent_and_link_but_no_machine_verdict():
    """Postmark documents no machine-open flag, so the shared heuristic decides later."""
    opened = parse_one(payload("open.json"))
    clicked = parse_one(payload("click.json"))

    assert (opened.ip, opened.user_agent.startswith("Mozilla/5.0")) == ("192.0.2.10", True)
    assert clicked.url == "https://example.com/spring-sale"
    assert clicked.ip == "198.51.100.7"
    assert opened.machine is None
    assert clicked.machine is None


@pytest.mark.parametrize(
    ("sample", "sender"),
    [
        ("spam_complaint.json", "news@example.com"),
        ("bounce.json", "billing@example.com"),
        ("delivery.json", None),
        ("open.json", None),
        ("subscription_change.json", None),
    ],
)
def test_sender_is_the_from_only_bounce_and_complaint_records_carry(sample, sender):
    """R-MBP-4: complaint rates are counted per sending domain; Postmark's delivery webhook
    names no sender."""
    assert parse_one(payload(sample)).sender == sender


@pytest.mark.parametrize("value", [None, "", 42, ["news@example.com"], {"Email": "x@y.z"}])
def test_a_from_that_is_not_text_is_no_sender(value):
    assert parse_one(payload("spam_complaint.json", From=value)).sender is None


def test_subscription_change_names_its_message_stream():
    """Postmark's suppressions are per message stream."""
    event = parse_one(payload("subscription_change.json"))

    assert event.list_ref == "broadcast"
    assert event.raw_type == "SubscriptionChange"


@pytest.mark.parametrize(
    ("reason", "kind", "bounce_class"),
    [
        ("ManualSuppression", "unsubscribed", None),
        ("HardBounce", "bounced", "hard"),
        ("SpamComplaint", "complained", None),
        ("SomeReasonAddedLater", "unsubscribed", None),
        (None, "unsubscribed", None),
    ],
)
def test_suppressing_subscription_change_is_read_by_its_reason(reason, kind, bounce_class):
    event = parse_one(payload("subscription_change.json", SuppressionReason=reason))

    assert (event.type, event.bounce_class) == (kind, bounce_class)


def test_reactivation_is_a_resubscribe_whatever_the_reason_field_says():
    event = parse_one(payload("reactivation.json", SuppressionReason="HardBounce"))

    assert event.type == "resubscribed"


# Postmark's bounce-type table (developer/api/bounce-api "Bounce types"), read as a spec.
DOCUMENTED_BOUNCE_TYPES = {
    "HardBounce": ("bounced", "hard"),
    "Transient": ("bounced", "soft"),
    "Unsubscribe": ("unsubscribed", None),
    "Subscribe": ("unknown", None),
    "AutoResponder": ("unknown", None),
    "AddressChange": ("unknown", None),
    "DnsError": ("bounced", "soft"),
    "SpamNotification": ("bounced", "soft"),
    "OpenRelayTest": ("unknown", None),
    "Unknown": ("unknown", None),
    "SoftBounce": ("bounced", "soft"),
    "VirusNotification": ("bounced", "soft"),
    "ChallengeVerification": ("unknown", None),
    "BadEmailAddress": ("bounced", "hard"),
    "SpamComplaint": ("complained", None),
    "ManuallyDeactivated": ("dropped", None),
    "Unconfirmed": ("dropped", None),
    "Blocked": ("bounced", "soft"),
    "SMTPApiError": ("unknown", None),
    "InboundError": ("unknown", None),
    "DMARCPolicy": ("bounced", "soft"),
    "TemplateRenderingFailed": ("unknown", None),
}


def test_every_documented_bounce_type_is_in_the_table():
    assert set(BOUNCE_TYPES) == set(DOCUMENTED_BOUNCE_TYPES)


@pytest.mark.parametrize(("bounce_type", "expected"), DOCUMENTED_BOUNCE_TYPES.items())
def test_bounce_type_maps_as_intended(bounce_type, expected):
    event = parse_one(payload("bounce.json", Type=bounce_type))

    assert (event.type, event.bounce_class) == expected
    assert event.raw_type == bounce_type


@pytest.mark.parametrize(
    ("record_type", "sample", "kind"),
    [
        ("Delivery", "delivery.json", "delivered"),
        ("SpamComplaint", "spam_complaint.json", "complained"),
        ("Open", "open.json", "opened"),
        ("Click", "click.json", "clicked"),
    ],
)
def test_record_type_maps_as_intended(record_type, sample, kind):
    assert RECORD_TYPES[record_type] == kind
    assert parse_one(payload(sample)).type == kind


@pytest.mark.parametrize("bounce_type", ["Blocked", "DMARCPolicy", "SpamNotification"])
def test_sender_side_rejections_are_never_hard_bounces(bounce_type):
    """R-MBP-6: a block of our domain is not the recipient's fault; the SMTP text goes along so
    events.py can recognise the policy code."""
    details = "smtp;550 5.7.26 Unauthenticated email from example.com is not accepted"
    event = parse_one(payload("bounce.json", Type=bounce_type, Details=details))

    assert event.bounce_class != "hard"
    assert event.diagnostic == details


def test_unknown_record_type_parses_to_unknown():
    record = {
        "RecordType": "SomethingNew",
        "Recipient": "anna@example.com",
        "ReceivedAt": "2024-03-05T17:02:11Z",
    }

    event = parse_one(record)

    assert (event.type, event.raw_type) == ("unknown", "SomethingNew")
    assert event.recipient == "anna@example.com"


def test_unknown_bounce_type_parses_to_unknown():
    assert parse_one(payload("bounce.json", Type="QuantumBounce")).type == "unknown"


def test_a_repeated_delivery_gets_the_same_event_id():
    provider = Postmark(CONFIG)

    for sample in ("bounce.json", "delivery.json", "open.json", "subscription_change.json"):
        first = provider.parse(delivery(payload(sample)))
        again = provider.parse(delivery(payload(sample)))
        assert first[0].provider_event_id == again[0].provider_event_id


@pytest.mark.parametrize(
    ("sample", "changes"),
    [
        ("bounce.json", {"ID": 4323372036854775808}),
        ("delivery.json", {"Recipient": "other@example.com"}),
        ("open.json", {"ReceivedAt": "2024-03-05T18:00:00Z"}),
        ("subscription_change.json", {"ChangedAt": "2024-03-07T11:00:00Z"}),
    ],
)
def test_two_different_events_get_different_ids(sample, changes):
    provider = Postmark(CONFIG)

    one = provider.parse(delivery(payload(sample)))[0]
    other = provider.parse(delivery(payload(sample, **changes)))[0]

    assert one.provider_event_id != other.provider_event_id


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": basic("postmark", "wrong")},
        {"Authorization": basic("someone", "s3cret")},
        {"Authorization": "Bearer s3cret"},
        {"Authorization": "Basic not-base64!"},
    ],
    ids=["missing", "wrong-password", "wrong-user", "other-scheme", "garbled"],
)
def test_missing_or_wrong_credentials_are_refused_with_401(headers):
    """401, not 403: a 403 makes Postmark stop retrying, losing events to a typo."""
    with pytest.raises(Rejected) as refused:
        Postmark(CONFIG).verify(delivery(payload("delivery.json"), headers))

    assert refused.value.status == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Basic")


def test_every_rotated_credential_verifies():
    provider = Postmark({"POSTMARK_WEBHOOK_BASIC_AUTH": "postmark:old, postmark:new"})

    for password in ("old", "new"):
        provider.verify(
            delivery(payload("delivery.json"), {"Authorization": basic("postmark", password)})
        )


HEADER_CONFIG = {"POSTMARK_WEBHOOK_HEADER": "X-Suppress-Token: t0ken-1, X-Suppress-Token: t0ken-2"}


@pytest.mark.parametrize("token", ["t0ken-1", "t0ken-2"])
def test_secret_header_verifies(token):
    Postmark(HEADER_CONFIG).verify(delivery(payload("delivery.json"), {"x-suppress-token": token}))


@pytest.mark.parametrize("headers", [{}, {"X-Suppress-Token": "t0ken-3"}], ids=["missing", "wrong"])
def test_missing_or_wrong_secret_header_is_refused_with_401(headers):
    with pytest.raises(Rejected) as refused:
        Postmark(HEADER_CONFIG).verify(delivery(payload("delivery.json"), headers))

    assert refused.value.status == 401


def test_with_both_configured_both_are_required():
    provider = Postmark({**CONFIG, **HEADER_CONFIG})
    both = {**GOOD_AUTH, "X-Suppress-Token": "t0ken-1"}

    provider.verify(delivery(payload("delivery.json"), both))
    for partial in (GOOD_AUTH, {"X-Suppress-Token": "t0ken-1"}):
        with pytest.raises(Rejected):
            provider.verify(delivery(payload("delivery.json"), partial))


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        json.dumps([payload("delivery.json")]).encode(),
        json.dumps(without("delivery.json", "RecordType")).encode(),
        json.dumps(payload("delivery.json", Recipient="")).encode(),
        json.dumps(payload("delivery.json", DeliveredAt="yesterday")).encode(),
        json.dumps(payload("bounce.json", ID=None)).encode(),
        json.dumps(payload("bounce.json", ID=True)).encode(),
        json.dumps(payload("bounce.json", Type=None)).encode(),
        json.dumps(payload("bounce.json", Email=None)).encode(),
        json.dumps(payload("subscription_change.json", SuppressSending="yes")).encode(),
        json.dumps({"RecordType": "SomethingNew", "Recipient": "a@example.com"}).encode(),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "array",
        "no-record-type",
        "empty-recipient",
        "bad-time",
        "bounce-without-id",
        "bounce-id-not-a-number",
        "bounce-without-type",
        "bounce-without-email",
        "suppress-sending-not-bool",
        "unknown-record-without-time",
    ],
)
def test_malformed_body_is_refused(body):
    with pytest.raises(Malformed):
        Postmark(CONFIG).parse(delivery(body))


def test_enabling_without_any_credential_names_both_variables():
    with pytest.raises(ConfigError) as error:
        Postmark({"POSTMARK_API_KEY": "server-token"})

    assert "SUPPRESS_POSTMARK_WEBHOOK_BASIC_AUTH" in str(error.value)
    assert "SUPPRESS_POSTMARK_WEBHOOK_HEADER" in str(error.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("WEBHOOK_BASIC_AUTH", "no-colon"),
        ("WEBHOOK_HEADER", "X-Token"),
        ("WEBHOOK_HEADER", "Bad Name: secret"),
    ],
)
def test_bad_setting_names_its_variable(key, value):
    with pytest.raises(ConfigError, match=f"SUPPRESS_POSTMARK_{key}"):
        Postmark({**CONFIG, f"POSTMARK_{key}": value})


def test_an_api_key_alone_does_not_enable_the_webhook_endpoint():
    assert not Postmark.is_configured({"POSTMARK_API_KEY": "server-token"})


# Sync: the Suppressions API

TOKEN = "postmark-server-token-0123"
STREAM = "uutiskirje-stream"
# An erased address is never pushed: the planner refuses it, as it is no longer known.
REASONS = [reason for reason in MODEL_REASONS if reason != "erased"]


@pytest.fixture
def postmark(httpserver):
    return FakePostmark(httpserver, token=TOKEN, streams=("broadcast", STREAM))


@pytest.fixture
def account(account_of, postmark):
    return functools.partial(account_of, "postmark", postmark.url, api_key=TOKEN)


def change(key, email, reason="unsubscribed", **flags):
    return Change(key=key, email=email, reason=reason, **flags)


def statuses(outcomes):
    return {outcome.key: outcome.status for outcome in outcomes}


def test_sync_a_destination_without_a_target_syncs_the_broadcast_stream(postmark, account):
    assert account().target == "broadcast"


@pytest.mark.parametrize("reason", REASONS)
def test_sync_every_reason_is_pushed_as_a_manual_suppression(postmark, account, reason):
    """The Suppressions API records no other kind: Customer-made ManualSuppression."""
    outcomes = Postmark.push(account(STREAM), [change(1, "matti@yritys.fi", reason)])

    assert statuses(outcomes) == {1: ACCEPTED}
    held = postmark.streams[STREAM]["matti@yritys.fi"]
    assert (held["SuppressionReason"], held["Origin"]) == ("ManualSuppression", "Customer")


def test_sync_a_list_suppression_goes_to_the_destination_s_stream(postmark, account):
    changes = [change(1, "lukija@yritys.fi", on_list=True), change(2, "kaikki@yritys.fi")]

    outcomes = Postmark.push(account(STREAM, "uutiskirje"), changes)

    assert statuses(outcomes) == {1: ACCEPTED, 2: ACCEPTED}
    assert set(postmark.streams[STREAM]) == {"lukija@yritys.fi", "kaikki@yritys.fi"}
    assert postmark.streams["broadcast"] == {}


def test_sync_pushing_again_what_postmark_holds_is_accepted(postmark, account):
    postmark.suppress(STREAM, "valittaja@yritys.fi", "SpamComplaint", "Recipient", "2026-01-01")
    changes = [change(1, "matti@yritys.fi"), change(2, "valittaja@yritys.fi", "complained")]
    Postmark.push(account(STREAM), changes[:1])

    outcomes = Postmark.push(account(STREAM), changes)

    assert statuses(outcomes) == {1: ACCEPTED, 2: ACCEPTED}
    assert NO_AUTHORITY in outcomes[1].detail


def test_sync_an_address_postmark_finds_invalid_is_refused_in_its_words(postmark, account):
    changes = [change(1, "matti@yritys.fi"), change(2, "rikki@localhost")]

    outcomes = Postmark.push(account(STREAM), changes)

    assert statuses(outcomes) == {1: ACCEPTED, 2: REFUSED}
    assert outcomes[1].detail == INVALID


def test_sync_lifts_delete_and_a_complaint_postmark_keeps_is_refused(postmark, account):
    Postmark.push(account(STREAM), [change(1, "palaaja@yritys.fi")])
    postmark.suppress(STREAM, "valittaja@yritys.fi", "SpamComplaint", "Recipient", "2026-01-01")
    lifts = [
        change(1, "palaaja@yritys.fi", lift=True),
        change(2, "valittaja@yritys.fi", "complained", lift=True),
        change(3, "jo-poissa@yritys.fi", lift=True),
    ]

    outcomes = Postmark.push(account(STREAM), lifts)

    assert statuses(outcomes) == {1: ACCEPTED, 2: REFUSED, 3: ACCEPTED}
    assert outcomes[1].detail == NO_AUTHORITY
    assert set(postmark.streams[STREAM]) == {"valittaja@yritys.fi"}


def test_sync_an_address_postmark_leaves_out_of_its_answer_stays_unsettled(postmark, account):
    postmark.fail_next(200, body={"Suppressions": []})

    assert Postmark.push(account(STREAM), [change(1, "matti@yritys.fi")]) == []


def test_sync_a_wrong_server_token_is_a_fatal_api_error(postmark, account):
    with pytest.raises(ApiError, match="HTTP 401") as error:
        Postmark.push(account(STREAM, api_key="wrong"), [change(1, "matti@yritys.fi")])

    assert error.value.fatal


def test_sync_a_stream_postmark_lacks_stops_the_push_with_its_words(postmark, account):
    with pytest.raises(ApiError, match="message stream for the provided 'ID' was not found"):
        Postmark.push(account("ei-ole"), [change(1, "matti@yritys.fi")])


def test_sync_pull_reads_the_whole_stream_and_maps_its_reasons(postmark, account):
    added = "2026-01-01T10:00:00-05:00"
    postmark.suppress(STREAM, "kuollut@yritys.fi", "HardBounce", "Recipient", added)
    postmark.suppress(STREAM, "valittaja@yritys.fi", "SpamComplaint", "Recipient", added)
    postmark.suppress(STREAM, "lahtija@yritys.fi", "ManualSuppression", "Recipient", added)
    postmark.suppress(STREAM, "lisatty@yritys.fi", "ManualSuppression", "Customer", "huomenna")
    postmark.suppress(STREAM, "", "HardBounce", "Recipient", added)

    pulled = list(Postmark.pull(account(STREAM, "uutiskirje"), None))

    assert {(e.email, e.reason, e.on_list) for e in pulled} == {
        ("kuollut@yritys.fi", "bounced", False),
        ("valittaja@yritys.fi", "complained", False),
        ("lahtija@yritys.fi", "unsubscribed", True),
        ("lisatty@yritys.fi", "manual", True),
    }
    assert utc(2026, 1, 1, 15, 0) in {e.at for e in pulled}
    assert postmark.calls == [("GET", f"/message-streams/{STREAM}/suppressions/dump")]


def test_sync_pull_since_the_last_pull_asks_from_that_day_on(postmark, account):
    postmark.suppress(STREAM, "vanha@yritys.fi", "HardBounce", "Recipient", "2026-01-01T10:00:00Z")
    postmark.suppress(STREAM, "uusi@yritys.fi", "HardBounce", "Recipient", "2026-01-02T10:00:00Z")

    pulled = list(Postmark.pull(account(STREAM), utc(2026, 1, 2, 9, 0)))

    assert [entry.email for entry in pulled] == ["uusi@yritys.fi"]


def test_sync_run_pushes_a_destination_s_suppressions_in_full_batches(app, postmark, monkeypatch):
    monkeypatch.setitem(app.config, "POSTMARK_API_KEY", TOKEN)
    monkeypatch.setitem(app.config, "POSTMARK_API_URL", postmark.url)
    create_list("uutiskirje", name="Uutiskirje")
    sync.add_destination("postmark-fi", "postmark", target=STREAM, list_slug="uutiskirje")
    total = MAX_SUPPRESSIONS_PER_CALL * 2 + 20
    for n in range(total):
        suppressions.suppress(f"p{n}@yritys.fi", reason="bounced", source="test", actor="test")
    suppressions.suppress(
        "lukija@yritys.fi", reason="unsubscribed", scope="uutiskirje", source="test", actor="test"
    )
    db.session.commit()

    (report,) = sync.run()

    assert (report.accepted, report.error) == (total + 1, None)
    # In no fixed order: the pass pushes two shares of the outbox, one call at a time.
    assert sorted(postmark.batches) == [21, MAX_SUPPRESSIONS_PER_CALL, MAX_SUPPRESSIONS_PER_CALL]
    assert len(postmark.streams[STREAM]) == total + 1
