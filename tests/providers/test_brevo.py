"""Brevo: webhooks (basic auth or a bearer token, an optional address allow-list, single or
batched transactional and marketing events), and the sync job's pushes and pulls against the
contacts API played by FakeBrevo."""

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from suppress import sync
from suppress.config import ConfigError
from suppress.lists import create_list
from suppress.models import REASONS, db
from suppress.providers.api import ApiError
from suppress.providers.brevo import EVENT_TYPES, Brevo
from suppress.providers.delivery import Delivery, Malformed, Rejected
from suppress.providers.syncing import ACCEPTED, REFUSED, Change
from tests.providers.fakes.brevo import FakeBrevo

PAYLOADS = Path(__file__).parent / "payloads" / "brevo"
URL = "https://suppress.example.com/webhooks/brevo"
CONFIG = {"BREVO_WEBHOOK_BASIC_AUTH": "brevo:s3cret"}
BREVO_ADDRESS = "1.179.112.20"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


GOOD_AUTH = {"Authorization": basic("brevo", "s3cret")}


def payload(name: str, **changes: Any) -> Any:
    document = json.loads((PAYLOADS / name).read_text())
    if changes:
        document.update(changes)
    return document


def delivery(
    body: Any, headers: dict[str, str] | None = None, remote_addr: str | None = BREVO_ADDRESS
) -> Delivery:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(
        method="POST",
        url=URL,
        headers=Headers(GOOD_AUTH if headers is None else headers),
        body=raw,
        remote_addr=remote_addr,
    )


def parse(body: Any, config: dict[str, str] = CONFIG):
    return Brevo(config).parse(delivery(body))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_authenticated_hard_bounce_verifies_and_parses():
    provider = Brevo(CONFIG)
    request = delivery(payload("hard_bounce.json"))

    provider.verify(request)
    (event,) = provider.parse(request)

    assert (event.provider, event.type, event.bounce_class) == ("brevo", "bounced", "hard")
    assert event.recipient == "gone@example.org"
    assert event.raw_type == "hard_bounce"
    assert event.diagnostic.startswith("550 5.1.1")
    assert event.message_id == "<202403051628.1234567890@smtp-relay.mailin.fr>"
    assert event.campaign == "invoice"
    assert len(event.provider_event_id) == 64


def test_event_time_is_the_utc_timestamp_not_the_local_date():
    """ts_epoch (UTC milliseconds) wins over ``ts`` and ``date``, which follow local time."""
    (event,) = parse(payload("hard_bounce.json"))

    assert event.occurred_at == utc(2024, 3, 5, 16, 28, 10, 123000)


def test_marketing_event_time_is_ts_event():
    """Marketing events carry no ts_epoch; ts_event is their UTC time, ``ts`` is an hour off."""
    (event,) = parse(payload("marketing_click.json"))

    assert event.occurred_at == utc(2024, 3, 5, 10, 20)


def test_contact_event_without_utc_fields_falls_back_to_ts():
    record = {
        "event": "list_addition",
        "email": "new@example.com",
        "list_id": [7],
        "ts": 1709637600,
    }

    (event,) = parse(record)

    assert (event.type, event.list_ref) == ("unknown", "7")
    assert event.occurred_at == utc(2024, 3, 5, 11, 20)


def test_batched_array_fans_out_one_event_per_item():
    provider = Brevo(CONFIG)
    request = delivery(payload("batch.json"))

    provider.verify(request)
    events = provider.parse(request)

    assert [(event.type, event.recipient) for event in events] == [
        ("sent", "anna@example.com"),
        ("delivered", "anna@example.com"),
        ("complained", "bob@example.net"),
    ]
    assert len({event.provider_event_id for event in events}) == 3


def test_sender_email_names_the_sender():
    (event,) = parse(payload("unique_proxy_open.json"))

    assert event.sender == "news@example.com"


def test_delivered_and_spam_without_sender_email_name_no_sender():
    """R-MBP-4 needs the sending domain; a Brevo event without sender_email has none."""
    events = parse(payload("batch.json"))

    assert {(event.type, event.sender) for event in events[1:]} == {
        ("delivered", None),
        ("complained", None),
    }


@pytest.mark.parametrize(
    ("value", "sender"),
    [("news@example.com", "news@example.com"), (None, None), (42, None), ([], None)],
)
def test_a_delivered_or_spam_event_carrying_sender_email_keeps_it(value, sender):
    for name in ("delivered", "spam"):
        (event,) = parse(payload("hard_bounce.json", event=name, sender_email=value))

        assert event.sender == sender


def test_empty_batch_has_no_events():
    assert parse([]) == []


def test_proxy_open_is_flagged_machine():
    (event,) = parse(payload("unique_proxy_open.json"))

    assert (event.type, event.machine) == ("opened", True)
    assert event.user_agent == "Mozilla/5.0"
    assert event.ip is None


@pytest.mark.parametrize("name", ["opened", "unique_opened", "click"])
def test_other_opens_and_clicks_carry_no_machine_verdict(name):
    (event,) = parse(payload("unique_proxy_open.json", event=name))

    assert event.machine is None


def test_empty_email_is_kept_as_an_event_without_a_recipient():
    (event,) = parse(payload("unique_proxy_open.json", email=""))

    assert event.recipient is None


def test_marketing_click_carries_its_url_and_campaign():
    (event,) = parse(payload("marketing_click.json"))

    assert (event.type, event.url, event.campaign) == (
        "clicked",
        "https://example.com/spring-sale",
        "57",
    )


def test_marketing_unsubscribe_gives_one_event_per_list():
    events = parse(payload("marketing_unsubscribe.json"))

    assert [(event.type, event.list_ref) for event in events] == [
        ("unsubscribed", "3"),
        ("unsubscribed", "42"),
    ]
    assert len({event.provider_event_id for event in events}) == 2
    assert all(event.recipient == "leaving@example.com" for event in events)


@pytest.mark.parametrize(("list_id", "list_ref"), [(5, "5"), ([], None), (None, None)])
def test_list_id_as_one_number_or_none(list_id, list_ref):
    (event,) = parse(payload("marketing_unsubscribe.json", list_id=list_id))

    assert event.list_ref == list_ref


def test_transactional_unsubscribe_names_no_list():
    (event,) = parse(payload("hard_bounce.json", event="unsubscribed"))

    assert (event.type, event.list_ref) == ("unsubscribed", None)


# Payload ``event`` names from docs/transactional-webhooks and docs/marketing-webhooks, as a spec.
DOCUMENTED_EVENTS = {
    "request": ("sent", None),
    "sent": ("sent", None),
    "delivered": ("delivered", None),
    "deferred": ("deferred", None),
    "soft_bounce": ("bounced", "soft"),
    "hard_bounce": ("bounced", "hard"),
    "invalid_email": ("bounced", "hard"),
    "blocked": ("dropped", None),
    "error": ("dropped", None),
    "spam": ("complained", None),
    "complaint": ("complained", None),
    "opened": ("opened", None),
    "unique_opened": ("opened", None),
    "proxy_open": ("opened", None),
    "unique_proxy_open": ("opened", None),
    "click": ("clicked", None),
    "unsubscribed": ("unsubscribed", None),
    "unsubscribe": ("unsubscribed", None),
    "hard_bounced": ("bounced", "hard"),
    "soft_bounced": ("bounced", "soft"),
    "hardBounce": ("bounced", "hard"),
    "softBounce": ("bounced", "soft"),
    "list_addition": ("unknown", None),
    "contact_updated": ("unknown", None),
    "contact_deleted": ("unknown", None),
}


def test_every_documented_event_is_in_the_table():
    assert set(EVENT_TYPES) == set(DOCUMENTED_EVENTS)


@pytest.mark.parametrize(("name", "expected"), DOCUMENTED_EVENTS.items())
def test_event_maps_as_intended(name, expected):
    (event,) = parse(payload("hard_bounce.json", event=name))

    assert (event.type, event.bounce_class) == expected
    assert event.raw_type == name


def test_unknown_event_parses_to_unknown():
    (event,) = parse(payload("hard_bounce.json", event="unique_coupon_sent"))

    assert (event.type, event.raw_type) == ("unknown", "unique_coupon_sent")


def test_a_repeated_delivery_gets_the_same_event_ids():
    first = [event.provider_event_id for event in parse(payload("batch.json"))]
    again = [event.provider_event_id for event in parse(payload("batch.json"))]

    assert first == again


@pytest.mark.parametrize(
    ("sample", "changes"),
    [
        ("hard_bounce.json", {"ts_epoch": 1709656091123}),
        ("hard_bounce.json", {"email": "other@example.org"}),
        ("hard_bounce.json", {"message-id": "<other@smtp-relay.mailin.fr>"}),
        ("hard_bounce.json", {"event": "soft_bounce"}),
        ("marketing_click.json", {"camp_id": 58}),
    ],
)
def test_two_different_events_get_different_ids(sample, changes):
    (one,) = parse(payload(sample))
    (other,) = parse(payload(sample, **changes))

    assert one.provider_event_id != other.provider_event_id


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": basic("brevo", "wrong")},
        {"Authorization": "Bearer s3cret"},
        {"Authorization": "Basic ???"},
    ],
    ids=["missing", "wrong-password", "bearer-not-configured", "garbled"],
)
def test_missing_or_wrong_credentials_are_refused_with_401(headers):
    with pytest.raises(Rejected) as refused:
        Brevo(CONFIG).verify(delivery(payload("hard_bounce.json"), headers))

    assert refused.value.status == 401


BEARER_CONFIG = {"BREVO_WEBHOOK_BEARER_TOKEN": "tok-old,tok-new"}


@pytest.mark.parametrize("token", ["tok-old", "tok-new"])
def test_every_rotated_bearer_token_verifies(token):
    Brevo(BEARER_CONFIG).verify(
        delivery(payload("hard_bounce.json"), {"Authorization": f"Bearer {token}"})
    )


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer tok-other"}, {"Authorization": "Token tok-new"}],
    ids=["missing", "wrong-token", "wrong-scheme"],
)
def test_missing_or_wrong_bearer_token_is_refused_with_401(headers):
    with pytest.raises(Rejected) as refused:
        Brevo(BEARER_CONFIG).verify(delivery(payload("hard_bounce.json"), headers))

    assert refused.value.status == 401


def test_with_both_configured_either_credential_verifies():
    """Both travel in the Authorization header, so one request carries only one of them."""
    provider = Brevo({**CONFIG, **BEARER_CONFIG})

    provider.verify(delivery(payload("hard_bounce.json"), GOOD_AUTH))
    provider.verify(delivery(payload("hard_bounce.json"), {"Authorization": "Bearer tok-new"}))


ALLOWED_CONFIG = {**CONFIG, "BREVO_WEBHOOK_ALLOWED_IPS": "1.179.112.0/20, 2001:db8::/32"}


@pytest.mark.parametrize("address", [BREVO_ADDRESS, "::ffff:1.179.112.20", "2001:db8::7"])
def test_allowed_address_with_credentials_verifies(address):
    Brevo(ALLOWED_CONFIG).verify(delivery(payload("hard_bounce.json"), remote_addr=address))


@pytest.mark.parametrize("address", ["203.0.113.9", None, "not-an-address"])
def test_address_outside_the_allow_list_is_refused_with_403(address):
    with pytest.raises(Rejected) as refused:
        Brevo(ALLOWED_CONFIG).verify(delivery(payload("hard_bounce.json"), remote_addr=address))

    assert refused.value.status == 403


def test_allowed_address_still_needs_credentials():
    with pytest.raises(Rejected) as refused:
        Brevo(ALLOWED_CONFIG).verify(delivery(payload("hard_bounce.json"), headers={}))

    assert refused.value.status == 401


def test_storage_failure_answer_is_429_so_brevo_retries():
    """docs/retry-mechanism: Brevo retries on 429 and drops the event on other 4xx and 5xx."""
    assert Brevo.retry_status == 429


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff",
        b"42",
        json.dumps(["not an object"]).encode(),
        json.dumps({"email": "a@example.com", "ts_event": 1709656090}).encode(),
        json.dumps({"event": 7, "email": "a@example.com", "ts_event": 1709656090}).encode(),
        json.dumps({"event": "delivered", "email": "a@example.com"}).encode(),
        json.dumps({"event": "delivered", "email": "a@example.com", "ts_event": "soon"}).encode(),
        json.dumps(payload("inbound.json")).encode(),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "scalar",
        "array-of-strings",
        "no-event-name",
        "event-name-not-text",
        "no-time",
        "bad-time",
        "inbound-parse",
    ],
)
def test_malformed_body_is_refused(body):
    with pytest.raises(Malformed):
        parse(body)


def test_enabling_without_credentials_names_both_variables():
    with pytest.raises(ConfigError) as error:
        Brevo({"BREVO_WEBHOOK_ALLOWED_IPS": "1.179.112.0/20"})

    assert "SUPPRESS_BREVO_WEBHOOK_BASIC_AUTH" in str(error.value)
    assert "SUPPRESS_BREVO_WEBHOOK_BEARER_TOKEN" in str(error.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("WEBHOOK_BASIC_AUTH", "no-colon"),
        ("WEBHOOK_ALLOWED_IPS", "1.179.112.0/99"),
        ("WEBHOOK_ALLOWED_IPS", "brevo.com"),
    ],
)
def test_bad_setting_names_its_variable(key, value):
    with pytest.raises(ConfigError, match=f"SUPPRESS_BREVO_{key}"):
        Brevo({**CONFIG, f"BREVO_{key}": value})


def test_webhook_settings_need_no_api_key():
    assert Brevo(CONFIG).settings == {
        "WEBHOOK_BASIC_AUTH": (("brevo", "s3cret"),),
        "WEBHOOK_BEARER_TOKEN": None,
        "WEBHOOK_ALLOWED_IPS": None,
    }


def test_an_api_key_alone_does_not_enable_the_webhook_endpoint():
    assert not Brevo.is_configured({"BREVO_API_KEY": API_KEY})


# Sync

API_KEY = "xkeysib-0123456789abcdef-sync"
NEWSLETTER = 7


@pytest.fixture
def brevo(httpserver, sync_to):
    fake = FakeBrevo(httpserver, api_key=API_KEY, lists=(NEWSLETTER,))
    sync_to("brevo", fake, API_KEY=API_KEY)
    return fake


def change(address: str, *, reason="unsubscribed", on_list=False, lift=False) -> Change:
    return Change(key=1, email=address, reason=reason, on_list=on_list, lift=lift)


def destination(name="brevo-fi", **options):
    added = sync.add_destination(name, "brevo", **options)
    db.session.commit()
    return added


def test_a_pass_pushes_each_suppression_in_its_own_call(app, brevo, suppressed):
    """ "Update multiple contacts" is retired: one contact per call."""
    destination()
    suppressed("matti@yritys.fi", "maija@yritys.fi", "liisa@yritys.fi")

    (report,) = sync.run()

    assert (report.accepted, report.error) == (3, None)
    assert brevo.calls == [("POST", "/v3/contacts")] * 3
    assert all(contact["emailBlacklisted"] for contact in brevo.contacts.values())


@pytest.mark.parametrize("reason", REASONS)
def test_every_reason_blocklists_the_contact_for_marketing_mail(brevo, account, reason):
    """Brevo records one opt-out, whatever its cause."""
    (outcome,) = Brevo.push(account("brevo"), [change("a@yritys.fi", reason=reason)])

    assert outcome.status == ACCEPTED
    assert brevo.contacts["a@yritys.fi"]["emailBlacklisted"] is True


def test_a_contact_already_on_a_list_is_blocklisted_and_keeps_its_lists(brevo, account):
    brevo.hold("lukija@yritys.fi", lists=[NEWSLETTER])

    Brevo.push(account("brevo"), [change("lukija@yritys.fi")])

    assert brevo.contacts["lukija@yritys.fi"]["emailBlacklisted"] is True
    assert brevo.contacts["lukija@yritys.fi"]["listIds"] == [NEWSLETTER]


def test_pushing_again_what_brevo_holds_is_accepted(brevo, account):
    contacts = account("brevo")
    Brevo.push(contacts, [change("matti@yritys.fi")])

    (again,) = Brevo.push(contacts, [change("matti@yritys.fi")])

    assert again.status == ACCEPTED
    assert len(brevo.contacts) == 1


def test_a_list_suppression_unlinks_the_contact_from_the_destinations_list(brevo, account):
    brevo.hold("lukija@yritys.fi", lists=[NEWSLETTER, 8])

    (outcome,) = Brevo.push(
        account("brevo", target=str(NEWSLETTER)), [change("lukija@yritys.fi", on_list=True)]
    )

    assert outcome.status == ACCEPTED
    assert brevo.contacts["lukija@yritys.fi"]["listIds"] == [8]
    assert brevo.contacts["lukija@yritys.fi"]["emailBlacklisted"] is False


def test_a_list_suppression_of_a_contact_brevo_lacks_is_accepted_and_creates_none(brevo, account):
    (outcome,) = Brevo.push(
        account("brevo", target=str(NEWSLETTER)), [change("vieras@yritys.fi", on_list=True)]
    )

    assert outcome.status == ACCEPTED
    assert brevo.contacts == {}


def test_a_list_suppression_without_a_brevo_list_id_is_refused(app, brevo, suppressed, outbox):
    create_list("uutiskirje", name="Uutiskirje")
    destination(list_slug="uutiskirje")
    suppressed("lukija@yritys.fi", scope="uutiskirje")

    (report,) = sync.run()

    assert (report.refused, outbox("lukija@yritys.fi").status) == (1, REFUSED)
    assert "Brevo list id" in outbox("lukija@yritys.fi").detail
    assert brevo.pushes() == 0


def test_a_list_id_brevo_does_not_have_refuses_the_change_in_its_words(brevo, account):
    brevo.hold("lukija@yritys.fi", lists=[NEWSLETTER])

    (outcome,) = Brevo.push(
        account("brevo", target="99"), [change("lukija@yritys.fi", on_list=True)]
    )

    assert (outcome.status, outcome.detail) == (
        REFUSED,
        "PUT /contacts/<address>: HTTP 400 List ID does not exist",
    )


def test_a_lifted_suppression_unblocks_the_contact(app, brevo, synced_then_lifted):
    destination()
    synced_then_lifted("palaaja@yritys.fi")

    (report,) = sync.run()

    assert report.lifted == 1
    assert brevo.contacts["palaaja@yritys.fi"]["emailBlacklisted"] is False
    assert brevo.calls[-1] == ("PUT", "/v3/contacts/palaaja@yritys.fi")


def test_a_lift_of_a_contact_brevo_no_longer_has_is_accepted(brevo, account):
    (outcome,) = Brevo.push(account("brevo"), [change("poissa@yritys.fi", lift=True)])

    assert outcome.status == ACCEPTED
    assert brevo.contacts == {}


def test_a_lift_of_a_list_suppression_is_refused_as_brevo_keeps_no_list_opt_out(brevo, account):
    (outcome,) = Brevo.push(
        account("brevo", target=str(NEWSLETTER)),
        [change("lukija@yritys.fi", on_list=True, lift=True)],
    )

    assert outcome.status == REFUSED
    assert "consent" in outcome.detail
    assert brevo.calls == []


def test_an_address_brevo_refuses_is_recorded_refused_in_its_words(app, brevo, suppressed, outbox):
    destination()
    brevo.invalid.add("outo@yritys.fi")
    suppressed("outo@yritys.fi", "matti@yritys.fi")

    (report,) = sync.run()

    assert (report.accepted, report.refused) == (1, 1)
    refusal = outbox("outo@yritys.fi")
    assert (refusal.status, refusal.detail) == (
        REFUSED,
        "POST /contacts: HTTP 400 Invalid email address",
    )


def test_a_wrong_api_key_is_a_fatal_api_error(app, brevo, account, monkeypatch):
    monkeypatch.setitem(app.config, "BREVO_API_KEY", "xkeysib-wrong")

    with pytest.raises(ApiError) as failed:
        Brevo.push(account("brevo"), [change("a@yritys.fi")])

    assert (failed.value.status, failed.value.fatal) == (401, True)
    assert "Key not found" in str(failed.value)


def test_a_failed_call_names_no_address(brevo, account):
    """The address is in an update's path; sync logs a failed call's message."""
    brevo.hold("palaaja@yritys.fi", blacklisted=True)
    brevo.fail_next(503, times=3)

    with pytest.raises(ApiError) as failed:
        Brevo.push(account("brevo"), [change("palaaja@yritys.fi", lift=True)])

    assert "palaaja" not in str(failed.value)
    assert "PUT /contacts/<address>: HTTP 503" in str(failed.value)


def test_a_rate_limit_without_retry_after_waits_out_the_reset_header(brevo, account):
    """docs/limit-headers: Brevo's 429 gives x-sib-ratelimit-reset instead of Retry-After."""
    brevo.fail_next(429, headers={"x-sib-ratelimit-reset": "1"})
    started = time.monotonic()

    (outcome,) = Brevo.push(account("brevo"), [change("a@yritys.fi")])

    assert outcome.status == ACCEPTED
    assert time.monotonic() - started >= 1


def test_a_pull_pages_through_blocklisted_contacts_and_the_transactional_blocklist(brevo, account):
    for n in range(2300):
        brevo.hold(f"asiakas{n}@yritys.fi", blacklisted=n % 2 == 0)
    moment = datetime(2026, 1, 5, tzinfo=UTC)
    for n in range(250):
        brevo.block(f"pomppu{n}@yritys.fi", "hardBounce", moment)

    pulled = list(Brevo.pull(account("brevo"), None))

    assert len(pulled) == 1150 + 250
    assert {entry.reason for entry in pulled[:1150]} == {"unsubscribed"}
    assert {entry.reason for entry in pulled[1150:]} == {"bounced"}
    assert not any(entry.on_list for entry in pulled)
    assert pulled[-1].at == moment
    assert brevo.calls.count(("GET", "/v3/contacts")) == 3
    assert brevo.calls.count(("GET", "/v3/smtp/blockedContacts")) == 3


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("hardBounce", "bounced"),
        ("contactFlaggedAsSpam", "complained"),
        ("adminBlocked", "manual"),
        ("unsubscribedViaEmail", "unsubscribed"),
        ("unsubscribedViaApi", "unsubscribed"),
        ("unsubscribedViaMA", "unsubscribed"),
        ("somethingNew", "unsubscribed"),
    ],
)
def test_a_transactional_block_is_pulled_as_its_nearest_reason(brevo, account, code, reason):
    brevo.block("estetty@yritys.fi", code, datetime(2026, 1, 5, tzinfo=UTC))

    (pulled,) = Brevo.pull(account("brevo"), None)

    assert (pulled.email, pulled.reason) == ("estetty@yritys.fi", reason)


def test_a_pull_since_a_moment_reads_only_what_changed_after_it(brevo, account):
    since = datetime.now(UTC) - timedelta(days=1)
    brevo.hold("vanha@yritys.fi", blacklisted=True, modified=since - timedelta(days=3))
    brevo.hold("uusi@yritys.fi", blacklisted=True, modified=since + timedelta(hours=1))
    brevo.block("vanha-pomppu@yritys.fi", "hardBounce", since - timedelta(days=3))
    brevo.block("uusi-pomppu@yritys.fi", "hardBounce", since + timedelta(hours=1))

    pulled = list(Brevo.pull(account("brevo"), since))

    assert [entry.email for entry in pulled] == ["uusi@yritys.fi", "uusi-pomppu@yritys.fi"]


def test_a_pulled_block_without_an_address_is_skipped_and_one_without_a_time_kept(brevo, account):
    brevo.block("", "hardBounce", datetime(2026, 1, 5, tzinfo=UTC))
    brevo.block("ajaton@yritys.fi", "hardBounce", datetime(2026, 1, 5, tzinfo=UTC))
    brevo.blocked[-1]["blockedAt"] = "eilen"

    pulled = list(Brevo.pull(account("brevo"), None))

    assert [(entry.email, entry.at) for entry in pulled] == [("ajaton@yritys.fi", None)]


def test_reconcile_imports_what_brevo_blocks_and_we_lacked(app, brevo, suppression_list):
    named = destination()
    brevo.hold("Lahtija@Yritys.fi", blacklisted=True)
    brevo.hold("tilaaja@yritys.fi")
    brevo.block("valittaja@yritys.fi", "contactFlaggedAsSpam", datetime(2026, 1, 5, tzinfo=UTC))

    drift = sync.reconcile(named, full=True, dry_run=False)

    assert drift.imported == 2
    assert suppression_list() == {
        ("lahtija@yritys.fi", "global", "unsubscribed"),
        ("valittaja@yritys.fi", "global", "complained"),
    }
    (report,) = sync.run()
    assert report.accepted == 0
    assert brevo.pushes() == 0, "not pushed back where it came from"


def test_a_bad_api_url_is_named_when_the_destination_is_added(app, monkeypatch):
    monkeypatch.setitem(app.config, "BREVO_API_KEY", API_KEY)
    monkeypatch.setitem(app.config, "BREVO_API_URL", "api.brevo.com/v3")

    with pytest.raises(ConfigError, match="SUPPRESS_BREVO_API_URL"):
        sync.add_destination("brevo-fi", "brevo")
