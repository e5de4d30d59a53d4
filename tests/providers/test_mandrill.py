"""Mandrill webhooks: X-Mandrill-Signature, the URL check and the event vocabulary.

Deliveries are built as the blueprint builds them: the form-encoded body and its parsed
``MultiDict``. Signatures are made for real, as Mandrill makes them: base64 HMAC-SHA1 over the
registered URL followed by each POST field's key and value, sorted by key.
"""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from werkzeug.datastructures import Headers, MultiDict

from suppress import suppressions, sync
from suppress.config import ConfigError
from suppress.models import db
from suppress.providers.api import ApiError
from suppress.providers.delivery import Delivery, Malformed, Rejected, Reply
from suppress.providers.mandrill import SIGNATURE_HEADER, TEST_KEY, Mandrill
from suppress.providers.syncing import Account, Change
from tests.providers.fakes.mandrill import FakeMandrill

PAYLOADS = Path(__file__).resolve().parent / "payloads" / "mandrill"
WEBHOOK_URL = "https://suppress.example.fi/webhooks/mandrill?source=mandrill"
WEBHOOK_KEY = "mNd-webhook-key-7Hq2ZpL0"
OTHER_KEY = "mNd-webhook-key-reset-9Xw"


def provider(**settings: object) -> Mandrill:
    config = {"MANDRILL_WEBHOOK_KEY": WEBHOOK_KEY, "MANDRILL_WEBHOOK_URL": WEBHOOK_URL}
    config.update({f"MANDRILL_{key}": value for key, value in settings.items()})
    return Mandrill(config)


def mandrill_signature(key: str, url: str, fields: dict[str, str]) -> str:
    signed = url + "".join(name + fields[name] for name in sorted(fields))
    return base64.b64encode(hmac.new(key.encode(), signed.encode(), hashlib.sha1).digest()).decode()


def delivery(fields: dict[str, str], signature: str | None) -> Delivery:
    body = urlencode(fields).encode()
    headers = Headers({"Content-Type": "application/x-www-form-urlencoded"})
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    form = MultiDict(parse_qsl(body.decode(), keep_blank_values=True))
    return Delivery(method="POST", url=WEBHOOK_URL, headers=headers, body=body, form=form)


def signed(events: str, key: str = WEBHOOK_KEY, url: str = WEBHOOK_URL) -> Delivery:
    fields = {"mandrill_events": events}
    return delivery(fields, mandrill_signature(key, url, fields))


def sample(name: str) -> str:
    return (PAYLOADS / f"{name}.json").read_text()


def one_event(**fields: object) -> str:
    event = {
        "event": "send",
        "_id": "6f1e2a9c4b8d4e0f9a7b3c5d2e1f0a9b",
        "ts": 1767261600,
        "msg": {"_id": "6f1e2a9c4b8d4e0f9a7b3c5d2e1f0a9b", "email": "aino.virtanen@example.fi"},
    }
    event.update(fields)
    return json.dumps([event])


def parsed_one(**fields: object):
    (event,) = provider().parse(signed(one_event(**fields)))
    return event


def test_signed_batch_verifies_and_parses_one_event_per_item():
    mandrill = provider()
    batch = signed(sample("events"))

    mandrill.verify(batch)
    events = mandrill.parse(batch)

    assert [(e.raw_type, e.type, e.bounce_class, e.recipient) for e in events] == [
        ("send", "sent", None, "aino.virtanen@example.fi"),
        ("deferral", "deferred", None, "liisa.korhonen@example.net"),
        ("delivered", "delivered", None, "aino.virtanen@example.fi"),
        ("hard_bounce", "bounced", "hard", "eero.nieminen@example.com"),
        ("soft_bounce", "bounced", "soft", "matti.lahtinen@example.org"),
        ("open", "opened", None, "aino.virtanen@example.fi"),
        ("click", "clicked", None, "aino.virtanen@example.fi"),
        ("spam", "complained", None, "pekka.salo@example.com"),
        ("unsub", "unsubscribed", None, "ville.heikkinen@example.fi"),
        ("reject", "dropped", None, "eero.nieminen@example.com"),
    ]
    assert events[0].provider == "mandrill"
    assert events[0].message_id == "6f1e2a9c4b8d4e0f9a7b3c5d2e1f0a9b"
    assert events[0].campaign == "orders-2026"
    assert all(e.list_ref is None and e.list_slug is None for e in events)


def test_occurred_at_is_the_event_time_not_the_send_time():
    events = provider().parse(signed(sample("events")))
    click = events[6]

    assert click.occurred_at == datetime(2026, 1, 1, 11, 1, tzinfo=UTC)


def test_events_of_one_message_get_distinct_synthetic_ids():
    """_id is the message's id: its send, delivery, open and click share it."""
    events = provider().parse(signed(sample("events")))
    same_message = [e for e in events if e.message_id == "6f1e2a9c4b8d4e0f9a7b3c5d2e1f0a9b"]

    assert [e.raw_type for e in same_message] == ["send", "delivered", "open", "click"]
    assert len({e.provider_event_id for e in same_message}) == 4
    assert all(len(e.provider_event_id) == 64 for e in same_message)


def test_retried_batch_gets_the_same_ids():
    first = provider().parse(signed(sample("events")))
    retried = provider().parse(signed(sample("events")))

    assert [e.provider_event_id for e in first] == [e.provider_event_id for e in retried]


def test_bounce_diagnostics_carry_the_smtp_reply():
    """R-MBP-6: the SMTP text reaches the diagnostic so policy codes can be recognised."""
    events = provider().parse(signed(sample("events")))
    deferral, hard_bounce = events[1], events[3]

    assert hard_bounce.diagnostic == (
        "smtp;550 5.1.1 The email account that you tried to reach does not exist."
    )
    assert deferral.diagnostic == "451 4.3.5 Temporarily unavailable, try again later."


def test_bounce_without_smtp_text_keeps_mandrills_label():
    event = parsed_one(
        event="hard_bounce",
        msg={"email": "eero.nieminen@example.com", "bounce_description": "invalid_domain"},
    )

    assert event.diagnostic == "invalid_domain"


def test_click_carries_url_ip_and_user_agent():
    click = provider().parse(signed(sample("events")))[6]

    assert click.url == "https://kauppa.example.fi/tilaukset/1001"
    assert click.ip == "203.0.113.40"
    assert click.user_agent.endswith("Thunderbird/128.0")
    assert click.machine is None


def test_open_by_an_agent_mandrill_calls_a_robot_is_a_machine_open():
    event = parsed_one(event="open", user_agent="Scanner/1.0", user_agent_parsed={"type": "Robot"})

    assert event.machine is True


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("send", ("sent", None)),
        ("delivered", ("delivered", None)),
        ("deferral", ("deferred", None)),
        ("hard_bounce", ("bounced", "hard")),
        ("soft_bounce", ("bounced", "soft")),
        ("hard-bounce", ("bounced", "hard")),
        ("soft-bounce", ("bounced", "soft")),
        ("open", ("opened", None)),
        ("click", ("clicked", None)),
        ("spam", ("complained", None)),
        ("unsub", ("unsubscribed", None)),
        ("reject", ("dropped", None)),
        ("inbound", ("unknown", None)),
    ],
)
def test_every_documented_event_type_maps_as_intended(raw, expected):
    event = parsed_one(event=raw)

    assert (event.type, event.bounce_class) == expected


def test_unknown_event_type_parses_to_unknown():
    event = parsed_one(event="teleport")

    assert (event.type, event.raw_type) == ("unknown", "teleport")


def test_delivered_and_spam_name_the_messages_sender():
    """R-MBP-4: complaint rates are counted per sending domain."""
    events = provider().parse(signed(sample("events")))

    senders = {e.type: e.sender for e in events}
    assert senders["delivered"] == senders["complained"] == "kauppa@example.fi"


@pytest.mark.parametrize("sender", [None, "", 42, ["kauppa@example.fi"]])
def test_a_sender_that_is_not_text_is_none(sender):
    msg = {"_id": "6f1e2a9c", "email": "aino.virtanen@example.fi", "sender": sender}

    assert parsed_one(event="delivered", msg=msg).sender is None


def test_sync_events_name_no_sender():
    """A denylist entry's own sender scopes the entry; no message was sent."""
    events = provider().parse(signed(sample("sync")))

    assert {e.sender for e in events} == {None}


def test_sync_events_parse_to_unknown_with_the_listed_address():
    events = provider().parse(signed(sample("sync")))

    assert [(e.raw_type, e.type, e.recipient) for e in events] == [
        ("blacklist:add", "unknown", "eero.nieminen@example.com"),
        ("whitelist:remove", "unknown", "tuki@example.fi"),
    ]
    assert events[0].occurred_at == datetime(2026, 1, 1, 10, 10, 1, tzinfo=UTC)


def test_inbound_message_parses_to_unknown_without_a_recipient():
    (event,) = provider().parse(signed(sample("inbound")))

    assert (event.type, event.raw_type, event.recipient) == ("unknown", "inbound", None)


def test_url_check_head_is_answered_without_a_signature():
    head = Delivery(method="HEAD", url=WEBHOOK_URL, headers=Headers(), body=b"")
    mandrill = provider()

    mandrill.verify(head)

    assert mandrill.handshake(head) == Reply()


def test_url_check_post_signed_with_the_test_key_is_answered():
    test_post = signed("[]", key=TEST_KEY)
    mandrill = provider()

    mandrill.verify(test_post)

    assert mandrill.handshake(test_post) == Reply()
    assert mandrill.parse(test_post) == []


def test_test_key_signs_nothing_but_the_empty_batch():
    with pytest.raises(Rejected) as rejected:
        provider().verify(signed(sample("events"), key=TEST_KEY))

    assert rejected.value.status == 403


def test_real_batch_needs_no_handshake():
    assert provider().handshake(signed(sample("events"))) is None


def test_reset_key_verifies_beside_the_old_one():
    rotating = provider(WEBHOOK_KEY=f"{OTHER_KEY},{WEBHOOK_KEY}")

    rotating.verify(signed(sample("events"), key=WEBHOOK_KEY))
    rotating.verify(signed(sample("events"), key=OTHER_KEY))


def test_every_post_field_is_signed_in_key_order():
    fields = {"mandrill_events": one_event(), "a_field": "first", "z_field": "last"}
    signature = mandrill_signature(WEBHOOK_KEY, WEBHOOK_URL, fields)

    provider().verify(delivery(fields, signature))


def test_missing_signature_is_rejected():
    with pytest.raises(Rejected) as rejected:
        provider().verify(delivery({"mandrill_events": sample("events")}, signature=None))

    assert rejected.value.status == 401


def test_signature_by_another_key_is_rejected():
    with pytest.raises(Rejected) as rejected:
        provider().verify(signed(sample("events"), key=OTHER_KEY))

    assert rejected.value.status == 403


def test_tampered_events_are_rejected():
    genuine = signed(one_event(event="send"))
    tampered_events = one_event(event="spam")
    tampered = delivery({"mandrill_events": tampered_events}, genuine.headers[SIGNATURE_HEADER])

    with pytest.raises(Rejected) as rejected:
        provider().verify(tampered)

    assert rejected.value.status == 403


@pytest.mark.parametrize(
    "signed_url",
    [
        WEBHOOK_URL.replace("?source=mandrill", ""),
        WEBHOOK_URL.replace("/mandrill?", "/mandrill/?"),
        WEBHOOK_URL.replace("https://", "http://"),
    ],
    ids=["without-query", "trailing-slash", "other-scheme"],
)
def test_signature_over_another_url_is_rejected(signed_url):
    with pytest.raises(Rejected):
        provider().verify(signed(sample("events"), url=signed_url))


def test_registered_url_is_kept_exactly_with_its_trailing_slash():
    registered = "https://suppress.example.fi/webhooks/mandrill/"
    mandrill = provider(WEBHOOK_URL=registered)

    assert mandrill.settings["WEBHOOK_URL"] == registered
    mandrill.verify(signed(sample("events"), url=registered))


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"mandrill_events": "not json"},
        {"mandrill_events": '{"event": "send"}'},
        {"mandrill_events": "[1]"},
        {"mandrill_events": json.dumps([{"_id": "x", "ts": 1767261600}])},
        {"mandrill_events": one_event(event=None)},
        {"mandrill_events": one_event(ts="soon")},
        {"mandrill_events": one_event(ts=None)},
        {"mandrill_events": one_event(msg={"_id": "x"})},
        {"mandrill_events": one_event(msg="aino.virtanen@example.fi")},
        {"mandrill_events": json.dumps([{"type": "blacklist", "action": "add"}])},
    ],
    ids=[
        "no-field",
        "not-json",
        "object-not-array",
        "item-not-object",
        "neither-event-nor-sync",
        "no-event-name",
        "bad-ts",
        "no-ts",
        "no-recipient",
        "msg-not-object",
        "sync-without-ts",
    ],
)
def test_malformed_batch_raises_malformed(fields):
    with pytest.raises(Malformed):
        provider().parse(delivery(fields, signature=None))


@pytest.mark.parametrize("missing", ["WEBHOOK_KEY", "WEBHOOK_URL"])
def test_missing_required_setting_is_a_config_error_naming_the_variable(missing):
    config = {"MANDRILL_WEBHOOK_KEY": WEBHOOK_KEY, "MANDRILL_WEBHOOK_URL": WEBHOOK_URL}
    del config[f"MANDRILL_{missing}"]

    with pytest.raises(ConfigError, match=f"SUPPRESS_MANDRILL_{missing}"):
        Mandrill(config)


def test_webhook_url_that_is_not_http_is_a_config_error_naming_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_MANDRILL_WEBHOOK_URL"):
        provider(WEBHOOK_URL="suppress.example.fi/webhooks/mandrill")


def test_the_webhook_reads_no_api_settings_and_an_api_key_alone_enables_nothing():
    assert set(provider().settings) == {"WEBHOOK_KEY", "WEBHOOK_URL"}
    assert not Mandrill.is_configured({"MANDRILL_API_KEY": "sync-only-key"})


# Sync: the Rejects API played by FakeMandrill.

API_KEY = "md-Kq2ZpL0x7Hq2ZpL0x7Hq2Z"


@pytest.fixture
def mandrill_api(httpserver) -> FakeMandrill:
    return FakeMandrill(httpserver, api_key=API_KEY, subaccounts=("uutiset",))


def account(fake: FakeMandrill, target: str | None = None, key: str = API_KEY) -> Account:
    settings = {"API_KEY": key, "API_URL": fake.url}
    return Account("mandrill", target, None, settings, Mandrill.api(settings, timeout=5, retries=2))


def statuses(outcomes: list) -> list[str]:
    return [outcome.status for outcome in outcomes]


def test_each_change_is_one_rejects_add_with_our_reason_in_the_comment(mandrill_api):
    changes = [
        Change(n, f"h{n}@yritys.fi", reason)
        for n, reason in enumerate(["unsubscribed", "bounced", "complained"])
    ]
    assert statuses(Mandrill.push(account(mandrill_api), changes)) == ["accepted"] * 3
    assert mandrill_api.pushes() == 3
    assert {a: e["detail"] for a, e in mandrill_api.denylist().items()} == {
        "h0@yritys.fi": "unsubscribed (suppress)",
        "h1@yritys.fi": "bounced (suppress)",
        "h2@yritys.fi": "complained (suppress)",
    }


def test_a_destination_s_target_is_the_subaccount_whose_denylist_it_fills(mandrill_api):
    change = Change(1, "lukija@yritys.fi", "unsubscribed", on_list=True)
    Mandrill.push(account(mandrill_api, target="uutiset"), [change])
    assert list(mandrill_api.denylist("uutiset")) == ["lukija@yritys.fi"]
    assert mandrill_api.denylist() == {}


def test_an_unknown_subaccount_is_a_fatal_api_error(mandrill_api):
    with pytest.raises(ApiError) as raised:
        Mandrill.push(account(mandrill_api, target="ei-ole"), [Change(1, "a@yritys.fi", "manual")])
    assert raised.value.fatal
    assert "Unknown_Subaccount" in str(raised.value)


def test_pushing_again_what_mandrill_holds_is_accepted(mandrill_api):
    changes = [Change(1, "kahdesti@yritys.fi", "complained")]
    Mandrill.push(account(mandrill_api), changes)
    assert statuses(Mandrill.push(account(mandrill_api), changes)) == ["accepted"]
    assert list(mandrill_api.denylist()) == ["kahdesti@yritys.fi"]


def test_an_allowlisted_address_is_refused_as_mandrill_leaves_it_alone(mandrill_api):
    mandrill_api.allowlist.add("sallittu@yritys.fi")
    (outcome,) = Mandrill.push(account(mandrill_api), [Change(1, "sallittu@yritys.fi", "manual")])
    assert outcome.status == "refused"
    assert "allowlist" in outcome.detail


def test_an_address_mandrill_finds_invalid_is_refused_and_the_rest_pushed(mandrill_api):
    """Mandrill answers a ValidationError with HTTP 500: refused at once, never retried."""
    mandrill_api.invalid.add("huono@yritys.fi")
    changes = [Change(1, "huono@yritys.fi", "bounced"), Change(2, "hyva@yritys.fi", "bounced")]
    refusal, accepted = Mandrill.push(account(mandrill_api), changes)
    assert refusal.status == "refused"
    assert refusal.detail.startswith("ValidationError: ")
    assert accepted.status == "accepted"
    assert mandrill_api.calls.count(("POST", "/rejects/add.json")) == 2


def test_a_lift_deletes_the_reject_and_one_already_gone_is_accepted(mandrill_api):
    Mandrill.push(account(mandrill_api), [Change(1, "palaaja@yritys.fi", "unsubscribed")])
    lifts = [
        Change(2, "palaaja@yritys.fi", "unsubscribed", lift=True),
        Change(3, "poissa@yritys.fi", "bounced", lift=True),
    ]
    assert statuses(Mandrill.push(account(mandrill_api), lifts)) == ["accepted"] * 2
    assert mandrill_api.denylist() == {}


def test_a_wrong_key_is_a_fatal_api_error_asked_once(mandrill_api):
    with pytest.raises(ApiError) as raised:
        Mandrill.push(account(mandrill_api, key="wrong"), [Change(1, "a@yritys.fi", "manual")])
    assert (raised.value.status, raised.value.fatal) == (401, True)
    assert len(mandrill_api.calls) == 1


def test_a_rate_limit_is_still_waited_out(mandrill_api, monkeypatch):
    monkeypatch.setattr("suppress.providers.api.BACKOFF_SECONDS", 0)
    mandrill_api.fail_next(429, headers={"Retry-After": "0"})
    (outcome,) = Mandrill.push(account(mandrill_api), [Change(1, "a@yritys.fi", "manual")])
    assert outcome.status == "accepted"


@pytest.mark.parametrize(
    ("reason", "ours"),
    [
        ("hard-bounce", "bounced"),
        ("soft-bounce", "soft_bounced"),
        ("spam", "complained"),
        ("unsub", "unsubscribed"),
        ("custom", "manual"),
    ],
)
def test_pull_reads_each_reject_reason_as_our_nearest(mandrill_api, reason, ours):
    mandrill_api.denylist()["x@yritys.fi"] = {
        "email": "x@yritys.fi",
        "reason": reason,
        "created_at": "2026-01-01 10:00:00",
        "expired": False,
    }
    (entry,) = Mandrill.pull(account(mandrill_api), None)
    assert (entry.email, entry.reason) == ("x@yritys.fi", ours)
    assert entry.at == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_pull_reads_the_first_thousand_entries_rejects_list_returns(mandrill_api):
    for number in range(1200):
        address = f"h{number:04}@yritys.fi"
        mandrill_api.denylist()[address] = {"email": address, "reason": "custom", "expired": False}
    assert len(list(Mandrill.pull(account(mandrill_api), None))) == 1000
    assert mandrill_api.calls.count(("POST", "/rejects/list.json")) == 1


def test_a_sync_pass_pushes_and_lifts_through_a_mandrill_destination(
    app, mandrill_api, monkeypatch
):
    monkeypatch.setitem(app.config, "MANDRILL_API_KEY", API_KEY)
    monkeypatch.setitem(app.config, "MANDRILL_API_URL", mandrill_api.url)
    sync.add_destination("mandrill", "mandrill", target="uutiset")
    suppressions.suppress("kuollut@yritys.fi", reason="bounced", source="test", actor="test")
    suppressions.suppress("lahtija@yritys.fi", reason="unsubscribed", source="test", actor="test")
    db.session.commit()
    (report,) = sync.run()
    assert (report.accepted, report.error) == (2, None)
    assert set(mandrill_api.denylist("uutiset")) == {"kuollut@yritys.fi", "lahtija@yritys.fi"}
    suppressions.lift("lahtija@yritys.fi", actor="test")
    db.session.commit()
    (report,) = sync.run()
    assert report.lifted == 1
    assert set(mandrill_api.denylist("uutiset")) == {"kuollut@yritys.fi"}
