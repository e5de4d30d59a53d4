import itertools
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from suppress.addresses import email_hash
from suppress.events import Rules, record_events
from suppress.events.rows import sender_domain
from suppress.lists import create_list, ensure_address
from suppress.models import Address, AuditEntry, Suppression, db
from suppress.models import Event as StoredEvent
from suppress.providers.delivery import Event
from suppress.suppressions import suppress

MATTI = "matti@yritys.fi"
START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
RULES = Rules(
    soft_bounce_limit=3,
    soft_bounce_window=timedelta(days=30),
    soft_bounce_suppression=timedelta(days=30),
    machine_open_window=timedelta(seconds=10),
)
ids = itertools.count(1)


def event(kind: str, recipient: str | None = MATTI, **fields) -> Event:
    fields.setdefault("occurred_at", START)
    fields.setdefault("provider_event_id", f"evt-{next(ids)}")
    return Event(provider="test", type=kind, recipient=recipient, raw_type=kind, **fields)


def record(*events: Event):
    return record_events("test", list(events), RULES)


def suppressed() -> set[tuple[str, str, str]]:
    db.session.expire_all()
    rows = db.session.scalars(select(Suppression))
    return {(row.scope, row.reason, row.source) for row in rows}


def stored_events() -> list[StoredEvent]:
    db.session.expire_all()
    return db.session.scalars(select(StoredEvent).order_by(StoredEvent.id)).all()


@pytest.fixture
def matti(app) -> Address:
    address = ensure_address(MATTI)
    db.session.commit()
    return address


def address_row() -> Address:
    db.session.expire_all()
    return db.session.scalars(select(Address).where(Address.email == MATTI)).one()


def test_a_hard_bounce_suppresses_everywhere(app):
    record(event("bounced", bounce_class="hard", diagnostic="550 5.1.1 user unknown"))
    assert suppressed() == {("global", "bounced", "webhook:test")}
    entry = db.session.scalars(select(AuditEntry)).one()
    assert (entry.actor, entry.action, entry.email_hash) == (
        "webhook:test",
        "suppression.add",
        email_hash(MATTI),
    )


def test_a_complaint_suppresses_everywhere(app):
    """R-MBP-4 (a): before the webhook answers."""
    record(event("complained"))
    assert suppressed() == {("global", "complained", "webhook:test")}


@pytest.mark.parametrize(
    "diagnostic",
    [
        "550 5.7.515 Access denied, sending domain does not meet the required authentication",
        "550-5.7.26 This mail is unauthenticated",
        "421 4.7.23 The sending IP has no PTR record",
    ],
)
def test_a_sender_side_rejection_suppresses_nobody(app, diagnostic, caplog):
    """R-MBP-6: the code describes our domain, not the recipient."""
    with caplog.at_level(logging.WARNING, logger="suppress.events"):
        record(event("bounced", bounce_class="hard", diagnostic=diagnostic))
    assert suppressed() == set()
    assert stored_events()[0].bounce_class == "policy"
    assert "sender-side rejection" in caplog.text
    assert MATTI not in caplog.text


def test_a_mailbox_code_that_merely_contains_a_policy_number_is_a_hard_bounce(app):
    record(event("bounced", bounce_class="hard", diagnostic="550 5.1.10 recipient not found"))
    assert suppressed() == {("global", "bounced", "webhook:test")}


def test_an_unsubscribe_from_a_known_list_suppresses_on_that_list(app):
    create_list("news", "Uutiskirje")
    db.session.commit()
    record(event("unsubscribed", list_slug="news", list_ref="grp-7"))
    assert suppressed() == {("news", "unsubscribed", "webhook:test")}


@pytest.mark.parametrize("list_slug", [None, "no-such-list"])
def test_an_unsubscribe_without_a_list_we_know_suppresses_everywhere(app, list_slug):
    record(event("unsubscribed", list_slug=list_slug))
    assert suppressed() == {("global", "unsubscribed", "webhook:test")}


def test_a_resubscribe_lifts_an_unsubscribe(app):
    record(event("unsubscribed"))
    record(event("resubscribed", occurred_at=START + timedelta(days=1)))
    assert suppressed() == set()
    actions = db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["suppression.add", "suppression.lift"]


@pytest.mark.parametrize("reason", ["complained", "bounced", "objected"])
def test_a_resubscribe_never_lifts_anything_but_an_unsubscribe(app, reason):
    suppress(MATTI, reason=reason, source="link")
    db.session.commit()
    record(event("resubscribed"))
    assert suppressed() == {("global", reason, "link")}


def soft_bounce(days: float) -> Event:
    return event("bounced", bounce_class="soft", occurred_at=START + timedelta(days=days))


def test_the_third_soft_bounce_in_a_month_suppresses_for_a_month(app):
    record(soft_bounce(0), soft_bounce(10))
    assert suppressed() == set()
    record(soft_bounce(20))
    row = db.session.scalars(select(Suppression)).one()
    assert (row.scope, row.reason) == ("global", "soft_bounced")
    assert row.expires_at == START + timedelta(days=50)


def test_a_delivery_between_soft_bounces_starts_the_count_again(app):
    record(
        soft_bounce(0), soft_bounce(1), event("delivered", occurred_at=START + timedelta(days=2))
    )
    record(soft_bounce(3), soft_bounce(4))
    assert suppressed() == set()
    record(soft_bounce(5))
    assert suppressed() == {("global", "soft_bounced", "webhook:test")}


def test_soft_bounces_further_apart_than_the_window_suppress_nobody(app):
    record(soft_bounce(0), soft_bounce(20), soft_bounce(40))
    assert suppressed() == set()


def test_a_repeated_delivery_is_stored_once_and_acted_on_once(app, matti):
    opened = event("opened", occurred_at=START + timedelta(hours=1))
    first, second = record(opened), record(opened)
    assert (first.received, first.stored) == (1, 1)
    assert (second.received, second.stored) == (1, 0)
    assert len(stored_events()) == 1
    assert address_row().open_count == 1


def test_the_same_event_twice_in_one_request_is_stored_once(app, matti):
    opened = event("opened")
    assert record(opened, opened).stored == 1
    assert address_row().open_count == 1


def test_a_large_batch_is_stored_whole(app):
    batch = [event("delivered", recipient=f"person{n}@yritys.fi") for n in range(700)]
    assert record(*batch).stored == 700
    assert len(stored_events()) == 700


def test_human_events_update_the_register(app, matti):
    record(
        event("sent", occurred_at=START),
        event("delivered", occurred_at=START + timedelta(seconds=5), message_id="m1"),
        event("opened", occurred_at=START + timedelta(hours=2), message_id="m1"),
        event("clicked", occurred_at=START + timedelta(hours=3), message_id="m1"),
    )
    row = address_row()
    assert (row.sent_count, row.open_count, row.click_count) == (1, 1, 1)
    assert row.last_sent_at == START
    assert row.last_opened_at == START + timedelta(hours=2)
    assert row.last_clicked_at == row.last_active_at == START + timedelta(hours=3)


def test_an_open_is_not_an_active_contact(app, matti):
    """R-RET-2: opening can be accidental; clicking on a link can be a contact."""
    record(event("opened"))
    assert address_row().last_active_at is None


def test_an_older_event_arriving_late_does_not_move_the_dates_back(app, matti):
    record(event("opened", occurred_at=START + timedelta(days=2)))
    record(event("opened", occurred_at=START))
    row = address_row()
    assert (row.open_count, row.last_opened_at) == (2, START + timedelta(days=2))


@pytest.mark.parametrize(
    "fields",
    [
        {"machine": True},
        {"user_agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"},
        {"user_agent": "Mozilla/5.0 (compatible; Microsoft SafeLinks)"},
    ],
    ids=["provider-flag", "image-proxy", "scanner"],
)
def test_machine_opens_and_clicks_never_count(app, matti, fields):
    record(event("opened", **fields), event("clicked", **fields))
    row = address_row()
    assert (row.open_count, row.click_count, row.last_active_at) == (0, 0, None)
    assert all(stored.machine for stored in stored_events())


def test_an_open_within_seconds_of_delivery_is_a_machine(app, matti):
    record(event("delivered", message_id="m1"))
    record(event("opened", message_id="m1", occurred_at=START + timedelta(seconds=3)))
    assert address_row().open_count == 0
    record(event("opened", message_id="m1", occurred_at=START + timedelta(minutes=30)))
    assert address_row().open_count == 1


@pytest.mark.parametrize("reason", ["objected", "erased"])
def test_nothing_counts_for_a_person_who_objected(app, matti, reason):
    """R-GDPR-10 (b): the objection stops profiling too."""
    suppress(MATTI, reason=reason, source="link")
    db.session.commit()
    record(event("opened"), event("clicked"))
    row = address_row()
    assert (row.open_count, row.click_count) == (0, 0)
    assert len(stored_events()) == 2


def test_nothing_counts_for_a_restricted_person(app, matti):
    matti.restricted = True
    db.session.commit()
    record(event("clicked"))
    assert address_row().click_count == 0


@pytest.mark.parametrize("recipient", [None, "", "not an address", "matti@@yritys.fi"])
def test_an_event_without_a_usable_address_is_kept_without_one(app, recipient):
    record(event("bounced", recipient=recipient, bounce_class="hard"))
    assert [stored.email_hash for stored in stored_events()] == [None]
    assert suppressed() == set()


def test_the_event_log_holds_the_hash_not_the_address(app):
    record(event("delivered", recipient="Matti@Yritys.FI"))
    stored = stored_events()[0]
    assert stored.email_hash == email_hash(MATTI)
    assert MATTI not in repr(stored.__dict__)


@pytest.mark.parametrize(
    ("sender", "domain"),
    [
        ("Name <news@Yritys.FI>", "yritys.fi"),
        ("news@Yritys.FI.", "yritys.fi"),
        ("Yritys.FI", "yritys.fi"),
        (None, None),
        ("", None),
        ("not an address", None),
        ("Name <>", None),
        ("news@", None),
        ("undisclosed-recipients:;", None),
    ],
)
def test_the_sending_domain_is_the_lower_cased_domain_of_the_sender(sender, domain):
    assert sender_domain(sender) == domain


@pytest.mark.parametrize("kind", ["delivered", "complained"])
@pytest.mark.parametrize(
    ("sender", "domain"), [("Name <news@Yritys.FI>", "yritys.fi"), (None, None), ("<>", None)]
)
def test_the_event_log_keeps_the_sending_domain(app, kind, sender, domain):
    """R-MBP-4: complaints and deliveries are counted per sending domain."""
    record(event(kind, sender=sender))
    assert [stored.sender_domain for stored in stored_events()] == [domain]


def test_a_very_long_provider_id_is_kept_stable(app):
    long_id = "0100018c-" + "a" * 300 + ":matti@yritys.fi"
    record(event("delivered", provider_event_id=long_id))
    assert record(event("delivered", provider_event_id=long_id)).stored == 0
    assert stored_events()[0].provider_event_id.startswith("sha256:")


def test_a_failed_commit_leaves_nothing_behind_and_says_so(app, matti, commits_fail):
    with commits_fail(), pytest.raises(db.engine.dialect.loaded_dbapi.OperationalError):
        record(event("complained"), event("clicked"))
    assert stored_events() == []
    assert suppressed() == set()
    assert address_row().click_count == 0


def test_an_open_within_seconds_of_a_delivery_in_the_same_request_is_a_machine(app, matti):
    record(
        event("delivered", message_id="m1"),
        event("opened", message_id="m1", occurred_at=START + timedelta(seconds=3)),
        event("clicked", message_id="m1", occurred_at=START + timedelta(minutes=30)),
    )
    row = address_row()
    assert (row.open_count, row.click_count) == (0, 1)
    assert [stored.machine for stored in stored_events()] == [False, True, False]


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        (["unsubscribed", "resubscribed"], set()),
        (["resubscribed", "unsubscribed"], {("global", "unsubscribed", "webhook:test")}),
        (["unsubscribed", "complained"], {("global", "complained", "webhook:test")}),
    ],
)
def test_events_for_one_address_in_one_request_act_in_their_order(app, kinds, expected):
    record(*(event(kind, occurred_at=START + timedelta(hours=n)) for n, kind in enumerate(kinds)))
    assert suppressed() == expected
    assert len(db.session.scalars(select(AuditEntry)).all()) == len(kinds) - (
        kinds[0] == "resubscribed"
    )


ADD, UPDATE, LIFT = "suppression.add", "suppression.update", "suppression.lift"


@pytest.mark.parametrize(
    ("kinds", "actions"),
    [
        (["bounced", "resubscribed"], [ADD]),
        (["unsubscribed", "bounced", "resubscribed"], [ADD, UPDATE]),
        (["resubscribed", "unsubscribed", "bounced"], [ADD, UPDATE]),
        (["unsubscribed", "resubscribed", "bounced"], [ADD, LIFT, ADD]),
    ],
)
def test_a_bounce_and_a_resubscribe_in_one_request_keep_their_order(app, kinds, actions):
    """A re-subscribe lifts only an unsubscribe, and only one that came before it."""
    record(*(event(kind, bounce_class="hard" if kind == "bounced" else None) for kind in kinds))
    assert suppressed() == {("global", "bounced", "webhook:test")}
    assert db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all() == actions


def test_soft_bounces_of_two_addresses_in_one_request_are_counted_apart(app):
    """The third soft bounce suppresses only its own address, counted in the same statement."""
    other = "liisa@yritys.fi"
    record(soft_bounce(0), soft_bounce(1), event("bounced", other, bounce_class="soft"))
    record(
        soft_bounce(2),
        event("bounced", other, bounce_class="soft", occurred_at=START + timedelta(days=2)),
    )
    rows = db.session.scalars(select(Suppression)).all()
    assert [(row.email_hash, row.reason) for row in rows] == [(email_hash(MATTI), "soft_bounced")]


def mixed_request(domain: str) -> list[Event]:
    """A request of many addresses, some with several events, touching every rule."""
    people = [f"{name}@{domain}" for name in ("aino", "eino", "ilmari", "kerttu", "lempi")]
    aino, eino, ilmari, kerttu, lempi = people
    at = lambda hours: START + timedelta(hours=hours)  # noqa: E731
    return [
        event("sent", aino, occurred_at=at(0)),
        event("delivered", aino, occurred_at=at(0.001)),
        event("opened", aino, occurred_at=at(0.002)),
        event("opened", aino, occurred_at=at(1)),
        event("clicked", aino, occurred_at=at(2)),
        event("unsubscribed", aino, occurred_at=at(3), list_slug="news"),
        event("bounced", eino, occurred_at=at(0), bounce_class="soft"),
        event("bounced", eino, occurred_at=at(1), bounce_class="soft"),
        event("bounced", eino, occurred_at=at(2), bounce_class="soft"),
        event("bounced", eino, occurred_at=at(3), bounce_class="hard"),
        event("complained", ilmari, occurred_at=at(0)),
        event("unsubscribed", ilmari, occurred_at=at(1)),
        event("unsubscribed", kerttu, occurred_at=at(0)),
        event("resubscribed", kerttu, occurred_at=at(1)),
        event("unsubscribed", kerttu, occurred_at=at(2), list_slug="news"),
        event("bounced", lempi, occurred_at=at(0), bounce_class="hard", diagnostic="5.7.26"),
        event("clicked", lempi, occurred_at=at(1), user_agent="Barracuda scanner"),
        event("sent", lempi, occurred_at=at(2)),
    ]


def state_of(domain: str) -> dict[str, object]:
    """What the request left for the addresses at ``domain``, by local part."""
    db.session.expire_all()
    names = {
        address.email_hash: address.email.split("@")[0]
        for address in db.session.scalars(select(Address).where(Address.domain == domain))
    }
    counters = [
        "sent_count",
        "open_count",
        "click_count",
        "last_sent_at",
        "last_opened_at",
        "last_clicked_at",
        "last_active_at",
    ]
    return {
        "suppressions": sorted(
            (names[row.email_hash], row.scope, row.reason, row.expires_at)
            for row in db.session.scalars(select(Suppression))
            if row.email_hash in names
        ),
        "audit": sorted(
            (names[entry.email_hash], entry.action, entry.scope, entry.detail["reason"])
            for entry in db.session.scalars(select(AuditEntry))
            if entry.email_hash in names
        ),
        "register": {
            names[address.email_hash]: [getattr(address, name) for name in counters]
            for address in db.session.scalars(select(Address).where(Address.domain == domain))
        },
        "events": [
            (names[stored.email_hash], stored.type, stored.bounce_class, stored.machine)
            for stored in stored_events()
            if stored.email_hash in names
        ],
    }


def test_a_request_of_many_addresses_ends_as_its_events_one_by_one_would(app):
    create_list("news", "Uutiskirje")
    for domain in ("yksi.fi", "kaksi.fi"):
        for recipient in {item.recipient for item in mixed_request(domain)}:
            ensure_address(recipient)
    db.session.commit()
    record(*mixed_request("yksi.fi"))
    for one in mixed_request("kaksi.fi"):
        record(one)
    together, one_by_one = state_of("yksi.fi"), state_of("kaksi.fi")
    assert together == one_by_one
    assert {name for name, *_ in together["suppressions"]} == {"aino", "eino", "ilmari", "kerttu"}
