import hashlib
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, select, text

from suppress import suppressions
from suppress.addresses import InvalidAddress, email_hash
from suppress.database import direct_transaction
from suppress.domains import InvalidPattern
from suppress.lists import create_list
from suppress.models import (
    AuditEntry,
    AuditIsAppendOnly,
    DomainSuppression,
    HashedSuppression,
    Suppression,
    db,
)
from suppress.suppressions import (
    Hashed,
    LiftRefused,
    NotSuppressed,
    UnknownReason,
    UnknownScope,
    import_suppressions,
    is_suppressed,
    lift,
    lift_unsubscribes,
    lookups,
    packed,
    suppress,
    suppress_hashed,
    suppressed_among,
)


def add(address="a@b.fi", **kwargs):
    kwargs.setdefault("reason", "unsubscribed")
    kwargs.setdefault("source", "link")
    row = suppress(address, **kwargs)
    db.session.commit()
    return row


def audit_entries():
    return db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()


def hashed(address: str, reason: str, scope: str = "global") -> Hashed:
    return Hashed(address, email_hash(address), reason=reason, scope=scope)


def test_hashed_suppressions_in_one_call_are_each_added_strengthened_or_left(app):
    """One statement writes them all; each written row has its own audit entry, in order."""
    add("weaker@b.fi", reason="unsubscribed")
    add("stronger@b.fi", reason="complained")
    wanted = [
        hashed("new@b.fi", "bounced"),
        hashed("weaker@b.fi", "complained"),
        hashed("stronger@b.fi", "unsubscribed"),
        hashed("new@b.fi", "unsubscribed", scope="no-such-list"),
    ]
    with direct_transaction() as transaction:
        assert suppress_hashed(transaction, wanted, source="webhook:test") == 2
    db.session.expire_all()
    rows = db.session.scalars(select(Suppression).order_by(Suppression.email)).all()
    assert [(row.email, row.scope, row.reason) for row in rows] == [
        ("new@b.fi", "global", "bounced"),
        ("stronger@b.fi", "global", "complained"),
        ("weaker@b.fi", "global", "complained"),
    ]
    entries = [(entry.action, entry.email_hash, entry.detail) for entry in audit_entries()[2:]]
    assert entries == [
        (
            "suppression.add",
            email_hash("new@b.fi"),
            {"reason": "bounced", "source": "webhook:test"},
        ),
        (
            "suppression.update",
            email_hash("weaker@b.fi"),
            {"reason": "complained", "source": "webhook:test"},
        ),
    ]


def test_lifting_unsubscribes_in_one_call_lifts_only_unsubscribes(app):
    add("unsubscribed@b.fi", reason="unsubscribed", source="one-click")
    add("complained@b.fi", reason="complained")
    wanted = [
        hashed(address, "unsubscribed")
        for address in ("unsubscribed@b.fi", "complained@b.fi", "none@b.fi")
    ]
    with direct_transaction() as transaction:
        assert lift_unsubscribes(transaction, wanted, actor="webhook:test") == 1
    assert not is_suppressed("unsubscribed@b.fi")
    assert is_suppressed("complained@b.fi")
    entry = audit_entries()[-1]
    assert (entry.actor, entry.action, entry.email_hash, entry.detail) == (
        "webhook:test",
        "suppression.lift",
        email_hash("unsubscribed@b.fi"),
        {"reason": "unsubscribed", "source": "one-click"},
    )


def test_suppress_stores_the_normalised_address_and_its_hash(app):
    row = add("  Matti.Meikalainen@Yritys.FI ")
    assert row.email == "matti.meikalainen@yritys.fi"
    assert row.email_hash == email_hash("matti.meikalainen@yritys.fi")
    assert (row.scope, row.reason, row.source) == ("global", "unsubscribed", "link")


def test_suppression_is_committed_and_seen_by_another_connection(app, database_url):
    add("a@b.fi")
    engine = create_engine(database_url)
    with engine.connect() as other:
        count = other.execute(text("SELECT count(*) FROM suppressions")).scalar()
    engine.dispose()
    assert count == 1


def test_repeat_keeps_the_first_created_at_and_writes_one_row(app):
    first = add("a@b.fi")
    created = first.created_at
    add("A@B.fi")
    add("a@b.fi")
    rows = db.session.scalars(select(Suppression)).all()
    assert len(rows) == 1
    assert rows[0].created_at == created


def test_repeat_that_changes_nothing_writes_no_audit_entry(app):
    add("a@b.fi")
    add("a@b.fi")
    assert [entry.action for entry in audit_entries()] == ["suppression.add"]


def test_stronger_reason_replaces_a_weaker_one_but_keeps_created_at(app):
    created = add("a@b.fi", reason="unsubscribed").created_at
    row = add("a@b.fi", reason="complained", source="webhook:ses")
    assert (row.reason, row.source, row.created_at) == ("complained", "webhook:ses", created)
    assert [entry.action for entry in audit_entries()] == ["suppression.add", "suppression.update"]


def test_weaker_reason_does_not_replace_a_stronger_one(app):
    add("a@b.fi", reason="complained")
    assert add("a@b.fi", reason="unsubscribed").reason == "complained"


def test_lapsed_suppression_starts_afresh(app):
    past = datetime.now(UTC) - timedelta(days=1)
    add("a@b.fi", reason="soft_bounced", expires_at=past)
    assert not is_suppressed("a@b.fi")
    row = add("a@b.fi", reason="soft_bounced", expires_at=past + timedelta(days=31))
    assert row.created_at > past
    assert is_suppressed("a@b.fi")


@pytest.mark.parametrize("kind", ["address", "domain"])
def test_list_scope_blocks_only_that_list(app, kind):
    create_list("news", "News")
    if kind == "address":
        add("a@b.fi", scope="news")
    else:
        add_domain("b.fi", scope="news")
    assert is_suppressed("a@b.fi", list="news")
    assert not is_suppressed("a@b.fi")
    assert not is_suppressed("a@b.fi", list="events")


def test_global_scope_blocks_every_list(app):
    add("a@b.fi")
    assert is_suppressed("a@b.fi", list="news")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"scope": "nosuchlist"}, UnknownScope),
        ({"reason": "bored"}, UnknownReason),
    ],
)
def test_suppress_refuses_unknown_scope_or_reason_and_stores_nothing(app, kwargs, error):
    with pytest.raises(error):
        add("a@b.fi", **kwargs)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_suppress_refuses_an_invalid_address(app):
    with pytest.raises(InvalidAddress):
        add("not an address")


def test_audit_entry_never_holds_the_address_in_clear(app):
    add("Matti@Yritys.fi", reason="manual", note="asked by phone: MATTI@yritys.fi, no more mail")
    entry = audit_entries()[0]
    assert entry.email_hash == email_hash("matti@yritys.fi")
    assert "matti@yritys.fi" not in repr(entry.__dict__).lower()
    assert entry.why == "asked by phone: [address], no more mail"


def test_audit_entries_cannot_be_changed(app):
    add("a@b.fi")
    entry = audit_entries()[0]
    entry.why = "rewritten history"
    with pytest.raises(AuditIsAppendOnly):
        db.session.flush()


def test_lift_removes_an_unsubscribe_and_audits_who_and_why(app):
    add("a@b.fi")
    lift("a@b.fi", actor="admin:liisa", why="subscribed again by form")
    db.session.commit()
    assert not is_suppressed("a@b.fi")
    entry = audit_entries()[-1]
    assert (entry.action, entry.actor, entry.why) == (
        "suppression.lift",
        "admin:liisa",
        "subscribed again by form",
    )


@pytest.mark.parametrize("reason", ["complained", "bounced", "erased"])
def test_lift_of_a_complaint_bounce_or_erasure_needs_an_override_reason(app, reason):
    add("a@b.fi", reason=reason)
    with pytest.raises(LiftRefused, match="override reason"):
        lift("a@b.fi", actor="admin:liisa", why="please")
    assert is_suppressed("a@b.fi")
    lift("a@b.fi", actor="admin:liisa", override_reason="confirmed in writing")
    db.session.commit()
    assert not is_suppressed("a@b.fi")
    assert audit_entries()[-1].detail["overridden"] is True


def test_lift_of_an_address_that_is_not_suppressed_is_refused(app):
    with pytest.raises(NotSuppressed):
        lift("a@b.fi", actor="admin:liisa")


def test_suppressed_among_finds_global_and_list_suppressions(app):
    create_list("news", "News")
    add("g@b.fi")
    add("n@b.fi", scope="news")
    candidates = ["g@b.fi", "n@b.fi", "free@b.fi"]
    assert suppressed_among(candidates) == {"g@b.fi"}
    assert suppressed_among(candidates, list="news") == {"g@b.fi", "n@b.fi"}


def test_suppressed_among_ignores_lapsed_suppressions(app):
    add("a@b.fi", reason="soft_bounced", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert suppressed_among(["a@b.fi"]) == set()


@pytest.mark.parametrize("limit", [0, 10_000])
def test_suppressed_among_gives_the_same_answer_by_scan_and_by_index(app, monkeypatch, limit):
    """Both lookup strategies, including erased rows that keep only their hash."""
    monkeypatch.setattr(lookups, "INDEXED_LOOKUP_LIMIT", limit)
    for number in range(0, 1200, 3):
        add(f"user{number}@firma.fi")
    add("gone@firma.fi", reason="erased")
    db.session.execute(
        Suppression.__table__.update()
        .where(Suppression.email == "gone@firma.fi")
        .values(email=None)
    )
    db.session.commit()
    candidates = [f"user{number}@firma.fi" for number in range(1200)] + ["gone@firma.fi"]
    expected = {f"user{number}@firma.fi" for number in range(0, 1200, 3)} | {"gone@firma.fi"}
    assert suppressed_among(iter(candidates)) == expected


def unpacked(list=None, parts=1):
    found = {}
    for part in suppressions.packed_suppressions(db.session.connection(), list, parts):
        part.add_to(found)
    return found


def key(address):
    return hashlib.sha256(address.encode()).digest()[: suppressions.DIGEST_KEY_BYTES]


def test_packed_suppressions_hold_those_in_scope_by_digest_key_global_named_first(app):
    assert unpacked() == {}
    create_list("news", "News")
    create_list("other", "Other")
    add("both@b.fi", reason="complained")
    add("both@b.fi", scope="news")
    add("news@b.fi", scope="news", reason="bounced")
    add("other@b.fi", scope="other")
    add("lapsed@b.fi", reason="soft_bounced", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert unpacked() == unpacked("global") == {key("both@b.fi"): ("global", "complained")}
    assert unpacked("news") == {
        key("both@b.fi"): ("global", "complained"),
        key("news@b.fi"): ("news", "bounced"),
    }


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_packed_suppressions_read_in_parts_are_those_read_at_once(app, parts):
    """However the rows fall into parts, each is read once and the global suppression named."""
    create_list("news", "News")
    add("list-first@b.fi", scope="news")
    for number in range(5):
        add(f"user{number}@b.fi", scope=("global", "news")[number % 2], reason="bounced")
    add("list-first@b.fi", reason="complained")
    add("global-first@b.fi", reason="objected")
    add("global-first@b.fi", scope="news")
    for list in (None, "news"):
        assert unpacked(list, parts) == unpacked(list) == packed_at_once(list)


def packed_at_once(list):
    found = {}
    next(suppressions.packed_suppressions(db.session.connection(), list)).add_to(found)
    return found


def test_packed_suppressions_keep_an_erased_address_by_its_hash(app):
    add("gone@b.fi", reason="erased")
    db.session.execute(Suppression.__table__.update().values(email=None))
    assert unpacked() == {key("gone@b.fi"): ("global", "erased")}


def test_past_the_in_memory_limit_there_are_no_packed_suppressions(app, monkeypatch):
    add("a@b.fi")
    monkeypatch.setattr(packed, "IN_MEMORY_LIMIT", 0)
    assert suppressions.packed_suppressions(db.session.connection(), None) is None


def test_ids_spanning_past_the_limit_are_counted_before_the_suppressions_are_refused(
    app, monkeypatch
):
    for address in ("a@b.fi", "b@b.fi", "c@b.fi"):
        add(address)
    lift("b@b.fi", actor="test")
    monkeypatch.setattr(packed, "IN_MEMORY_LIMIT", 2)
    assert set(unpacked()) == {key("a@b.fi"), key("c@b.fi")}


def test_import_writes_rows_in_batches_and_reports_each_refusal(app):
    create_list("news", "News")
    records = [
        (2, {"email": "a@b.fi"}),
        (3, {"email": "bad"}),
        (4, {"email": "b@b.fi", "scope": "news", "reason": "unsubscribed", "note": "x"}),
        (5, {"email": "c@b.fi", "scope": "gone"}),
        (6, {"email": "A@b.fi"}),
        (7, {"email": "d@b.fi", "reason": "meh"}),
    ]
    refused = []
    report = import_suppressions(
        records,
        source="import:old.csv",
        actor="cli:test",
        batch_size=2,
        on_reject=lambda line, why: refused.append(line),
    )
    assert (report.written, report.unchanged, report.rejected) == (2, 1, 3)
    assert refused == [3, 5, 7]
    assert is_suppressed("b@b.fi", list="news")
    row = db.session.scalars(select(Suppression).where(Suppression.scope == "global")).one()
    assert (row.reason, row.source) == ("imported", "import:old.csv")
    assert audit_entries()[-1].detail == {
        "source": "import:old.csv",
        "written": 2,
        "unchanged": 1,
        "rejected": 3,
    }


def test_import_strengthens_but_never_weakens_what_is_stored(app):
    add("a@b.fi", reason="unsubscribed")
    add("b@b.fi", reason="complained")
    records = [(2, {"email": "a@b.fi", "reason": "bounced"}), (3, {"email": "b@b.fi"})]
    import_suppressions(records, source="import:x", actor="cli:t", batch_size=10, on_reject=print)
    reasons = dict(db.session.execute(select(Suppression.email, Suppression.reason)).all())
    assert reasons == {"a@b.fi": "bounced", "b@b.fi": "complained"}


def test_concurrent_writers_wait_their_turn_instead_of_failing(app):
    """Many workers suppressing at once (a burst of one-click POSTs) all succeed."""
    errors = []

    def worker(number):
        with app.app_context():
            try:
                for item in range(10):
                    suppress(f"w{number}-{item}@b.fi", reason="unsubscribed", source="link")
                    db.session.commit()
            except Exception as error:
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 60


def import_hashes(lines, algorithm="md5", source="partner", batch_size=20_000):
    refused = []
    report = suppressions.import_hashed_suppressions(
        lines,
        algorithm,
        source,
        lambda line, why: refused.append((line, why)),
        batch_size=batch_size,
    )
    return report, refused


def md5(address):
    return hashlib.md5(address.encode()).hexdigest()


def test_hashed_import_stores_lower_case_digests_and_never_an_address(app):
    report, refused = import_hashes([f"  {md5('a@b.fi').upper()} \n", f"{md5('c@b.fi')}\n"])
    assert (report.written, report.unchanged, report.rejected, refused) == (2, 0, 0, [])
    rows = db.session.execute(select(HashedSuppression.algorithm, HashedSuppression.digest))
    assert sorted(rows) == sorted([("md5", md5("a@b.fi")), ("md5", md5("c@b.fi"))])
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_hashed_import_refuses_lines_that_do_not_fit_the_algorithm_with_their_numbers(app):
    lines = [md5("a@b.fi"), "", "a@b.fi", md5("a@b.fi")[:30], "sha:" + "0" * 28]
    report, refused = import_hashes(lines)
    assert report.written == 1
    assert refused == [
        (3, "not a hexadecimal md5 hash"),
        (4, "30 hex digits where md5 has 32"),
        (5, "not a hexadecimal md5 hash"),
    ]


def test_hashed_import_of_a_repeat_or_a_duplicate_line_changes_nothing(app):
    import_hashes([md5("a@b.fi")])
    report, _ = import_hashes([md5("a@b.fi"), md5("b@b.fi"), md5("b@b.fi")], batch_size=1)
    assert (report.written, report.unchanged) == (1, 2)
    assert db.session.scalar(select(func.count()).select_from(HashedSuppression)) == 2


def test_hashed_import_reads_the_named_column_of_a_csv_file(app):
    lines = ["id;SHA256;note\n", f"7;{hashlib.sha256(b'a@b.fi').hexdigest()};x\n", "8;;y\n"]
    report, refused = import_hashes(lines, algorithm="sha256")
    assert (report.written, refused) == (1, [(3, "no sha256 hash")])


def test_hashed_import_writes_one_audit_entry_with_the_counts(app):
    import_hashes([md5("a@b.fi"), "zz"], source="affiliates.txt")
    (entry,) = audit_entries()
    assert entry.action == "hashed_suppression.import"
    assert entry.detail == {
        "source": "affiliates.txt",
        "algorithm": "md5",
        "written": 1,
        "unchanged": 0,
        "rejected": 1,
    }


def test_hashed_matches_names_the_source_of_each_matching_address(app):
    import_hashes([md5("a@b.fi")], source="network")
    import_hashes([hashlib.sha512(b"c@b.fi").hexdigest()], algorithm="sha512", source="partner")
    found = suppressions.hashed_matches(["a@b.fi", "b@b.fi", "c@b.fi"])
    assert found == {"a@b.fi": "network", "c@b.fi": "partner"}


def test_hashed_matches_without_hashes_stored_finds_nothing(app):
    assert suppressions.hashed_matches(["a@b.fi"]) == {}


def add_domain(pattern="example.fi", **kwargs):
    kwargs.setdefault("reason", "manual")
    kwargs.setdefault("source", "cli:test")
    row, written = suppressions.suppress_domain(pattern, **kwargs)
    db.session.commit()
    return row, written


def domain_rows():
    return db.session.scalars(select(DomainSuppression).order_by(DomainSuppression.id)).all()


def test_a_domain_suppression_stores_the_normal_form_and_audits_the_pattern(app):
    row, written = add_domain(" *.Bücher.DE ", note="competitor", actor="cli:liisa")
    assert written
    assert (row.pattern, row.scope, row.reason, row.source, row.note) == (
        "*.xn--bcher-kva.de",
        "global",
        "manual",
        "cli:test",
        "competitor",
    )
    (entry,) = audit_entries()
    assert (entry.action, entry.actor, entry.email_hash, entry.scope, entry.why) == (
        "domain_suppression.add",
        "cli:liisa",
        None,
        "global",
        "competitor",
    )
    assert entry.detail == {
        "pattern": "*.xn--bcher-kva.de",
        "reason": "manual",
        "source": "cli:test",
    }


def test_a_domain_repeat_keeps_its_date_and_a_stronger_reason_replaces_a_weaker(app):
    first, _ = add_domain("example.fi", reason="objected")
    again, written = add_domain("EXAMPLE.fi", reason="manual")
    assert (written, again.reason, again.created_at) == (False, "objected", first.created_at)
    stronger, written = add_domain("example.fi", reason="complained")
    assert (written, stronger.reason, stronger.created_at) == (True, "complained", first.created_at)
    assert len(domain_rows()) == 1
    actions = [entry.action for entry in audit_entries()]
    assert actions == ["domain_suppression.add", "domain_suppression.update"]


def test_a_lapsed_domain_suppression_starts_afresh(app):
    past = datetime.now(UTC) - timedelta(days=1)
    add_domain("example.fi", expires_at=past)
    assert not is_suppressed("m@example.fi")
    row, written = add_domain("example.fi")
    assert written
    assert row.created_at > past
    assert row.expires_at is None
    assert is_suppressed("m@example.fi")


@pytest.mark.parametrize(
    ("pattern", "kwargs", "error"),
    [
        ("example.fi", {"scope": "nosuchlist"}, UnknownScope),
        ("example.fi", {"reason": "bored"}, UnknownReason),
        ("matti@example.fi", {}, InvalidPattern),
        ("example..fi", {}, InvalidPattern),
        ("*.fi", {}, InvalidPattern),
    ],
)
def test_suppress_domain_refuses_bad_input_and_stores_nothing(app, pattern, kwargs, error):
    with pytest.raises(error):
        add_domain(pattern, **kwargs)
    db.session.rollback()
    assert domain_rows() == []
    assert audit_entries() == []


def test_a_public_suffix_is_stored_only_when_explicitly_allowed(app):
    row, _ = add_domain("*.FI", allow_public_suffix=True)
    assert row.pattern == "*.fi"
    assert is_suppressed("m@yritys.fi")


@pytest.mark.parametrize(
    ("pattern", "address", "blocked"),
    [
        ("example.fi", "Matti@EXAMPLE.fi", True),
        ("example.fi", "matti@mail.example.fi", False),
        ("*.example.fi", "matti@mail.example.fi", True),
        ("*.example.fi", "matti@a.b.example.fi", True),
        ("*.example.fi", "matti@example.fi", False),
        ("*.example.fi", "matti@badexample.fi", False),
        ("bücher.de", "x@BÜCHER.de", True),
    ],
)
def test_is_suppressed_honours_exact_domains_and_subdomain_wildcards(
    app, pattern, address, blocked
):
    add_domain(pattern)
    assert is_suppressed(address) is blocked


def test_lift_domain_removes_the_rule_and_audits_who_and_why(app):
    add_domain("*.example.fi")
    row = suppressions.lift_domain("*.EXAMPLE.fi", actor="cli:liisa", why="contract signed")
    db.session.commit()
    assert row.pattern == "*.example.fi"
    assert domain_rows() == []
    entry = audit_entries()[-1]
    assert (entry.action, entry.actor, entry.why, entry.detail["pattern"]) == (
        "domain_suppression.lift",
        "cli:liisa",
        "contract signed",
        "*.example.fi",
    )


def test_lift_domain_of_a_complaint_needs_an_override_and_a_missing_rule_is_refused(app):
    add_domain("example.fi", reason="complained")
    with pytest.raises(LiftRefused, match="override reason"):
        suppressions.lift_domain("example.fi", actor="cli:liisa")
    with pytest.raises(NotSuppressed, match=r"example\.fi is not suppressed in scope 'news'"):
        suppressions.lift_domain("example.fi", actor="cli:liisa", scope="news")
    suppressions.lift_domain("example.fi", actor="cli:liisa", override_reason="in writing")
    assert audit_entries()[-1].detail["overridden"] is True


def test_lift_domain_takes_a_public_suffix_without_the_flag(app):
    add_domain("*.fi", allow_public_suffix=True)
    suppressions.lift_domain("*.fi", actor="cli:liisa")
    assert domain_rows() == []


def test_domain_suppressions_list_each_domain_beside_its_wildcard_global_first(app):
    create_list("news", "News")
    add_domain("*.example.fi", scope="news")
    add_domain("*.example.fi")
    add_domain("zeta.fi")
    add_domain("example.fi")
    add_domain("old.fi", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    listed = [(row.pattern, row.scope) for row in suppressions.domain_suppressions()]
    assert listed == [
        ("example.fi", "global"),
        ("*.example.fi", "global"),
        ("*.example.fi", "news"),
        ("zeta.fi", "global"),
    ]
    assert [row.pattern for row in suppressions.domain_suppressions("news")] == ["*.example.fi"]
    everything = suppressions.domain_suppressions(lapsed=True)
    assert "old.fi" in [row.pattern for row in everything]


def test_domain_suppressions_for_an_address_are_those_that_cover_it(app):
    add_domain("example.fi")
    add_domain("*.example.fi")
    add_domain("*.mail.example.fi", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    add_domain("other.fi")
    found = suppressions.domain_suppressions_for("M@X.Mail.Example.fi")
    assert [row.pattern for row in found] == ["*.example.fi", "*.mail.example.fi"]


@pytest.mark.parametrize("limit", [0, 10_000])
def test_suppressed_among_honours_domain_suppressions_by_scan_and_by_index(app, monkeypatch, limit):
    monkeypatch.setattr(lookups, "INDEXED_LOOKUP_LIMIT", limit)
    create_list("news", "News")
    add("own@b.fi")
    add_domain("*.example.fi")
    add_domain("rival.fi", scope="news")
    candidates = ["own@b.fi", "m@x.example.fi", "m@example.fi", "m@rival.fi"]
    assert suppressed_among(candidates) == {"own@b.fi", "m@x.example.fi"}
    assert suppressed_among(candidates, list="news") == {"own@b.fi", "m@x.example.fi", "m@rival.fi"}


def test_domain_rules_hold_the_active_rules_in_scope_global_first(app):
    create_list("news", "News")
    add_domain("example.fi", scope="news", reason="objected")
    add_domain("example.fi")
    add_domain("lapsed.fi", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert not suppressions.domain_rules().covering("m@lapsed.fi")
    assert str(suppressions.domain_rules("news").covering("m@example.fi")) == (
        "domain example.fi (manual, global)"
    )
