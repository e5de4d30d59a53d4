"""Resend: webhooks (Svix signatures made for real with a test secret, and Resend's documented
payloads, resend.com/docs "Event Types", turned into events), then the sync job's pushes and
pulls against Resend's private-beta Suppressions API played on 127.0.0.1."""

import base64
import functools
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.datastructures import Headers

from suppress import suppressions, sync
from suppress.config import ConfigError
from suppress.models import REASONS as MODEL_REASONS
from suppress.models import SyncState, db
from suppress.providers.api import ApiError
from suppress.providers.delivery import Delivery, Malformed, Rejected
from suppress.providers.resend import (
    EVENT_MAP,
    SUPPRESSIONS_PER_CALL,
    TEAM_WIDE,
    NotAvailable,
    Resend,
)
from suppress.providers.syncing import ACCEPTED, REFUSED, Change
from tests.providers.fakes.resend import FakeResend

PAYLOADS = Path(__file__).parent / "payloads" / "resend"
URL = "https://suppress.example.net/webhooks/resend"
KEY = b"resend-test-signing-key!"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
SVIX_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def retyped(name: str, raw_type: str, **data: object) -> bytes:
    """A documented sample with another event type (and data fields) swapped in."""
    document = json.loads(payload(name))
    document["type"] = raw_type
    document["data"].update(data)
    return json.dumps(document).encode()


def provider() -> Resend:
    return Resend({"RESEND_WEBHOOK_SECRET": SECRET})


def signature(body: bytes, stamp: str, key: bytes = KEY) -> str:
    content = f"{SVIX_ID}.{stamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def delivery(body: bytes, *, stamp: str | None = None, signed: bytes | None = None) -> Delivery:
    stamp = stamp or str(int(time.time()))
    headers = Headers(
        {
            "svix-id": SVIX_ID,
            "svix-timestamp": stamp,
            "svix-signature": signature(body if signed is None else signed, stamp),
        }
    )
    return Delivery(method="POST", url=URL, headers=headers, body=body)


def parse(body: bytes):
    return provider().parse(delivery(body))


def test_signed_bounce_verifies_and_parses_to_a_hard_bounce():
    resend = provider()
    request = delivery(payload("email.bounced.json"))

    resend.verify(request)
    [event] = resend.parse(request)

    assert event.provider == "resend"
    assert event.provider_event_id == SVIX_ID
    assert (event.type, event.bounce_class) == ("bounced", "hard")
    assert event.recipient == "ada@example.com"
    assert event.raw_type == "email.bounced"
    assert event.message_id == "56761188-7520-42d8-8898-ff6fc54ce618"
    assert event.campaign == "8b146471-e88e-4322-86af-016cd36fd216"
    # The event's created_at, not data.created_at (when the email was made).
    assert event.occurred_at == datetime(2026, 2, 22, 23, 41, 12, 126000, tzinfo=UTC)


def test_bounce_diagnostic_carries_the_smtp_reply():
    """R-MBP-6: the SMTP text reaches events.py, which tells policy blocks from bad addresses."""
    [event] = parse(payload("email.bounced-policy.json"))

    assert "5.7.26" in event.diagnostic
    assert event.diagnostic.startswith("smtp; 550 5.7.26")


def test_webhook_header_names_are_not_accepted_for_resend():
    body = payload("email.bounced.json")
    request = delivery(body)
    for name in ("id", "timestamp", "signature"):
        request.headers[f"webhook-{name}"] = request.headers.pop(f"svix-{name}")

    with pytest.raises(Rejected):
        provider().verify(request)


@pytest.mark.parametrize("header", ["svix-id", "svix-timestamp", "svix-signature"])
def test_missing_header_is_rejected(header):
    request = delivery(payload("email.bounced.json"))
    del request.headers[header]

    with pytest.raises(Rejected) as caught:
        provider().verify(request)

    assert caught.value.status == 401


def test_signature_made_with_another_secret_is_rejected():
    other = Resend({"RESEND_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"x" * 24).decode()})

    with pytest.raises(Rejected) as caught:
        other.verify(delivery(payload("email.bounced.json")))

    assert caught.value.status == 401


def test_tampered_body_is_rejected():
    body = payload("email.bounced.json")

    with pytest.raises(Rejected):
        provider().verify(delivery(body.replace(b"Permanent", b"Transient"), signed=body))


@pytest.mark.parametrize("offset", [-600, 600], ids=["old", "future"])
def test_timestamp_beyond_five_minutes_is_rejected(offset):
    with pytest.raises(Rejected):
        provider().verify(
            delivery(payload("email.bounced.json"), stamp=str(int(time.time()) + offset))
        )


def test_rotated_secrets_both_verify():
    resend = Resend(
        {"RESEND_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"y" * 24).decode() + f",{SECRET}"}
    )

    resend.verify(delivery(payload("email.bounced.json")))


@pytest.mark.parametrize(
    ("bounce_type", "bounce_class"),
    [("Permanent", "hard"), ("Transient", "soft"), ("Temporary", "soft"), ("Undetermined", "soft")],
)
def test_bounce_type_gives_the_bounce_class(bounce_type, bounce_class):
    body = retyped("email.bounced.json", "email.bounced", bounce={"type": bounce_type})

    [event] = parse(body)

    assert (event.type, event.bounce_class) == ("bounced", bounce_class)


def test_bounce_without_details_is_hard_as_the_event_is_documented():
    """ "Event Types": email.bounced is a permanent rejection by the recipient's server."""
    document = json.loads(payload("email.bounced.json"))
    del document["data"]["bounce"]

    [event] = parse(json.dumps(document).encode())

    assert (event.bounce_class, event.diagnostic) == ("hard", None)


def test_click_carries_link_ip_and_user_agent():
    [event] = parse(payload("email.clicked.json"))

    assert event.type == "clicked"
    assert event.url == "https://example.net/articles/42"
    assert event.ip == "198.51.100.23"
    assert event.user_agent == "Mozilla/5.0 (X11; Linux x86_64) Firefox/135.0"


@pytest.mark.parametrize(
    ("name", "diagnostic"),
    [
        ("email.failed.json", "reached_daily_quota"),
        ("email.suppressed.json", "Resend has suppressed sending to this address"),
    ],
)
def test_refused_send_is_dropped_with_the_reason(name, diagnostic):
    [event] = parse(payload(name))

    assert event.type == "dropped"
    assert event.diagnostic.startswith(diagnostic)


def test_every_recipient_in_to_gets_an_event_with_its_own_id():
    events = parse(payload("email.delivered-two-recipients.json"))

    assert [(event.recipient, event.provider_event_id) for event in events] == [
        ("ada@example.com", f"{SVIX_ID}:ada@example.com"),
        ("grace@example.org", f"{SVIX_ID}:grace@example.org"),
    ]


@pytest.mark.parametrize("raw_type", ["email.delivered", "email.complained"])
def test_delivered_and_complained_name_the_from_as_sender(raw_type):
    """R-MBP-4: complaint rates are counted per sending domain."""
    [event] = parse(retyped("email.delivered.json", raw_type))

    assert event.sender == "Example News <news@example.net>"


@pytest.mark.parametrize("value", [None, "", 42, ["news@example.net"]])
def test_a_from_that_is_not_text_is_no_sender(value):
    [event] = parse(retyped("email.delivered.json", "email.delivered", **{"from": value}))

    assert event.sender is None


def test_contact_events_name_no_sender():
    [event] = parse(payload("contact.updated.json"))

    assert event.sender is None


def test_contact_updated_to_unsubscribed_is_an_unsubscribe_from_its_audience():
    [event] = parse(payload("contact.updated.json"))

    assert (event.type, event.recipient) == ("unsubscribed", "ada@example.com")
    assert event.list_ref == "78261eea-8f8b-4381-83c6-79fa7120f1cf"
    assert event.occurred_at == datetime(2026, 2, 11, 23, 47, 56, 678000, tzinfo=UTC)


def test_contact_updated_while_subscribed_is_unknown():
    [event] = parse(retyped("contact.updated.json", "contact.updated", unsubscribed=False))

    assert event.type == "unknown"


def _documented_sample(raw_type: str) -> bytes:
    if raw_type.startswith("contact."):
        return retyped("contact.updated.json", raw_type, unsubscribed=False)
    if raw_type.startswith("domain."):
        return retyped("domain.created.json", raw_type)
    return retyped("email.delivered.json", raw_type)


@pytest.mark.parametrize(("raw_type", "kind"), sorted(EVENT_MAP.items()))
def test_documented_event_type_maps_as_intended(raw_type, kind):
    [event] = parse(_documented_sample(raw_type))

    assert (event.raw_type, event.type) == (raw_type, kind)


def test_expected_mapping_of_email_events():
    assert {raw: kind for raw, kind in EVENT_MAP.items() if kind != "unknown"} == {
        "email.sent": "sent",
        "email.delivered": "delivered",
        "email.delivery_delayed": "deferred",
        "email.bounced": "bounced",
        "email.complained": "complained",
        "email.opened": "opened",
        "email.clicked": "clicked",
        "email.failed": "dropped",
        "email.suppressed": "dropped",
    }


def test_domain_event_has_no_recipient():
    [event] = parse(payload("domain.created.json"))

    assert (event.type, event.recipient) == ("unknown", None)


def test_undocumented_type_is_unknown_never_an_error():
    [event] = parse(
        json.dumps(
            {"type": "email.teleported", "created_at": "2026-02-01T00:00:00Z", "data": {}}
        ).encode()
    )

    assert (event.type, event.raw_type, event.recipient) == ("unknown", "email.teleported", None)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>",
        b"[]",
        b'{"type": "email.sent", "created_at": "2026-02-01T00:00:00Z"}',
        b'{"type": "email.sent", "data": {"to": ["a@example.com"]}}',
        b'{"type": "email.sent", "created_at": "yesterday", "data": {"to": ["a@example.com"]}}',
        b'{"type": "email.sent", "created_at": "2026-02-01T00:00:00Z", "data": {"to": []}}',
        b'{"type": "contact.updated", "created_at": "2026-02-01T00:00:00Z", "data": {"id": "c"}}',
    ],
    ids=["html", "array", "no-data", "no-time", "bad-time", "no-recipient", "contact-no-email"],
)
def test_body_not_as_documented_is_malformed(body):
    with pytest.raises(Malformed):
        parse(body)


def test_missing_secret_names_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_RESEND_WEBHOOK_SECRET"):
        Resend({"RESEND_API_KEY": "re_123"})


def test_an_api_key_alone_does_not_enable_the_webhook_endpoint():
    assert not Resend.is_configured({"RESEND_API_KEY": "re_123"})


# Sync: the Suppressions API (private beta)

API_KEY = "re_test_0123456789"
# An erased address is never pushed: the planner refuses it, as it is no longer known.
REASONS = [reason for reason in MODEL_REASONS if reason != "erased"]


@pytest.fixture
def resend(httpserver):
    return FakeResend(httpserver, api_key=API_KEY)


@pytest.fixture
def account(account_of, resend):
    return functools.partial(account_of, "resend", resend.url, api_key=API_KEY)


def change(key, email, reason="unsubscribed", **flags):
    return Change(key=key, email=email, reason=reason, **flags)


def statuses(outcomes):
    return {outcome.key: outcome.status for outcome in outcomes}


@pytest.mark.parametrize("reason", REASONS)
def test_sync_every_reason_is_pushed_as_a_manual_suppression(resend, account, reason):
    outcomes = Resend.push(account(), [change(1, "Matti@Yritys.fi", reason)])

    assert statuses(outcomes) == {1: ACCEPTED}
    assert resend.suppressions["matti@yritys.fi"]["origin"] == "manual"


def test_sync_pushing_again_what_resend_holds_is_accepted(resend, account):
    changes = [change(1, "matti@yritys.fi"), change(2, "maija@yritys.fi")]
    Resend.push(account(), changes)

    assert statuses(Resend.push(account(), changes)) == {1: ACCEPTED, 2: ACCEPTED}
    assert set(resend.suppressions) == {"matti@yritys.fi", "maija@yritys.fi"}


def test_sync_a_list_suppression_is_refused_as_resend_s_list_is_team_wide(resend, account):
    changes = [change(1, "lukija@yritys.fi", on_list=True), change(2, "kaikki@yritys.fi")]

    outcomes = Resend.push(account(list_slug="uutiskirje"), changes)

    assert statuses(outcomes) == {1: REFUSED, 2: ACCEPTED}
    assert outcomes[-1].detail == TEAM_WIDE
    assert set(resend.suppressions) == {"kaikki@yritys.fi"}


def test_sync_lifts_remove_in_one_batch_and_one_already_gone_is_accepted(resend, account):
    resend.suppress("palaaja@yritys.fi", "manual")
    lifts = [change(1, "palaaja@yritys.fi", lift=True), change(2, "poissa@yritys.fi", lift=True)]

    outcomes = Resend.push(account(), lifts)

    assert statuses(outcomes) == {1: ACCEPTED, 2: ACCEPTED}
    assert resend.suppressions == {}
    assert resend.calls == [("POST", "/suppressions/batch/remove")]


def test_sync_an_address_resend_refuses_is_refused_and_the_rest_accepted(resend, account):
    changes = [
        change(1, "matti@yritys.fi"),
        change(2, "rikki@localhost"),
        change(3, "maija@yritys.fi"),
    ]

    outcomes = Resend.push(account(), changes)

    assert statuses(outcomes) == {1: ACCEPTED, 2: REFUSED, 3: ACCEPTED}
    assert "Invalid `email` field" in outcomes[1].detail
    assert set(resend.suppressions) == {"matti@yritys.fi", "maija@yritys.fi"}


@pytest.mark.parametrize(
    ("available", "api_key", "status"),
    [(False, API_KEY, 404), (True, "re_wrong", 403)],
    ids=["not-in-the-beta", "invalid-key"],
)
def test_sync_an_account_without_the_suppressions_api_is_told_so_fatally(
    resend, account, available, api_key, status
):
    resend.available = available

    with pytest.raises(NotAvailable, match="private beta") as error:
        Resend.push(account(api_key=api_key), [change(1, "matti@yritys.fi")])

    assert (error.value.status, error.value.fatal) == (status, True)
    with pytest.raises(NotAvailable):
        list(Resend.pull(account(api_key=api_key), None))


def test_sync_a_resend_outage_stays_a_retryable_error(resend, account):
    resend.fail_next(503)

    with pytest.raises(ApiError, match="HTTP 503") as error:
        Resend.push(account(), [change(1, "matti@yritys.fi")])

    assert not isinstance(error.value, NotAvailable)
    assert error.value.retry


def test_sync_pull_pages_until_resend_has_no_more_and_maps_origins(resend, account):
    for n in range(SUPPRESSIONS_PER_CALL + 5):
        resend.suppress(f"p{n}@yritys.fi", "manual")
    resend.suppress("kuollut@yritys.fi", "bounce", "2026-01-01T10:00:00.000Z")
    resend.suppress("valittaja@yritys.fi", "complaint", "eilen")

    pulled = list(Resend.pull(account(), None))

    reasons = {entry.email: entry.reason for entry in pulled}
    assert len(reasons) == SUPPRESSIONS_PER_CALL + 7
    assert (reasons["p0@yritys.fi"], reasons["kuollut@yritys.fi"]) == ("manual", "bounced")
    assert reasons["valittaja@yritys.fi"] == "complained"
    assert pulled[-2].at == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert pulled[-1].at is None
    assert resend.calls == [("GET", "/suppressions")] * 2


def test_sync_pull_reads_an_entry_s_origin_under_either_name(resend, account):
    resend.suppress("kuollut@yritys.fi", "bounce")
    resend.suppressions["kuollut@yritys.fi"]["reason"] = resend.suppressions[
        "kuollut@yritys.fi"
    ].pop("origin")
    resend.suppressions["tyhja"] = {"id": "x", "email": " ", "origin": "manual"}

    pulled = list(Resend.pull(account(), None))

    assert [(entry.email, entry.reason) for entry in pulled] == [("kuollut@yritys.fi", "bounced")]


def test_sync_run_pushes_a_destination_s_suppressions_in_full_batches(app, resend, monkeypatch):
    monkeypatch.setitem(app.config, "RESEND_API_KEY", API_KEY)
    monkeypatch.setitem(app.config, "RESEND_API_URL", resend.url)
    sync.add_destination("resend-fi", "resend")
    total = SUPPRESSIONS_PER_CALL * 2 + 50
    for n in range(total):
        suppressions.suppress(f"p{n}@yritys.fi", reason="complained", source="test", actor="test")
    db.session.commit()

    (report,) = sync.run()

    assert (report.accepted, report.error) == (total, None)
    # In no fixed order: the pass pushes two shares of the outbox, one call at a time.
    assert sorted(resend.batches) == [50, SUPPRESSIONS_PER_CALL, SUPPRESSIONS_PER_CALL]
    assert len(resend.suppressions) == total


def test_sync_run_stops_a_destination_resend_has_not_opened_the_api_to(app, resend, monkeypatch):
    monkeypatch.setitem(app.config, "RESEND_API_KEY", API_KEY)
    monkeypatch.setitem(app.config, "RESEND_API_URL", resend.url)
    resend.available = False
    sync.add_destination("resend-fi", "resend")
    suppressions.suppress("matti@yritys.fi", reason="unsubscribed", source="test", actor="test")
    db.session.commit()

    (report,) = sync.run()

    assert "Suppressions API is not available" in report.error
    assert db.session.scalar(select(SyncState.status)) == "pending"
