"""Mailjet Event API: basic auth in the callback URL, single or grouped (Version 2) events."""

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from suppress import suppressions, sync
from suppress.config import ConfigError
from suppress.lists import create_list
from suppress.models import REASONS, SyncState, db
from suppress.providers.api import ApiError
from suppress.providers.delivery import Delivery, Malformed, Rejected, Reply
from suppress.providers.mailjet import EVENT_TYPES, NO_LIST, Mailjet
from suppress.providers.syncing import Account, Change
from tests.providers.fakes.mailjet import FakeMailjet

PAYLOADS = Path(__file__).parent / "payloads" / "mailjet"
URL = "https://suppress.example.com/webhooks/mailjet"
CONFIG = {"MAILJET_WEBHOOK_BASIC_AUTH": "mailjet:s3cret"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


GOOD_AUTH = {"Authorization": basic("mailjet", "s3cret")}


def payload(name: str, **changes: Any) -> Any:
    document = json.loads((PAYLOADS / name).read_text())
    if changes:
        document.update(changes)
    return document


def without(name: str, key: str) -> dict[str, Any]:
    return {field: value for field, value in payload(name).items() if field != key}


def delivery(body: Any, headers: dict[str, str] | None = None, method: str = "POST") -> Delivery:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Delivery(
        method=method,
        url=URL,
        headers=Headers(GOOD_AUTH if headers is None else headers),
        body=raw,
        remote_addr="87.253.232.1",
    )


def parse(body: Any):
    return Mailjet(CONFIG).parse(delivery(body))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("sample", "kind", "bounce_class", "recipient", "occurred_at"),
    [
        ("sent.json", "delivered", None, "anna@example.com", utc(2024, 3, 5, 16, 33, 54)),
        ("bounce.json", "bounced", "hard", "gone@example.org", utc(2024, 3, 5, 16, 28, 10)),
        ("unsub.json", "unsubscribed", None, "leaving@example.com", utc(2024, 3, 5, 10, 15, 37)),
    ],
)
def test_authenticated_sample_verifies_and_parses_to_one_event(
    sample, kind, bounce_class, recipient, occurred_at
):
    provider = Mailjet(CONFIG)
    request = delivery(payload(sample))

    provider.verify(request)
    (event,) = provider.parse(request)

    assert (event.provider, event.type, event.bounce_class) == ("mailjet", kind, bounce_class)
    assert (event.recipient, event.occurred_at, event.raw_type) == (
        recipient,
        occurred_at,
        payload(sample)["event"],
    )
    assert len(event.provider_event_id) == 64


@pytest.mark.parametrize("name", ["sent.json", "grouped.json", "bounce.json", "unsub.json"])
def test_no_event_names_a_sender_as_none_is_documented(name):
    """R-MBP-4 counts per sending domain, but Mailjet's events carry no sender."""
    assert {event.sender for event in parse(payload(name))} == {None}


def test_sent_keeps_the_smtp_reply_message_id_and_campaign():
    (event,) = parse(payload("sent.json"))

    assert event.diagnostic.startswith("sent (250 2.0.0 OK")
    assert event.message_id == "19421777835146490"
    assert event.campaign == "spring"


def test_bounce_diagnostic_names_the_documented_cause_and_smtp_text():
    (event,) = parse(payload("bounce.json"))

    assert event.diagnostic == (
        "recipient: user unknown: 550 5.1.1 <gone@example.org>: Recipient address rejected: "
        "User unknown"
    )
    assert event.campaign is None  # mj_campaign_id 0 means none


def test_unsub_names_its_contact_list_and_the_clicker():
    (event,) = parse(payload("unsub.json"))

    assert event.list_ref == "1"
    assert event.ip == "192.0.2.44"
    assert event.user_agent.startswith("Mozilla/5.0 (Macintosh")
    assert event.campaign == "7276"


def test_event_without_a_message_id_is_kept():
    (event,) = parse(payload("sent.json", MessageID=None, mj_message_id=None))

    assert (event.type, event.message_id) == ("delivered", None)


def test_grouped_array_fans_out_one_event_per_item():
    """Version 2 callbacks group a second's events of mixed types in one array."""
    provider = Mailjet(CONFIG)
    request = delivery(payload("grouped.json"))

    provider.verify(request)
    events = provider.parse(request)

    assert [(event.type, event.recipient) for event in events] == [
        ("opened", "anna@example.com"),
        ("clicked", "anna@example.com"),
        ("complained", "bob@example.net"),
        ("dropped", "carl@example.com"),
    ]
    assert events[1].url == "https://example.com/spring-sale"
    assert events[3].message_id == "18858825588804172"  # only the deprecated mj_message_id
    assert events[3].diagnostic == "mailjet: preblocked"
    assert len({event.provider_event_id for event in events}) == 4


def test_empty_grouped_array_has_no_events():
    assert parse([]) == []


def test_opens_and_clicks_carry_no_machine_verdict():
    """Mailjet documents no machine-open flag, so the shared heuristic decides later."""
    assert all(event.machine is None for event in parse(payload("grouped.json")))


@pytest.mark.parametrize(
    ("hard_bounce", "error", "kind", "bounce_class"),
    [
        (True, "user unknown", "bounced", "hard"),
        (False, "quota exceeded", "bounced", "soft"),
        (False, "greylisted", "deferred", None),
        (True, "greylisted", "bounced", "hard"),
    ],
)
def test_bounce_class_comes_from_hard_bounce(hard_bounce, error, kind, bounce_class):
    (event,) = parse(payload("bounce.json", hard_bounce=hard_bounce, error=error))

    assert (event.type, event.bounce_class) == (kind, bounce_class)


# The Event API's event list ("Events"), read as a spec.
DOCUMENTED_EVENTS = {
    "sent": ("delivered", None),
    "open": ("opened", None),
    "click": ("clicked", None),
    "bounce": ("bounced", "soft"),
    "blocked": ("dropped", None),
    "spam": ("complained", None),
    "unsub": ("unsubscribed", None),
}


def test_every_documented_event_is_in_the_table():
    assert set(EVENT_TYPES) == set(DOCUMENTED_EVENTS)


@pytest.mark.parametrize(("name", "expected"), DOCUMENTED_EVENTS.items())
def test_event_maps_as_intended(name, expected):
    (event,) = parse(payload("bounce.json", event=name, hard_bounce=False))

    assert (event.type, event.bounce_class) == expected


def test_unknown_event_parses_to_unknown():
    (event,) = parse(payload("sent.json", event="forwarded"))

    assert (event.type, event.raw_type) == ("unknown", "forwarded")


def test_a_repeated_delivery_gets_the_same_event_ids():
    first = [event.provider_event_id for event in parse(payload("grouped.json"))]
    again = [event.provider_event_id for event in parse(payload("grouped.json"))]

    assert first == again


@pytest.mark.parametrize(
    "changes",
    [{"time": 1709656435}, {"email": "other@example.com"}, {"MessageID": 1}, {"event": "open"}],
)
def test_two_different_events_get_different_ids(changes):
    (one,) = parse(payload("sent.json"))
    (other,) = parse(payload("sent.json", **changes))

    assert one.provider_event_id != other.provider_event_id


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": basic("mailjet", "wrong")}, {"Authorization": "Bearer s3cret"}],
    ids=["missing", "wrong-password", "other-scheme"],
)
def test_missing_or_wrong_credentials_are_refused_with_401(headers):
    with pytest.raises(Rejected) as refused:
        Mailjet(CONFIG).verify(delivery(payload("sent.json"), headers))

    assert refused.value.status == 401
    assert refused.value.headers["WWW-Authenticate"].startswith("Basic")


def test_every_rotated_credential_verifies():
    provider = Mailjet({"MAILJET_WEBHOOK_BASIC_AUTH": "mailjet:old,mailjet:new"})

    for password in ("old", "new"):
        provider.verify(
            delivery(payload("sent.json"), {"Authorization": basic("mailjet", password)})
        )


@pytest.mark.parametrize(("method", "body"), [("GET", b""), ("POST", b""), ("POST", b"  \n")])
def test_url_probe_gets_200_and_stores_nothing(method, body):
    assert Mailjet(CONFIG).handshake(delivery(body, method=method)) == Reply()


def test_an_event_is_no_handshake():
    assert Mailjet(CONFIG).handshake(delivery(payload("sent.json"))) is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff",
        b"true",
        json.dumps([1, 2]).encode(),
        json.dumps(without("sent.json", "event")).encode(),
        json.dumps(without("sent.json", "email")).encode(),
        json.dumps(without("sent.json", "time")).encode(),
        json.dumps(payload("sent.json", time="yesterday")).encode(),
        json.dumps(payload("sent.json", email="")).encode(),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "scalar",
        "array-of-numbers",
        "no-event",
        "no-email",
        "no-time",
        "bad-time",
        "empty-email",
    ],
)
def test_malformed_body_is_refused(body):
    with pytest.raises(Malformed):
        parse(body)


def test_missing_basic_auth_names_its_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_MAILJET_WEBHOOK_BASIC_AUTH"):
        Mailjet({"MAILJET_API_KEY": "public-key"})


def test_bad_basic_auth_names_its_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_MAILJET_WEBHOOK_BASIC_AUTH"):
        Mailjet({**CONFIG, "MAILJET_WEBHOOK_BASIC_AUTH": "no-colon"})


def test_webhook_settings_hold_no_api_credentials():
    assert Mailjet(CONFIG).settings == {"WEBHOOK_BASIC_AUTH": (("mailjet", "s3cret"),)}


def test_an_api_key_alone_does_not_enable_the_webhook_endpoint():
    assert not Mailjet.is_configured({"MAILJET_API_KEY": "public-key"})


# Sync: the contacts API, played by FakeMailjet.

API_KEY, API_SECRET = "mj-public-0123456789", "mj-private-9876543210"
LIST_ID = 17


@pytest.fixture
def mailjet(app, httpserver, monkeypatch):
    """A fake Mailjet account the app is configured to reach; its jobs are watched without
    waiting and its calls are retried without delay."""
    fake = FakeMailjet(httpserver, api_key=API_KEY, api_secret=API_SECRET)
    monkeypatch.setitem(app.config, "MAILJET_API_KEY", API_KEY)
    monkeypatch.setitem(app.config, "MAILJET_API_SECRET", API_SECRET)
    monkeypatch.setitem(app.config, "MAILJET_API_URL", fake.url)
    monkeypatch.setattr("suppress.providers.api.BACKOFF_SECONDS", 0)
    monkeypatch.setattr("suppress.providers.mailjet.JOB_POLL_DELAYS", (0, 0, 0))
    return fake


def account(fake: FakeMailjet, secret: str = API_SECRET, target: int | None = LIST_ID) -> Account:
    settings = {"API_KEY": API_KEY, "API_SECRET": secret, "API_URL": fake.url}
    api = Mailjet.api(settings, timeout=5, retries=0)
    return Account(
        "mailjet-fi", None if target is None else str(target), "uutiskirje", settings, api
    )


def change(key: int, email: str, reason: str = "unsubscribed", **flags: bool) -> Change:
    return Change(key=key, email=email, reason=reason, **flags)


def statuses(outcomes) -> dict[int, str]:
    return {outcome.key: outcome.status for outcome in outcomes}


def writes(fake: FakeMailjet) -> list[str]:
    return [path for method, path in fake.calls if method != "GET"]


def test_suppressions_are_excluded_from_campaigns_in_one_bulk_job(mailjet):
    changes = [change(n, f"lukija{n}@yritys.fi") for n in range(3)]
    outcomes = Mailjet.push(account(mailjet), changes)
    assert statuses(outcomes) == dict.fromkeys(range(3), "accepted")
    assert mailjet.excluded() == {f"lukija{n}@yritys.fi" for n in range(3)}
    assert writes(mailjet) == ["/v3/REST/contact/managemanycontacts"]


@pytest.mark.parametrize("reason", [reason for reason in REASONS if reason != "erased"])
def test_every_reason_excludes_the_contact_as_mailjet_records_no_kinds(mailjet, reason):
    Mailjet.push(account(mailjet), [change(1, "matti@yritys.fi", reason)])
    assert mailjet.excluded() == {"matti@yritys.fi"}


def test_a_list_suppression_unsubscribes_from_the_target_list_only(mailjet):
    Mailjet.push(account(mailjet), [change(1, "lukija@yritys.fi", on_list=True)])
    assert mailjet.unsubscribed(LIST_ID) == {"lukija@yritys.fi"}
    assert mailjet.excluded() == set()
    assert writes(mailjet) == [f"/v3/REST/contactslist/{LIST_ID}/managemanycontacts"]


def test_a_list_suppression_without_a_target_list_is_refused_and_says_why(mailjet):
    (outcome,) = Mailjet.push(
        account(mailjet, target=None), [change(1, "a@yritys.fi", on_list=True)]
    )
    assert (outcome.status, outcome.detail) == ("refused", NO_LIST)
    assert mailjet.calls == []


def test_pushing_again_what_mailjet_holds_is_accepted(mailjet):
    mailjet.add_contact("matti@yritys.fi", excluded=True)
    mailjet.subscribe(LIST_ID, "lukija@yritys.fi", unsubscribed=True)
    changes = [change(1, "matti@yritys.fi"), change(2, "lukija@yritys.fi", on_list=True)]
    assert statuses(Mailjet.push(account(mailjet), changes)) == {1: "accepted", 2: "accepted"}
    assert statuses(Mailjet.push(account(mailjet), changes)) == {1: "accepted", 2: "accepted"}
    assert mailjet.excluded() == {"matti@yritys.fi"}


@pytest.mark.parametrize("on_list", [False, True])
def test_an_address_mailjet_refuses_is_recorded_with_its_words_and_the_rest_accepted(
    mailjet, on_list
):
    changes = [
        change(1, "jörö@yritys.fi", on_list=on_list),
        change(2, "ok@yritys.fi", on_list=on_list),
    ]
    outcomes = {outcome.key: outcome for outcome in Mailjet.push(account(mailjet), changes)}
    assert (outcomes[1].status, outcomes[1].detail) == ("refused", "Email: invalid email address")
    assert outcomes[2].status == "accepted"


def test_a_batch_mailjet_refuses_whole_is_pushed_one_contact_at_a_time(mailjet):
    mailjet.fail_next(400, body={"ErrorInfo": "", "ErrorMessage": "Contacts: invalid"})
    changes = [change(1, "yksi@yritys.fi"), change(2, "kaksi@yritys.fi", on_list=True)]
    assert statuses(Mailjet.push(account(mailjet), changes)) == {1: "accepted", 2: "accepted"}
    assert mailjet.excluded() == {"yksi@yritys.fi"}
    assert mailjet.unsubscribed(LIST_ID) == {"kaksi@yritys.fi"}
    assert "/v3/REST/contact" in writes(mailjet)


def test_a_job_still_running_when_the_waits_run_out_leaves_its_changes_pending(mailjet):
    mailjet.job_polls = 10
    (outcome,) = Mailjet.push(account(mailjet), [change(1, "hidas@yritys.fi")])
    assert outcome.status == "pending"
    assert "Mailjet job 35800 is Importing" in outcome.detail


def test_lifting_takes_the_contact_off_the_exclusion_list(mailjet):
    mailjet.add_contact("palaaja@yritys.fi", excluded=True)
    (outcome,) = Mailjet.push(account(mailjet), [change(1, "palaaja@yritys.fi", lift=True)])
    assert outcome.status == "accepted"
    assert mailjet.excluded() == set()


def test_lifting_a_contact_mailjet_no_longer_has_is_accepted(mailjet):
    (outcome,) = Mailjet.push(account(mailjet), [change(1, "poissa@yritys.fi", lift=True)])
    assert outcome.status == "accepted"
    assert mailjet.contacts == {}


def test_lifting_a_list_suppression_subscribes_the_member_again_but_adds_no_one(mailjet):
    mailjet.subscribe(LIST_ID, "palaaja@yritys.fi", unsubscribed=True)
    mailjet.add_contact("vieras@yritys.fi")
    lifts = [
        change(1, "palaaja@yritys.fi", on_list=True, lift=True),
        change(2, "vieras@yritys.fi", on_list=True, lift=True),
    ]
    assert statuses(Mailjet.push(account(mailjet), lifts)) == {1: "accepted", 2: "accepted"}
    assert mailjet.unsubscribed(LIST_ID) == set()
    assert len(mailjet.lists[LIST_ID]) == 1


def test_wrong_credentials_are_a_fatal_api_error(mailjet):
    with pytest.raises(ApiError) as raised:
        Mailjet.push(account(mailjet, secret="not-the-secret"), [change(1, "a@yritys.fi")])
    assert raised.value.fatal
    assert "authentication/authorization failure" in str(raised.value)


def test_an_error_on_one_contact_never_names_its_address(mailjet):
    mailjet.fail_next(500, times=5)
    with pytest.raises(ApiError) as raised:
        Mailjet.push(account(mailjet), [change(1, "salainen@yritys.fi", lift=True)])
    assert "salainen" not in str(raised.value)
    assert "/v3/REST/contact/<address>" in str(raised.value)


def test_pull_pages_through_excluded_contacts_and_the_list_s_unsubscribed_members(mailjet):
    for n in range(2100):
        mailjet.add_contact(f"pois{n}@yritys.fi", excluded=True)
    mailjet.add_contact("valittaja@yritys.fi", excluded=True, complained=True)
    mailjet.add_contact("tilaaja@yritys.fi")
    mailjet.subscribe(LIST_ID, "lukija@yritys.fi", unsubscribed=True)
    mailjet.subscribe(LIST_ID, "tilaaja@yritys.fi", unsubscribed=False)
    pulled = list(Mailjet.pull(account(mailjet), None))
    assert len(pulled) == 2102
    by_address = {entry.email: entry for entry in pulled}
    assert (by_address["pois7@yritys.fi"].reason, by_address["pois7@yritys.fi"].on_list) == (
        "unsubscribed",
        False,
    )
    assert by_address["valittaja@yritys.fi"].reason == "complained"
    assert by_address["lukija@yritys.fi"].on_list
    assert by_address["lukija@yritys.fi"].at is not None
    pages = [path for method, path in mailjet.calls if path == "/v3/REST/contact"]
    assert len(pages) == 3


def test_pull_without_a_target_list_reads_no_list_members(mailjet):
    mailjet.subscribe(LIST_ID, "lukija@yritys.fi", unsubscribed=True)
    assert list(Mailjet.pull(account(mailjet, target=None), None)) == []
    assert [path for _, path in mailjet.calls] == ["/v3/REST/contact"]


def test_a_destination_syncs_end_to_end_in_jobs_of_at_most_a_thousand(app, mailjet):
    """One sync pass through a Mailjet destination: three jobs for 2500 suppressions."""
    create_list("uutiskirje", name="Uutiskirje")
    sync.add_destination("mailjet-fi", "mailjet", target=str(LIST_ID), list_slug="uutiskirje")
    for n in range(2500):
        suppressions.suppress(f"lukija{n}@yritys.fi", reason="unsubscribed", source="test")
    suppressions.suppress(
        "tilaaja@yritys.fi", reason="unsubscribed", scope="uutiskirje", source="test"
    )
    db.session.commit()
    (report,) = sync.run()
    assert (report.accepted, report.error) == (2501, None)
    assert len(mailjet.excluded()) == 2500
    assert mailjet.unsubscribed(LIST_ID) == {"tilaaja@yritys.fi"}
    assert writes(mailjet).count("/v3/REST/contact/managemanycontacts") == 3
    assert set(db.session.scalars(db.select(SyncState.status))) == {"accepted"}


def test_a_destination_s_bad_api_url_names_its_variable(app, monkeypatch):
    monkeypatch.setitem(app.config, "MAILJET_API_KEY", API_KEY)
    monkeypatch.setitem(app.config, "MAILJET_API_SECRET", API_SECRET)
    monkeypatch.setitem(app.config, "MAILJET_API_URL", "https://")
    with pytest.raises(ConfigError, match="SUPPRESS_MAILJET_API_URL"):
        sync.add_destination("mailjet-fi", "mailjet")


def test_a_destination_needs_the_secret_key_beside_the_api_key(app, monkeypatch):
    monkeypatch.setitem(app.config, "MAILJET_API_KEY", API_KEY)
    monkeypatch.delitem(app.config, "MAILJET_API_SECRET", raising=False)
    with pytest.raises(ConfigError, match="SUPPRESS_MAILJET_API_SECRET"):
        sync.add_destination("mailjet-fi", "mailjet")
