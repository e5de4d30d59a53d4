from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from suppress.addresses import email_hash
from suppress.lists import ListError, create_list, import_contacts, list_summaries
from suppress.models import Address, AuditEntry, Subscription, db, utcnow
from suppress.suppressions import suppress, suppress_domain

JUNE = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def news(app):
    mailing_list = create_list("uutiskirje", "Uutiskirje")
    db.session.commit()
    return mailing_list


def run_import(mailing_list, *rows, batch_size=100):
    """Import ``rows`` (dicts) as lines 2, 3, ... of a file; returns the report and the lines."""
    rejected, skipped = [], []
    report = import_contacts(
        mailing_list,
        [(line, row) for line, row in enumerate(rows, 2)],
        source="import:test.csv",
        actor="cli:test",
        batch_size=batch_size,
        on_reject=lambda line, problem: rejected.append((line, problem)),
        on_skip=lambda line, why: skipped.append((line, why)),
    )
    return report, rejected, skipped


def subscription_of(email):
    query = select(Subscription).join(Address).where(Address.email_hash == email_hash(email))
    return db.session.scalars(query, execution_options={"populate_existing": True}).one_or_none()


def address_of(email):
    query = select(Address).where(Address.email_hash == email_hash(email))
    return db.session.scalars(query, execution_options={"populate_existing": True}).one_or_none()


def consent(email, at="2024-05-01T12:00:00+03:00"):
    return {
        "email": email,
        "basis": "consent",
        "consent_at": at,
        "consent_source": "Asuntomessut 2024, lomake",
        "consent_text_version": "v3",
    }


def test_a_new_list_is_for_b2b_without_the_customer_relationship_exception(app):
    mailing_list = create_list("news", "News")
    assert (mailing_list.audience, mailing_list.similar_products) == ("b2b", False)


def test_a_list_refuses_an_unknown_audience(app):
    with pytest.raises(ListError, match="unknown audience 'everyone'"):
        create_list("news", "News", audience="everyone")


def test_import_subscribes_each_address_with_its_basis_source_and_details(news):
    report, rejected, skipped = run_import(
        news,
        {"email": "Matti.Meikalainen@Yritys.fi", "basis": "b2b_role", "role_note": "Ostaja"},
        {**consent("maija@luukku.com"), "language": "FI"},
        {"email": "myynti@yritys.fi", "basis": "legitimate_interest"},
    )
    assert (report.subscribed, rejected, skipped) == (3, [], [])
    subscription = subscription_of("matti.meikalainen@yritys.fi")
    assert (subscription.status, subscription.basis) == ("subscribed", "b2b_role")
    assert subscription.source == "import:test.csv"
    maija = address_of("maija@luukku.com")
    assert (maija.kind, maija.language, maija.consent_source) == (
        "consumer",
        "fi",
        "Asuntomessut 2024, lomake",
    )
    assert maija.consent_at == datetime(2024, 5, 1, 9, tzinfo=UTC)
    assert subscription_of("maija@luukku.com").subscribed_at == maija.consent_at
    assert address_of("matti.meikalainen@yritys.fi").role_note == "Ostaja"


@pytest.mark.parametrize("missing", ["consent_at", "consent_source", "consent_text_version"])
def test_a_consumers_consent_without_its_record_is_rejected_with_the_line(news, missing):
    """R-GDPR-2: consent must be demonstrable: when, how and what the person was told."""
    row = consent("maija@luukku.com")
    row[missing] = ""
    if missing == "consent_at":
        row.update(consent_source="", consent_text_version="")
    report, rejected, _ = run_import(news, {"email": "ok@yritys.fi"}, row)
    assert report.rejected == 1
    assert rejected[0][0] == 3
    assert "consent must be demonstrable" in rejected[0][1]
    assert missing in rejected[0][1]
    assert address_of("maija@luukku.com") is None


def test_a_consumers_consent_may_rest_on_the_record_already_kept(news):
    """R-GDPR-2: the proof on record from an earlier import still proves the consent."""
    run_import(news, consent("maija@luukku.com"))
    other = create_list("tarjoukset", "Tarjoukset", audience="consumer")
    report, rejected, _ = run_import(other, {"email": "maija@luukku.com", "basis": "consent"})
    assert (report.subscribed, rejected) == (1, [])


def test_consent_of_a_b2b_address_needs_no_consumer_record(news):
    report, rejected, _ = run_import(news, {"email": "matti@yritys.fi", "basis": "consent"})
    assert (report.subscribed, rejected) == (1, [])


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"email": "matti@yritys.fi", "basis": "b2b_role"}, "b2b_role needs a role_note"),
        (
            {"email": "matti@gmail.com", "basis": "b2b_role", "role_note": "Ostaja"},
            "does not apply to a consumer address",
        ),
        ({"email": "matti@yritys.fi", "basis": "suostumus"}, "unknown basis 'suostumus'"),
        ({"email": "matti@yritys.fi", "kind": "person"}, "unknown kind 'person'"),
        ({"email": "matti@yritys.fi", "language": "de"}, "unknown language 'de'"),
        ({"email": "matti@yritys.fi", "consent_at": "1.5.2024"}, "not an ISO 8601 date"),
        ({"email": "matti@yritys.fi", "consent_at": "2999-01-01"}, "in the future"),
        ({"email": "matti@yritys.fi", "consent_source": "messut"}, "needs its consent_at"),
        ({"email": "matti@@yritys.fi"}, "."),
    ],
)
def test_a_row_that_breaks_a_rule_is_rejected_and_stores_nothing(news, row, problem):
    """R-FI-2: a work address on basis b2b_role must say how the mail concerns the job."""
    report, rejected, _ = run_import(news, row)
    assert report.rejected == 1
    assert rejected[0][0] == 2
    assert problem in rejected[0][1]
    assert "matti" not in rejected[0][1]
    assert db.session.scalar(select(func.count()).select_from(Address)) == 0


def test_the_kind_column_overrides_the_classifier(news):
    """R-FI-2: a personal address on a company domain can be marked consumer by the sender."""
    report, rejected, _ = run_import(
        news,
        {"email": "matti@toiminimi.fi", "kind": "consumer", "basis": "consent"},
        {"email": "jussi@toiminimi.fi", "kind": "Role", "basis": "legitimate_interest"},
    )
    assert (report.subscribed, report.rejected) == (1, 1)
    assert rejected[0][0] == 2
    assert address_of("jussi@toiminimi.fi").kind == "role"


@pytest.mark.parametrize(
    "reason", ["unsubscribed", "complained", "bounced", "objected", "erased", "manual"]
)
@pytest.mark.parametrize("scope", ["global", "uutiskirje"])
def test_a_suppressed_address_is_skipped_and_left_as_it_is(news, reason, scope):
    """R-GDPR-1: an import never re-subscribes someone who said no (or whose mail bounced)."""
    suppress("maija@luukku.com", reason=reason, source="link", scope=scope)
    db.session.commit()
    report, rejected, skipped = run_import(news, consent("maija@luukku.com"))
    assert (report.skipped, rejected) == (1, [])
    assert skipped == [(2, f"suppressed in {scope} ({reason})")]
    assert address_of("maija@luukku.com") is None
    assert subscription_of("maija@luukku.com") is None


def test_suppressions_of_other_lists_and_lapsed_ones_do_not_skip(news):
    create_list("tarjoukset", "Tarjoukset")
    suppress("matti@yritys.fi", reason="unsubscribed", source="link", scope="tarjoukset")
    suppress(
        "liisa@yritys.fi",
        reason="soft_bounced",
        source="webhook:ses",
        expires_at=utcnow() - timedelta(days=1),
    )
    db.session.commit()
    report, _, skipped = run_import(
        news, {"email": "matti@yritys.fi"}, {"email": "liisa@yritys.fi"}
    )
    assert (report.subscribed, skipped) == (2, [])


def test_an_address_in_a_suppressed_domain_is_skipped_naming_the_rule(news):
    """A company that asked for no mail to its staff gets none through an import either."""
    create_list("tarjoukset", "Tarjoukset")
    suppress_domain("*.yritys.fi", reason="objected", source="cli:test")
    suppress_domain("kilpailija.fi", reason="manual", source="cli:test", scope="uutiskirje")
    suppress_domain("muu.fi", reason="manual", source="cli:test", scope="tarjoukset")
    db.session.commit()
    report, rejected, skipped = run_import(
        news,
        {"email": "matti@myynti.yritys.fi"},
        {"email": "liisa@kilpailija.fi"},
        {"email": "pekka@yritys.fi"},
        {"email": "anna@muu.fi"},
    )
    assert (report.subscribed, report.skipped, rejected) == (2, 2, [])
    assert skipped == [
        (2, "suppressed by domain *.yritys.fi (objected, global)"),
        (3, "suppressed by domain kilpailija.fi (manual, uutiskirje)"),
    ]
    assert address_of("matti@myynti.yritys.fi") is None


def test_an_address_that_left_the_list_is_never_resubscribed(news):
    run_import(news, {"email": "matti@yritys.fi", "basis": "legitimate_interest"})
    subscription = subscription_of("matti@yritys.fi")
    subscription.status, subscription.updated_at = "unsubscribed", JUNE
    db.session.commit()
    _, _, skipped = run_import(news, consent("matti@yritys.fi", at=utcnow().isoformat()))
    assert skipped == [(2, "unsubscribed from the list on 2025-06-01")]
    left = subscription_of("matti@yritys.fi")
    assert (left.status, left.basis, left.updated_at) == (
        "unsubscribed",
        "legitimate_interest",
        JUNE,
    )
    assert address_of("matti@yritys.fi").consent_at is None


def test_an_older_row_never_replaces_a_newer_status(news):
    run_import(news, {"email": "matti@yritys.fi", "basis": "legitimate_interest"})
    subscription = subscription_of("matti@yritys.fi")
    subscription.updated_at = JUNE
    db.session.commit()
    older, _, skipped = run_import(news, consent("matti@yritys.fi", at="2025-05-31"))
    assert (older.skipped, skipped[0][1]) == (
        1,
        "the list holds a newer status, from 2025-06-01 00:00 UTC",
    )
    assert subscription_of("matti@yritys.fi").basis == "legitimate_interest"
    newer, _, _ = run_import(news, consent("matti@yritys.fi", at="2025-06-02"))
    assert newer.updated == 1
    changed = subscription_of("matti@yritys.fi")
    assert (changed.basis, changed.updated_at) == ("consent", datetime(2025, 6, 2, tzinfo=UTC))


def test_an_older_consent_record_never_replaces_a_newer_one(news):
    run_import(news, consent("maija@luukku.com", at="2025-01-01"))
    run_import(news, {**consent("maija@luukku.com", at="2024-01-01"), "consent_text_version": "v1"})
    assert address_of("maija@luukku.com").consent_text_version == "v3"


def test_a_repeated_import_changes_nothing(news):
    rows = [{"email": f"henkilo{n}@yritys.fi", "basis": "legitimate_interest"} for n in range(5)]
    run_import(news, *rows)
    before = db.session.execute(select(Subscription.id, Subscription.updated_at)).all()
    report, _, _ = run_import(news, *rows)
    assert (report.subscribed, report.updated, report.unchanged) == (0, 0, 5)
    assert db.session.execute(select(Subscription.id, Subscription.updated_at)).all() == before


def test_an_address_twice_in_one_file_is_one_subscription_whatever_the_batches(news):
    rows = [
        {"email": "matti@yritys.fi"},
        {"email": "MATTI@yritys.fi", "basis": "legitimate_interest"},
    ]
    for batch_size in (1, 10):
        run_import(news, *rows, batch_size=batch_size)
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 1
    assert subscription_of("matti@yritys.fi").basis == "legitimate_interest"


def test_a_restricted_address_is_skipped(news):
    """R-GDPR-8: a restricted address is stored, not used: no list takes it."""
    db.session.add(
        Address(
            email="matti@yritys.fi",
            email_hash=email_hash("matti@yritys.fi"),
            kind="b2b",
            restricted=True,
        )
    )
    db.session.commit()
    _, _, skipped = run_import(news, {"email": "matti@yritys.fi"})
    assert skipped == [(2, "processing of the address is restricted (GDPR Art. 18)")]
    assert subscription_of("matti@yritys.fi") is None


def test_an_erased_address_is_skipped_and_stays_erased(news):
    suppress("matti@yritys.fi", reason="erased", source="admin:dpo")
    db.session.add(Address(email=None, email_hash=email_hash("matti@yritys.fi"), kind="b2b"))
    db.session.commit()
    report, _, _ = run_import(news, {"email": "matti@yritys.fi"})
    assert report.skipped == 1
    assert address_of("matti@yritys.fi").email is None


def test_an_import_is_audited_once_with_its_counts_and_no_address(news):
    run_import(
        news,
        {"email": "matti@yritys.fi"},
        {"email": "nope"},
        {"email": "liisa@yritys.fi", "basis": "b2b_role"},
    )
    entry = db.session.scalars(select(AuditEntry)).one()
    assert (entry.action, entry.scope, entry.actor) == (
        "subscription.import",
        "uutiskirje",
        "cli:test",
    )
    assert entry.detail == {
        "source": "import:test.csv",
        "subscribed": 1,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "rejected": 2,
    }


def test_list_summaries_count_subscribed_and_unsubscribed(news):
    create_list("tarjoukset", "Tarjoukset", audience="consumer", similar_products=True)
    run_import(news, {"email": "matti@yritys.fi"}, {"email": "liisa@yritys.fi"})
    subscription_of("liisa@yritys.fi").status = "unsubscribed"
    db.session.commit()
    summaries = {summary.slug: summary for summary in list_summaries()}
    assert (summaries["uutiskirje"].subscribed, summaries["uutiskirje"].unsubscribed) == (1, 1)
    offers = summaries["tarjoukset"]
    assert (offers.audience, offers.similar_products, offers.subscribed) == ("consumer", True, 0)
