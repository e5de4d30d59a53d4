"""MailerSend webhooks: real hex HMAC-SHA256 signatures over the raw body, both payload shapes
MailerSend has sent, and the webhook.test ping that saving a webhook fires."""

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from werkzeug.datastructures import Headers

from suppress import suppressions, sync
from suppress.config import ConfigError
from suppress.models import REASONS, SyncState, db
from suppress.providers.api import ApiError
from suppress.providers.delivery import Delivery, Malformed, Rejected, Reply
from suppress.providers.mailersend import EVENT_MAP, PING_SECRET, MailerSend
from suppress.providers.syncing import Account, Change
from tests.providers.fakes.mailersend import FakeMailerSend

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


def nested(raw_type: str, **email: object) -> bytes:
    document = json.loads(payload("activity.soft_bounced-nested.json"))
    document["type"] = raw_type
    document["data"]["email"].update(email)
    return json.dumps(document).encode()


@pytest.mark.parametrize("raw_type", ["activity.delivered", "activity.spam_complaint"])
def test_nested_delivered_and_complaint_name_the_emails_from_as_sender(raw_type):
    """R-MBP-4: complaint rates are counted per sending domain."""
    [event] = parse(nested(raw_type))

    assert event.sender == "receipts@example.net"


@pytest.mark.parametrize("value", [None, "", 42, {"email": "receipts@example.net"}])
def test_a_from_that_is_not_text_is_no_sender(value):
    [event] = parse(nested("activity.delivered", **{"from": value}))

    assert event.sender is None


@pytest.mark.parametrize("raw_type", ["activity.delivered", "activity.spam_complaint"])
def test_flat_shape_names_no_sender(raw_type):
    [event] = parse(retyped(raw_type))

    assert event.sender is None


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


def test_webhook_settings_hold_no_api_credentials():
    assert provider().settings == {"WEBHOOK_SECRET": (SECRET,)}


def test_an_api_token_alone_does_not_enable_the_webhook_endpoint():
    assert not MailerSend.is_configured({"MAILERSEND_API_KEY": "mlsn.token"})


def test_api_url_defaults_to_mailersend_v1():
    assert MailerSend.API_SETTINGS["API_URL"].default == "https://api.mailersend.com/v1"


# Sync: the suppression lists of one sending domain, played by FakeMailerSend.

API_TOKEN = "mlsn.4f2b0c6e9d1a7358c2e4b6a8d0f1e3c5a7b9d2f4e6a8c0b2d4f6a8c0e2b4d6f8"
DOMAIN_ID = "yv69oxl5kl785kw2"
LIST_OF = {
    "unsubscribed": "unsubscribes",
    "complained": "spam-complaints",
    "bounced": "hard-bounces",
    "soft_bounced": "hard-bounces",
    "objected": "blocklist",
    "manual": "blocklist",
    "imported": "unsubscribes",
}


@pytest.fixture
def mailersend(app, httpserver, monkeypatch):
    """A fake MailerSend account the app is configured to reach, retried without delay."""
    fake = FakeMailerSend(httpserver, api_token=API_TOKEN, domain_id=DOMAIN_ID)
    monkeypatch.setitem(app.config, "MAILERSEND_API_KEY", API_TOKEN)
    monkeypatch.setitem(app.config, "MAILERSEND_API_URL", fake.url)
    monkeypatch.setattr("suppress.providers.api.BACKOFF_SECONDS", 0)
    return fake


def account(fake: FakeMailerSend, token: str = API_TOKEN, list_slug: str | None = None) -> Account:
    settings = {"API_KEY": token, "API_URL": fake.url, "DOMAIN_ID": None}
    api = MailerSend.api(settings, timeout=5, retries=0)
    return Account("mailersend-fi", DOMAIN_ID, list_slug, settings, api)


def change(key: int, email: str, reason: str = "unsubscribed", **flags: bool) -> Change:
    return Change(key=key, email=email, reason=reason, **flags)


def statuses(outcomes) -> dict[int, str]:
    return {outcome.key: outcome.status for outcome in outcomes}


def test_reasons_mapping_covers_every_reason_that_names_an_address():
    assert set(LIST_OF) == set(REASONS) - {"erased"}


@pytest.mark.parametrize(("reason", "kind"), LIST_OF.items())
def test_each_reason_goes_to_the_domain_list_that_records_it(mailersend, reason, kind):
    (outcome,) = MailerSend.push(account(mailersend), [change(1, "matti@yritys.fi", reason)])
    assert outcome.status == "accepted"
    assert {name: mailersend.held(name) for name in mailersend.lists if mailersend.held(name)} == {
        kind: {"matti@yritys.fi"}
    }


def test_a_list_suppression_goes_to_the_domain_that_sends_the_list(mailersend):
    changes = [change(1, "lukija@yritys.fi", on_list=True)]
    MailerSend.push(account(mailersend, list_slug="uutiskirje"), changes)
    assert mailersend.held("unsubscribes") == {"lukija@yritys.fi"}


def test_one_call_adds_a_batch_to_each_list(mailersend):
    changes = [change(n, f"pois{n}@yritys.fi") for n in range(3)]
    changes += [change(9, "valittaja@yritys.fi", "complained")]
    outcomes = MailerSend.push(account(mailersend), changes)
    assert set(statuses(outcomes).values()) == {"accepted"}
    assert mailersend.pushes() == 2


def test_adding_again_what_the_list_holds_is_accepted(mailersend):
    mailersend.hold("unsubscribes", "matti@yritys.fi")
    (outcome,) = MailerSend.push(account(mailersend), [change(1, "matti@yritys.fi")])
    assert outcome.status == "accepted"
    assert len(mailersend.lists["unsubscribes"]) == 1


def test_recipients_mailersend_refuses_are_recorded_with_its_words_and_the_rest_added(
    mailersend,
):
    changes = [
        change(1, "jörö@yritys.fi"),
        change(2, "ok@yritys.fi"),
        change(3, "äiti@yritys.fi"),
    ]
    outcomes = {outcome.key: outcome for outcome in MailerSend.push(account(mailersend), changes)}
    assert outcomes[1].status == outcomes[3].status == "refused"
    assert outcomes[1].detail == "The recipients.0 must be a valid email address."
    assert outcomes[2].status == "accepted"
    assert mailersend.held("unsubscribes") == {"ok@yritys.fi"}
    assert mailersend.pushes() == 2


def test_a_422_about_the_call_itself_fails_the_whole_call(mailersend):
    mailersend.domain_id = "some-other-domain"
    with pytest.raises(ApiError, match="The selected domain id is invalid"):
        MailerSend.push(account(mailersend), [change(1, "matti@yritys.fi")])


def test_lifting_deletes_the_entries_by_the_ids_it_looks_up(mailersend):
    for n in range(250):
        mailersend.hold("hard-bounces", f"muu{n}@yritys.fi")
    mailersend.hold("hard-bounces", "palaaja@yritys.fi")
    lifts = [change(1, "palaaja@yritys.fi", "bounced", lift=True)]
    assert statuses(MailerSend.push(account(mailersend), lifts)) == {1: "accepted"}
    assert "palaaja@yritys.fi" not in mailersend.held("hard-bounces")
    assert len(mailersend.held("hard-bounces")) == 250
    assert [method for method, _ in mailersend.calls] == ["GET", "GET", "GET", "DELETE"]


def test_lifting_what_the_list_no_longer_holds_is_accepted_without_a_delete(mailersend):
    lifts = [change(1, "poissa@yritys.fi", "manual", lift=True)]
    assert statuses(MailerSend.push(account(mailersend), lifts)) == {1: "accepted"}
    assert mailersend.pushes() == 0


def test_wrong_token_is_a_fatal_api_error(mailersend):
    with pytest.raises(ApiError, match="Unauthenticated") as raised:
        MailerSend.push(account(mailersend, token="mlsn.wrong"), [change(1, "a@yritys.fi")])
    assert raised.value.fatal


def test_pull_pages_through_every_list_and_maps_their_kinds(mailersend):
    for n in range(230):
        mailersend.hold("unsubscribes", f"pois{n}@yritys.fi")
    mailersend.hold("hard-bounces", "kuollut@yritys.fi")
    mailersend.hold("spam-complaints", "valittaja@yritys.fi")
    mailersend.hold("blocklist", "estetty@yritys.fi")
    mailersend.hold("blocklist", "*@roskaposti.example", pattern=True)
    pulled = {entry.email: entry for entry in MailerSend.pull(account(mailersend), None)}
    assert len(pulled) == 233
    assert pulled["pois7@yritys.fi"].reason == "unsubscribed"
    assert pulled["kuollut@yritys.fi"].reason == "bounced"
    assert pulled["valittaja@yritys.fi"].reason == "complained"
    assert pulled["estetty@yritys.fi"].reason == "manual"
    assert pulled["pois7@yritys.fi"].at is not None
    assert not any(entry.on_list for entry in pulled.values())
    unsubscribe_pages = [p for _, p in mailersend.calls if p.endswith("/unsubscribes")]
    assert len(unsubscribe_pages) == 3


def test_pull_for_a_list_destination_takes_unsubscribes_as_the_list_s(mailersend):
    mailersend.hold("unsubscribes", "lukija@yritys.fi")
    mailersend.hold("hard-bounces", "kuollut@yritys.fi")
    pulled = MailerSend.pull(account(mailersend, list_slug="uutiskirje"), None)
    assert {entry.email: entry.on_list for entry in pulled} == {
        "lukija@yritys.fi": True,
        "kuollut@yritys.fi": False,
    }


def test_a_destination_syncs_end_to_end_in_calls_of_at_most_five_hundred(app, mailersend):
    """One sync pass through a MailerSend destination: 1200 unsubscribes in three calls, a
    complaint in its own, then a lift found and deleted."""
    sync.add_destination("mailersend-fi", "mailersend", target=DOMAIN_ID)
    for n in range(1200):
        suppressions.suppress(f"lukija{n}@yritys.fi", reason="unsubscribed", source="test")
    suppressions.suppress("valittaja@yritys.fi", reason="complained", source="test")
    db.session.commit()
    (report,) = sync.run()
    assert (report.accepted, report.error) == (1201, None)
    assert len(mailersend.held("unsubscribes")) == 1200
    assert mailersend.pushes() == 4
    suppressions.lift("lukija7@yritys.fi", actor="test")
    db.session.commit()
    (report,) = sync.run()
    assert report.lifted == 1
    assert "lukija7@yritys.fi" not in mailersend.held("unsubscribes")
    assert set(db.session.scalars(db.select(SyncState.status))) == {"accepted"}


def test_a_destination_without_a_domain_id_is_refused_when_added(app, mailersend):
    with pytest.raises(ConfigError, match="SUPPRESS_MAILERSEND_DOMAIN_ID"):
        sync.add_destination("mailersend-fi", "mailersend")


def test_the_domain_id_setting_is_the_default_target(app, mailersend, monkeypatch):
    monkeypatch.setitem(app.config, "MAILERSEND_DOMAIN_ID", DOMAIN_ID)
    sync.add_destination("mailersend-fi", "mailersend")
    suppressions.suppress("matti@yritys.fi", reason="unsubscribed", source="test")
    db.session.commit()
    (report,) = sync.run()
    assert report.accepted == 1
    assert mailersend.held("unsubscribes") == {"matti@yritys.fi"}
