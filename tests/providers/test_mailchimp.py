"""Mailchimp: the audience webhook (the URL secret, the validator's GET, the form-encoded events),
and the sync job's pushes and pulls against the Marketing API played by FakeMailchimp.

Mailchimp signs nothing, so there is no body to tamper with undetected: the secret in the URL is
the whole of the authentication, and each test of it is here.
"""

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import pytest
from werkzeug.datastructures import Headers, MultiDict

from suppress import sync
from suppress.config import ConfigError
from suppress.lists import create_list
from suppress.models import REASONS, db
from suppress.providers.api import ApiError
from suppress.providers.delivery import Delivery, Malformed, Rejected, Reply
from suppress.providers.mailchimp import API_URL, EVENT_MAP, Mailchimp
from suppress.providers.syncing import ACCEPTED, Change
from tests.providers.fakes.mailchimp import FakeMailchimp, subscriber_hash

PAYLOADS = Path(__file__).parent / "payloads" / "mailchimp"
SECRET = "kz3Jq8vR2mWx5Tn7"
WEBHOOK_URL = "https://suppress.example.net/webhooks/mailchimp"
LIST_ID = "a6b5da1054"


def provider(
    secret: str = SECRET, list_ids: str = f"news={LIST_ID},offers=b7c6eb2165"
) -> Mailchimp:
    return Mailchimp({"MAILCHIMP_WEBHOOK_SECRET": secret, "MAILCHIMP_LIST_IDS": list_ids})


def delivery(
    name: str | None = None, *, query: str = f"?secret={SECRET}", method: str = "POST"
) -> Delivery:
    body = (PAYLOADS / name).read_bytes() if name else b""
    return form_delivery(body, query=query, method=method)


def form_delivery(
    body: bytes, *, query: str = f"?secret={SECRET}", method: str = "POST"
) -> Delivery:
    """As the blueprint builds it: the raw body and its parsed form fields."""
    headers = Headers(
        {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "MailChimp"}
    )
    form = MultiDict(parse_qsl(body.decode(), keep_blank_values=True))
    return Delivery(method=method, url=WEBHOOK_URL + query, headers=headers, body=body, form=form)


def parse(name: str):
    return provider().parse(delivery(name))


def test_validation_get_with_the_secret_is_answered_200():
    """ "About Webhooks": the validator checks a new webhook URL with a GET."""
    mailchimp = provider()
    request = delivery(method="GET")

    mailchimp.verify(request)

    assert mailchimp.handshake(request) == Reply()


def test_validation_get_without_the_secret_is_refused():
    with pytest.raises(Rejected) as caught:
        provider().verify(delivery(method="GET", query=""))

    assert caught.value.status == 403


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?token=" + SECRET,
        "?secret=",
        "?secret=guess",
        f"?secret={SECRET}x",
        f"?secret=x&secret={SECRET}",
    ],
    ids=["none", "other-name", "empty", "wrong", "longer", "twice"],
)
def test_post_without_the_right_secret_is_refused(query):
    with pytest.raises(Rejected) as caught:
        provider().verify(delivery("unsubscribe.txt", query=query))

    assert caught.value.status == 403


def test_either_secret_is_accepted_while_one_rotates():
    mailchimp = provider(secret=f"old-secret,{SECRET}")

    mailchimp.verify(delivery("unsubscribe.txt"))
    mailchimp.verify(delivery("unsubscribe.txt", query="?secret=old-secret"))


def test_unsubscribe_is_a_list_unsubscribe_for_the_mapped_list():
    mailchimp = provider()
    request = delivery("unsubscribe.txt")

    mailchimp.verify(request)
    assert mailchimp.handshake(request) is None
    [event] = mailchimp.parse(request)

    assert event.provider == "mailchimp"
    assert (event.type, event.raw_type) == ("unsubscribed", "unsubscribe")
    assert event.recipient == "ada@example.com"
    assert (event.list_ref, event.list_slug) == (LIST_ID, "news")
    assert event.campaign == "4fjk2ma9xd"
    assert event.occurred_at == datetime(2026, 3, 9, 21, 40, 57, tzinfo=UTC)
    assert len(event.provider_event_id) == 64


def test_audience_not_in_list_ids_leaves_the_slug_empty():
    [event] = provider(list_ids="offers=b7c6eb2165").parse(delivery("unsubscribe.txt"))

    assert (event.list_ref, event.list_slug) == (LIST_ID, None)


def test_synthetic_id_is_stable_for_a_retry_and_differs_for_another_event():
    first = parse("unsubscribe.txt")[0].provider_event_id
    retry = parse("unsubscribe.txt")[0].provider_event_id
    other = parse("subscribe.txt")[0].provider_event_id

    assert first == retry
    assert first != other


@pytest.mark.parametrize(
    ("name", "kind", "bounce_class", "recipient"),
    [
        ("cleaned-hard.txt", "bounced", "hard", "gone@example.org"),
        ("cleaned-abuse.txt", "complained", None, "angry@example.org"),
        ("unsubscribe-abuse.txt", "complained", None, "ada@example.com"),
    ],
)
def test_cleaned_and_abuse_reports(name, kind, bounce_class, recipient):
    """R-MBP-4: a spam report (reason abuse) is a complaint, whichever event carries it."""
    [event] = parse(name)

    assert (event.type, event.bounce_class, event.recipient) == (kind, bounce_class, recipient)
    assert event.list_slug == "news"


@pytest.mark.parametrize("name", ["cleaned-abuse.txt", "unsubscribe-abuse.txt", "campaign.txt"])
def test_audience_events_name_no_sender(name):
    """R-MBP-4 counts per sending domain, but audience webhooks carry no sender."""
    assert {event.sender for event in parse(name)} == {None}


def test_cleaned_reason_is_kept_as_the_bounce_text_and_an_unsubscribe_has_none():
    assert parse("cleaned-hard.txt")[0].diagnostic == "hard"
    assert parse("unsubscribe.txt")[0].diagnostic is None


def test_subscribe_is_a_resubscribe():
    [event] = parse("subscribe.txt")

    assert (event.type, event.recipient, event.ip) == (
        "resubscribed",
        "ada@example.com",
        "198.51.100.23",
    )


def test_email_change_names_the_new_address():
    [event] = parse("upemail.txt")

    assert (event.type, event.recipient) == ("unknown", "augusta@example.com")


def test_campaign_event_has_no_recipient():
    [event] = parse("campaign.txt")

    assert (event.type, event.recipient, event.list_ref) == ("unknown", None, LIST_ID)


@pytest.mark.parametrize(("raw_type", "kind"), sorted(EVENT_MAP.items()))
def test_documented_event_type_maps_as_intended(raw_type, kind):
    form = {"type": raw_type, "fired_at": "2026-03-09 21:40:57", "data[email]": "a@example.com"}

    [event] = provider().parse(form_delivery(urlencode(form).encode()))

    assert (event.raw_type, event.type) == (raw_type, kind)


def test_undocumented_type_is_unknown_never_an_error():
    [event] = provider().parse(form_delivery(b"type=archive&fired_at=2026-03-09+21%3A40%3A57"))

    assert (event.type, event.raw_type, event.recipient) == ("unknown", "archive", None)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{"type": "unsubscribe"}',
        b"type=unsubscribe&data%5Bemail%5D=a%40example.com",
        b"fired_at=2026-03-09+21%3A40%3A57&data%5Bemail%5D=a%40example.com",
        b"type=unsubscribe&fired_at=last+tuesday&data%5Bemail%5D=a%40example.com",
        b"type=cleaned&fired_at=2026-03-09+21%3A40%3A57&data%5Breason%5D=hard",
    ],
    ids=["empty", "json", "no-time", "no-type", "bad-time", "no-email"],
)
def test_form_not_as_documented_is_malformed(body):
    with pytest.raises(Malformed):
        provider().parse(form_delivery(body))


def test_missing_secret_names_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_MAILCHIMP_WEBHOOK_SECRET"):
        Mailchimp({"MAILCHIMP_LIST_IDS": f"news={LIST_ID}"})


def test_an_api_key_alone_does_not_enable_the_webhook_endpoint():
    assert not Mailchimp.is_configured({"MAILCHIMP_API_KEY": API_KEY})


def test_bad_list_ids_name_the_variable():
    with pytest.raises(ConfigError, match="SUPPRESS_MAILCHIMP_LIST_IDS"):
        Mailchimp({"MAILCHIMP_WEBHOOK_SECRET": SECRET, "MAILCHIMP_LIST_IDS": "news"})


# Sync

API_KEY = "0123456789abcdef0123456789abcdef-us6"


@pytest.fixture
def mailchimp(httpserver, sync_to):
    fake = FakeMailchimp(httpserver, api_key=API_KEY, audience=LIST_ID)
    sync_to("mailchimp", fake, API_KEY=API_KEY)
    return fake


def changes(*addresses: str, reason: str = "unsubscribed", on_list: bool = False) -> list[Change]:
    return [
        Change(key=n, email=address, reason=reason, on_list=on_list)
        for n, address in enumerate(addresses, start=1)
    ]


def destination(name="uutiset", **options):
    added = sync.add_destination(name, "mailchimp", target=LIST_ID, **options)
    db.session.commit()
    return added


def test_a_pass_pushes_every_suppression_in_batches_of_at_most_500(app, mailchimp, suppressed):
    destination()
    suppressed(*(f"lukija{n}@yritys.fi" for n in range(1200)))

    (report,) = sync.run()

    assert (report.accepted, report.error) == (1200, None)
    assert mailchimp.calls.count(("POST", f"/3.0/lists/{LIST_ID}")) == 3
    assert {member["status"] for member in mailchimp.members.values()} == {"unsubscribed"}
    assert len(mailchimp.members) == 1200


@pytest.mark.parametrize("reason", REASONS)
def test_a_bounce_cleans_the_member_and_any_other_reason_unsubscribes_it(
    mailchimp, account, reason
):
    (outcome,) = Mailchimp.push(
        account("mailchimp", target=LIST_ID), changes("a@yritys.fi", reason=reason)
    )

    expected = "cleaned" if reason in ("bounced", "soft_bounced") else "unsubscribed"
    assert outcome.status == ACCEPTED
    assert mailchimp.status_of("a@yritys.fi") == expected


def test_a_list_suppression_unsubscribes_the_member_from_the_destinations_audience(
    mailchimp, account
):
    """The audience is the only scope Mailchimp has: it is the destination's list."""
    mailchimp.hold("lukija@yritys.fi", "subscribed", "2026-01-01T00:00:00+00:00")

    Mailchimp.push(account("mailchimp", target=LIST_ID), changes("lukija@yritys.fi", on_list=True))

    assert mailchimp.status_of("lukija@yritys.fi") == "unsubscribed"


def test_an_address_named_twice_in_a_batch_is_sent_once_and_the_unsubscribe_wins(
    mailchimp, account
):
    both = [
        Change(key=1, email="Maija@yritys.fi", reason="bounced"),
        Change(key=2, email="maija@yritys.fi", reason="unsubscribed", on_list=True),
    ]

    outcomes = Mailchimp.push(account("mailchimp", target=LIST_ID), both)

    assert [outcome.status for outcome in outcomes] == [ACCEPTED, ACCEPTED]
    assert mailchimp.status_of("maija@yritys.fi") == "unsubscribed"


def test_pushing_again_what_the_audience_holds_is_accepted(mailchimp, account):
    audience = account("mailchimp", target=LIST_ID)
    Mailchimp.push(audience, changes("matti@yritys.fi"))

    (again,) = Mailchimp.push(audience, changes("matti@yritys.fi"))

    assert again.status == ACCEPTED
    assert len(mailchimp.members) == 1


def test_an_address_mailchimp_refuses_is_recorded_refused_in_its_words(
    app, mailchimp, suppressed, outbox
):
    """ "Forgotten Email Not Subscribed": a permanently deleted contact cannot be imported."""
    destination()
    mailchimp.forgotten.add("poistettu@yritys.fi")
    suppressed("poistettu@yritys.fi", "matti@yritys.fi")

    (report,) = sync.run()

    assert (report.accepted, report.refused) == (1, 1)
    assert outbox("poistettu@yritys.fi").status == "refused"
    assert "permanently deleted and cannot be re-imported" in outbox("poistettu@yritys.fi").detail


def test_a_lifted_suppression_is_refused_and_the_member_stays_unsubscribed(
    app, mailchimp, synced_then_lifted, outbox
):
    """Mailchimp lets only the person re-subscribe; the gap is on record, not silent."""
    destination()
    synced_then_lifted("palaaja@yritys.fi")

    (report,) = sync.run()

    lift = outbox("palaaja@yritys.fi")
    assert (lift.action, lift.status, report.lifted) == ("lift", "refused", 0)
    assert "cannot lift" in lift.detail
    assert mailchimp.status_of("palaaja@yritys.fi") == "unsubscribed"
    assert mailchimp.pushes() == 1


def test_a_wrong_api_key_is_a_fatal_api_error(mailchimp, account, monkeypatch, app):
    monkeypatch.setitem(app.config, "MAILCHIMP_API_KEY", "fedcba9876543210-us6")

    with pytest.raises(ApiError) as failed:
        Mailchimp.push(account("mailchimp", target=LIST_ID), changes("a@yritys.fi"))

    assert (failed.value.status, failed.value.fatal) == (401, True)
    assert mailchimp.members == {}


def test_an_audience_mailchimp_does_not_have_fails_the_call_with_its_404(mailchimp, account):
    with pytest.raises(ApiError, match="HTTP 404"):
        Mailchimp.push(account("mailchimp", target="0000000000"), changes("a@yritys.fi"))


def test_the_base_url_names_the_data_centre_of_the_api_key():
    api = Mailchimp.api({"API_KEY": API_KEY, "API_URL": API_URL}, timeout=5, retries=0)

    assert api.base_url == "https://us6.api.mailchimp.com/3.0"
    api.close()


def test_a_key_without_its_data_centre_is_refused_when_the_destination_is_added(app, monkeypatch):
    monkeypatch.setitem(app.config, "MAILCHIMP_API_KEY", "0123456789abcdef")

    with pytest.raises(ConfigError, match="SUPPRESS_MAILCHIMP_API_URL"):
        sync.add_destination("uutiset", "mailchimp", target=LIST_ID)


def test_a_destination_without_an_audience_takes_the_configured_one(
    app, mailchimp, monkeypatch, suppressed
):
    monkeypatch.setitem(app.config, "MAILCHIMP_AUDIENCE_ID", LIST_ID)
    sync.add_destination("uutiset", "mailchimp")
    db.session.commit()
    suppressed("matti@yritys.fi")

    (report,) = sync.run()

    assert report.accepted == 1
    assert mailchimp.status_of("matti@yritys.fi") == "unsubscribed"


def test_a_pull_pages_through_unsubscribed_and_cleaned_members(mailchimp, account):
    for n in range(2300):
        mailchimp.hold(f"lahtija{n}@yritys.fi", "unsubscribed", "2026-01-02T00:00:00+00:00")
    mailchimp.hold("kuollut@yritys.fi", "cleaned", "2026-01-03T00:00:00+00:00")
    mailchimp.hold("tilaaja@yritys.fi", "subscribed", "2026-01-03T00:00:00+00:00")

    pulled = list(Mailchimp.pull(account("mailchimp", target=LIST_ID), None))

    assert len(pulled) == 2301
    assert pulled[-1].email == "kuollut@yritys.fi"
    assert (pulled[-1].reason, pulled[-1].on_list) == ("bounced", False)
    assert {(entry.reason, entry.on_list) for entry in pulled[:-1]} == {("unsubscribed", True)}
    assert pulled[0].at == datetime(2026, 1, 2, tzinfo=UTC)
    assert mailchimp.calls.count(("GET", f"/3.0/lists/{LIST_ID}/members")) == 4


def test_a_pull_since_a_moment_reads_only_members_changed_after_it(mailchimp, account):
    mailchimp.hold("vanha@yritys.fi", "unsubscribed", "2026-01-01T00:00:00+00:00")
    mailchimp.hold("uusi@yritys.fi", "unsubscribed", "2026-02-01T00:00:00+00:00")

    since = datetime(2026, 1, 15, tzinfo=UTC)
    pulled = list(Mailchimp.pull(account("mailchimp", target=LIST_ID), since))

    assert [entry.email for entry in pulled] == ["uusi@yritys.fi"]


def test_a_pulled_member_without_an_address_is_skipped_and_one_without_a_time_kept(
    mailchimp, account
):
    mailchimp.hold("", "unsubscribed", "2026-01-02T00:00:00+00:00")
    mailchimp.hold("ajaton@yritys.fi", "unsubscribed", "2026-01-02T00:00:00+00:00")
    mailchimp.members[subscriber_hash("ajaton@yritys.fi")]["last_changed"] = "eilen"

    pulled = list(Mailchimp.pull(account("mailchimp", target=LIST_ID), None))

    assert [(entry.email, entry.at) for entry in pulled] == [("ajaton@yritys.fi", None)]


def test_reconcile_imports_the_audiences_unsubscribes_into_the_destinations_list(
    app, mailchimp, suppression_list
):
    create_list("uutiskirje", name="Uutiskirje")
    named = destination(list_slug="uutiskirje")
    mailchimp.hold("Lahtija@Yritys.fi", "unsubscribed", "2026-01-02T00:00:00+00:00")
    mailchimp.hold("kuollut@yritys.fi", "cleaned", "2026-01-02T00:00:00+00:00")

    drift = sync.reconcile(named, full=True, dry_run=False)

    assert drift.imported == 2
    assert suppression_list() == {
        ("lahtija@yritys.fi", "uutiskirje", "unsubscribed"),
        ("kuollut@yritys.fi", "global", "bounced"),
    }
