"""The sync job against Mailgun's suppressions API played on 127.0.0.1: planning, pushing in
batches, lifting, retries, refusals, reconciling and the lag /healthz reports (and the moment of
each destination's oldest pending row it is read from).

Provider-specific pushes and pulls are tested in each provider's own file; Mailgun stands in
here for any provider, as its API takes batches, lifts and pages.
"""

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text, update

from suppress import suppressions, sync
from suppress.config import ConfigError
from suppress.lists import create_list
from suppress.models import Destination, Suppression, SyncState, db, utcnow
from suppress.providers.mailgun import Mailgun
from suppress.providers.syncing import ACCEPTED, PENDING, REFUSED, Outcome
from suppress.sync import claims, planning
from tests.providers.fakes.mailgun import FakeMailgun

API_KEY = "key-test-0123456789"
DOMAIN = "mg.yritys.fi"


@pytest.fixture
def mailgun(app, httpserver, monkeypatch):
    """A fake Mailgun account the app is configured to reach, with no retry delays."""
    fake = FakeMailgun(httpserver, api_key=API_KEY, domain=DOMAIN)
    monkeypatch.setitem(app.config, "MAILGUN_API_KEY", API_KEY)
    monkeypatch.setitem(app.config, "MAILGUN_API_URL", fake.url)
    monkeypatch.setitem(app.config, "SYNC_RETRIES", 2)
    monkeypatch.setattr("suppress.providers.api.BACKOFF_SECONDS", 0)
    return fake


def destination(name="mailgun-fi", **options):
    added = sync.add_destination(name, "mailgun", target=DOMAIN, **options)
    db.session.commit()
    return added


def suppressed(*addresses, reason="unsubscribed", scope="global"):
    for address in addresses:
        suppressions.suppress(address, reason=reason, scope=scope, source="test", actor="test")
    db.session.commit()


def states(status=None):
    query = select(SyncState.status, func.count()).group_by(SyncState.status)
    return dict(db.session.execute(query).all())


def test_a_pass_pushes_every_suppression_in_batches_of_at_most_a_thousand(app, mailgun):
    destination()
    suppressed(*(f"person{n}@yritys.fi" for n in range(2500)))
    (report,) = sync.run()
    assert report.accepted == 2500
    assert report.error is None
    assert len(mailgun.tables["unsubscribes"]) == 2500
    assert mailgun.pushes() == 3
    assert states() == {"accepted": 2500}


def test_a_backlog_is_pushed_by_as_many_calls_at_once_as_the_provider_takes(
    app, mailgun, monkeypatch
):
    """The first calls wait for one another: a pass that kept fewer in flight would never let
    them all through. No more than the provider takes are ever in flight."""
    in_flight, most, made = 0, 0, 0
    counting = threading.Lock()
    first_calls = threading.Barrier(Mailgun.CONCURRENCY, timeout=10)
    push = Mailgun.push

    def counted(account, changes):
        nonlocal in_flight, most, made
        with counting:
            in_flight, made = in_flight + 1, made + 1
            most, first = max(most, in_flight), made <= Mailgun.CONCURRENCY
        if first:
            first_calls.wait()
        try:
            return push(account, changes)
        finally:
            with counting:
                in_flight -= 1

    monkeypatch.setattr(Mailgun, "push", counted)
    destination()
    backlog = 3 * Mailgun.CONCURRENCY * Mailgun.PUSH_BATCH
    suppressed(*(f"person{n}@yritys.fi" for n in range(backlog)))
    (report,) = sync.run()
    assert report.accepted == backlog
    assert most == Mailgun.CONCURRENCY
    assert made == backlog // Mailgun.PUSH_BATCH, "every call a full batch"
    assert len(mailgun.tables["unsubscribes"]) == report.accepted
    assert states() == {"accepted": report.accepted}


def test_a_few_rows_go_out_in_one_call_whatever_the_provider_s_concurrency(app, mailgun):
    destination()
    suppressed(*(f"person{n}@yritys.fi" for n in range(10)))
    (report,) = sync.run()
    assert report.accepted == 10
    assert mailgun.pushes() == 1


def test_a_second_pass_pushes_nothing_already_accepted(app, mailgun):
    destination()
    suppressed("matti@yritys.fi")
    sync.run()
    (report,) = sync.run()
    assert report.planned == 0
    assert report.accepted == 0
    assert mailgun.pushes() == 1


def test_each_reason_goes_to_the_table_that_records_it(app, mailgun):
    destination()
    suppressed("complainer@yritys.fi", reason="complained")
    suppressed("dead@yritys.fi", reason="bounced")
    suppressed("leaver@yritys.fi", reason="unsubscribed")
    sync.run()
    assert set(mailgun.tables["complaints"]) == {"complainer@yritys.fi"}
    assert mailgun.tables["bounces"]["dead@yritys.fi"]["code"] == "550"
    assert mailgun.tables["unsubscribes"]["leaver@yritys.fi"]["tags"] == ["*"]


def test_a_stronger_reason_is_pushed_again_to_its_own_table(app, mailgun):
    destination()
    suppressed("matti@yritys.fi", reason="unsubscribed")
    sync.run()
    suppressed("matti@yritys.fi", reason="complained")
    (report,) = sync.run()
    assert report.accepted == 1
    assert "matti@yritys.fi" in mailgun.tables["complaints"]


def test_a_list_suppression_reaches_only_the_destination_carrying_that_list(app, mailgun):
    create_list("uutiskirje", name="Uutiskirje")
    create_list("tapahtumat", name="Tapahtumat")
    destination(list_slug="uutiskirje")
    suppressed("lukija@yritys.fi", scope="uutiskirje")
    suppressed("vieras@yritys.fi", scope="tapahtumat")
    sync.run()
    assert set(mailgun.tables["unsubscribes"]) == {"lukija@yritys.fi"}
    assert mailgun.tables["unsubscribes"]["lukija@yritys.fi"]["tags"] == ["uutiskirje"]


def test_a_lifted_suppression_is_lifted_at_the_provider(app, mailgun):
    destination()
    suppressed("palaaja@yritys.fi")
    sync.run()
    suppressions.lift("palaaja@yritys.fi", actor="test")
    db.session.commit()
    (report,) = sync.run()
    assert report.lifted == 1
    assert mailgun.tables["unsubscribes"] == {}
    assert db.session.scalar(select(SyncState.action)) == "lift"


def test_a_suppression_lifted_before_it_was_pushed_is_never_pushed(app, mailgun):
    named = destination()
    suppressed("hetki@yritys.fi")
    sync.plan(named, utcnow())
    suppressions.lift("hetki@yritys.fi", actor="test")
    db.session.commit()
    sync.run()
    assert mailgun.pushes() == 0
    assert states() == {}


def test_a_large_plan_refreshes_postgresql_s_statistics_of_the_outbox(app, mailgun, monkeypatch):
    """Left stale, they make the next pass plan its join as a nested loop over every row."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite plans the join on the unique index without statistics")
    monkeypatch.setattr(planning, "ANALYZE_AFTER_ROWS", 40)
    named = destination()
    suppressed(*(f"person{n}@yritys.fi" for n in range(40)))
    sync.plan(named, utcnow())
    db.session.commit()
    known = text("SELECT reltuples FROM pg_class WHERE relname = 'sync_states'")
    assert db.session.scalar(known) == 40


@pytest.mark.parametrize("bounded", [False, True])
def test_a_claim_on_sqlite_reads_the_index_of_pending_rows_in_id_order(app, bounded):
    """Without it SQLite, which keeps no statistics, reads a claim through the unique index:
    every row of the destination, sorted again for each batch."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL has no index of pending rows: outcomes are HOT updates")
    connection = db.session.connection()
    sql = claims._CLAIMS[bounded].compiled(connection.dialect).sql
    plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", (None,) * sql.count("?"))
    assert [row[-1] for row in plan] == [
        "SEARCH sync_states USING INDEX ix_sync_states_pending "
        + ("(destination_id=? AND id>? AND id<?)" if bounded else "(destination_id=? AND id>?)")
    ]


def beside(app, work):
    """Run ``work`` on a thread of its own, as another worker would, in its own app context
    (its own session), and return once it waits for a lock this session holds; join it once
    this session has committed."""

    def in_its_own_context() -> None:
        with app.app_context():
            work()

    worker = threading.Thread(target=in_its_own_context)
    worker.start()
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    with db.engine.connect() as watcher:
        deadline = time.monotonic() + 10
        while not watcher.scalar(waiting) and time.monotonic() < deadline:
            time.sleep(0.01)
    return worker


def test_two_workers_planning_at_once_on_postgresql_write_each_outbox_row_once(app, mailgun):
    """The second plan waits for the first's new rows, then leaves them as they are."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one worker at a time")
    named = destination()
    suppressed(*(f"person{n}@yritys.fi" for n in range(3)))
    assert sync.plan(named, utcnow()) == 3
    second = {}

    def plan_beside() -> None:
        second["planned"] = sync.plan(sync.find_destination(named.name), utcnow())
        db.session.commit()

    planner = beside(app, plan_beside)
    db.session.commit()
    planner.join(timeout=10)
    assert second == {"planned": 0}
    assert states() == {"pending": 3}


def test_an_address_erased_before_it_was_pushed_is_recorded_as_refused(app, mailgun):
    destination()
    suppressed("poistettu@yritys.fi")
    db.session.execute(update(Suppression).values(email=None, reason="erased"))
    db.session.commit()
    sync.run()
    assert mailgun.pushes() == 0
    row = db.session.scalar(select(SyncState))
    assert row.status == "refused"
    assert "erased" in row.detail


def test_a_rate_limit_with_retry_after_is_waited_out_within_the_pass(app, mailgun):
    destination()
    suppressed("matti@yritys.fi")
    mailgun.fail_next(429, headers={"Retry-After": "1"})
    (report,) = sync.run()
    assert report.accepted == 1
    assert report.error is None
    assert "matti@yritys.fi" in mailgun.tables["unsubscribes"]


def test_each_address_s_outcome_is_recorded_as_the_provider_gave_it(app, mailgun, monkeypatch):
    """Refused for good with the provider's words; pending (or unanswered) to try again later."""
    destination()
    suppressed("hyva@yritys.fi", "huono@yritys.fi", "jonossa@yritys.fi", "vaiti@yritys.fi")
    answers = {
        "hyva@yritys.fi": lambda key: Outcome(key, ACCEPTED),
        "huono@yritys.fi": lambda key: Outcome(key, REFUSED, "invalid address"),
        "jonossa@yritys.fi": lambda key: Outcome(key, PENDING, "queued"),
    }

    def push(cls, account, changes):
        return [answers[c.email](c.key) for c in changes if c.email in answers]

    monkeypatch.setattr(Mailgun, "push", classmethod(push))
    (report,) = sync.run()
    assert (report.accepted, report.refused, report.pending) == (1, 1, 2)
    rows = db.session.execute(
        select(SyncState.email, SyncState.status, SyncState.detail, SyncState.attempts)
    )
    assert set(rows) == {
        ("hyva@yritys.fi", "accepted", None, 1),
        ("huono@yritys.fi", "refused", "invalid address", 1),
        ("jonossa@yritys.fi", "pending", "queued", 1),
        ("vaiti@yritys.fi", "pending", "the provider did not answer for this address", 1),
    }
    later = select(SyncState.next_attempt_at).where(SyncState.status == "pending")
    assert all(moment > utcnow() for moment in db.session.scalars(later))


def test_a_provider_that_keeps_failing_leaves_the_batch_pending_for_later(app, mailgun):
    named = destination()
    suppressed("matti@yritys.fi")
    mailgun.fail_next(503, times=3)
    (report,) = sync.run()
    assert "HTTP 503" in report.error
    row = db.session.scalar(select(SyncState))
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at > utcnow()
    assert named.last_error == report.error
    (report,) = sync.run()
    assert mailgun.tables["unsubscribes"] == {}, "not retried before its time"
    db.session.execute(update(SyncState).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    (report,) = sync.run()
    assert report.accepted == 1
    assert report.error is None
    assert named.last_error is None


def test_wrong_credentials_stop_the_destination_and_settle_nothing(app, mailgun, monkeypatch):
    destination()
    suppressed("matti@yritys.fi")
    monkeypatch.setitem(app.config, "MAILGUN_API_KEY", "key-wrong")
    (report,) = sync.run()
    assert "HTTP 401" in report.error
    assert states() == {"pending": 1}


def test_a_destination_needs_its_credentials_when_it_is_added(app, monkeypatch):
    monkeypatch.delitem(app.config, "MAILGUN_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="SUPPRESS_DEST_MAILGUN_FI_API_KEY"):
        sync.add_destination("mailgun-fi", "mailgun", target=DOMAIN)


def test_a_destination_s_own_credentials_win_over_the_provider_s(app, mailgun, monkeypatch):
    monkeypatch.setitem(app.config, "MAILGUN_API_KEY", "key-other-account")
    monkeypatch.setitem(app.config, "DEST_MAILGUN_FI_API_KEY", API_KEY)
    destination()
    suppressed("matti@yritys.fi")
    (report,) = sync.run()
    assert report.accepted == 1


@pytest.mark.parametrize(
    ("name", "provider", "why"),
    [
        ("Mailgun FI", "mailgun", "lower-case letter"),
        ("postal", "postal", "no suppression API"),
        ("standard", "standard", "no suppression API"),
    ],
)
def test_a_destination_that_cannot_work_is_refused_when_added(app, mailgun, name, provider, why):
    with pytest.raises(sync.SyncError, match=why):
        sync.add_destination(name, provider, target=DOMAIN)


def test_a_destination_for_a_list_that_does_not_exist_is_refused(app, mailgun):
    with pytest.raises(sync.SyncError, match="no mailing list with the slug 'uutiskirje'"):
        sync.add_destination("mailgun-fi", "mailgun", target=DOMAIN, list_slug="uutiskirje")


def test_a_dry_run_says_what_would_be_pushed_and_changes_nothing(app, mailgun):
    destination()
    suppressed("matti@yritys.fi", "maija@yritys.fi")
    (report,) = sync.run(dry_run=True)
    assert (report.planned, report.pending) == (2, 2)
    assert mailgun.calls == []
    assert states() == {}


def test_reconcile_imports_what_the_destination_holds_and_we_lack(app, mailgun):
    named = destination()
    mailgun.tables["complaints"]["valittaja@yritys.fi"] = {
        "address": "Valittaja@yritys.fi",
        "created_at": "Fri, 20 Nov 2026 11:02:55 UTC",
    }
    drift = sync.reconcile(named, full=False, dry_run=True)
    assert drift.theirs_only == [("valittaja@yritys.fi", "global", "complained")]
    assert not suppressions.is_suppressed("valittaja@yritys.fi")
    drift = sync.reconcile(named, full=False, dry_run=False)
    assert drift.imported == 1
    row = db.session.scalar(select(Suppression))
    assert (row.reason, row.source) == ("complained", "sync:mailgun-fi")
    (report,) = sync.run()
    assert report.accepted == 0
    assert mailgun.pushes() == 0, "not pushed back where it came from"


def test_a_full_reconcile_pushes_again_what_the_destination_lost(app, mailgun):
    named = destination()
    suppressed("matti@yritys.fi")
    sync.run()
    mailgun.tables["unsubscribes"].clear()
    drift = sync.reconcile(named, full=True, dry_run=False)
    assert drift.ours_only == 1
    (report,) = sync.run()
    assert report.accepted == 1
    assert "matti@yritys.fi" in mailgun.tables["unsubscribes"]


def test_healthz_reports_each_destination_s_lag_and_turns_503_past_the_limit(
    app, client, mailgun, monkeypatch
):
    destination()
    suppressed("matti@yritys.fi")
    db.session.execute(update(Suppression).values(created_at=utcnow() - timedelta(hours=2)))
    db.session.commit()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert 7100 < response.json["sync"]["mailgun-fi"]["lag_seconds"] < 7300
    monkeypatch.setitem(app.config, "SYNC_MAX_LAG", 3600)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["lagging"] == ["mailgun-fi"]
    sync.run()
    assert client.get("/healthz").json["sync"]["mailgun-fi"]["lag_seconds"] == 0


def oldest_pending(named):
    """The moment ``named`` keeps of its oldest pending row, once checked against its outbox's
    and against the lag reported from it (with every suppression planned)."""
    db.session.commit()
    kept = db.session.scalar(
        select(Destination.oldest_pending_at).where(Destination.id == named.id)
    )
    actual = db.session.scalar(
        select(func.min(SyncState.changed_at)).where(
            SyncState.destination_id == named.id, SyncState.status == PENDING
        )
    )
    assert kept == actual
    now = utcnow()
    assert sync.lag(now)[named.name] == ((now - kept).total_seconds() if kept else 0.0)
    return kept


def due(address):
    """Make ``address``'s postponed row due now, as its retry time would."""
    made_due = update(SyncState).where(SyncState.email == address)
    db.session.execute(made_due.values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def test_the_lag_follows_the_oldest_pending_row_through_pushes_failures_and_reconciling(
    app, mailgun
):
    """/healthz reads the moment the destination keeps rather than its outbox (which PostgreSQL
    does not index by status): after every step it is the outbox's own oldest pending row."""
    named = destination()
    three_hours_ago, an_hour_ago = utcnow() - timedelta(hours=3), utcnow() - timedelta(hours=1)
    suppressed("vanha@yritys.fi")
    sync.plan(named, three_hours_ago)
    assert oldest_pending(named) == three_hours_ago
    mailgun.fail_next(503, times=3)
    assert sync.run()[0].error
    assert oldest_pending(named) == three_hours_ago, "postponed, still pending"
    suppressed("uusi@yritys.fi", reason="complained")
    sync.plan(named, an_hour_ago)
    assert oldest_pending(named) == three_hours_ago, "a later plan lowers nothing"
    mailgun.fail_next(503, times=3)
    assert sync.run()[0].error
    due("vanha@yritys.fi")
    assert sync.run()[0].accepted == 1
    assert oldest_pending(named) == an_hour_ago, "the oldest row accepted, the lag falls"
    due("uusi@yritys.fi")
    assert sync.run()[0].accepted == 1
    assert oldest_pending(named) is None

    suppressed("kolmas@yritys.fi")
    assert 0 < sync.lag(utcnow())[named.name] < 60, "not yet planned"
    assert sync.run()[0].accepted == 1
    assert oldest_pending(named) is None

    mailgun.tables["unsubscribes"].clear()
    assert sync.reconcile(named, full=True, dry_run=False).ours_only == 2
    assert oldest_pending(named) == three_hours_ago, "lost: pending since it was first wanted"
    assert sync.run()[0].accepted == 2
    assert oldest_pending(named) is None


def lifted(address):
    suppressions.lift(address, actor="test")
    db.session.commit()


@pytest.mark.parametrize(
    ("change", "made_pending"),
    [
        pytest.param(lambda: suppressed("uusi@yritys.fi"), 1, id="new"),
        pytest.param(lambda: suppressed("matti@yritys.fi", reason="complained"), 1, id="reason"),
        pytest.param(lambda: lifted("matti@yritys.fi"), 1, id="lift"),
        pytest.param(lambda: None, 0, id="nothing"),
    ],
)
def test_a_plan_lowers_the_oldest_pending_moment_to_its_own_time(
    app, mailgun, change, made_pending
):
    """Whichever statement makes rows pending (a new row, a row held with another reason, a
    lift), in the plan's own transaction; a plan that makes none pending leaves it."""
    named = destination()
    suppressed("matti@yritys.fi")
    sync.run()
    change()
    moment = utcnow() - timedelta(minutes=5)
    assert sync.plan(named, moment) == made_pending
    assert oldest_pending(named) == (moment if made_pending else None)


def test_a_plan_beside_another_on_postgresql_lowers_the_moment_for_the_rows_it_adds(app, mailgun):
    """The second plan's insert meets the first's rows and falls back to the upsert, which
    writes only the row the first lacked: that row lowers the moment too."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one worker at a time")
    named = destination()
    suppressed("eka@yritys.fi", "toka@yritys.fi")
    first_moment, second_moment = utcnow(), utcnow() - timedelta(minutes=5)
    assert sync.plan(named, first_moment) == 2
    second = {}

    def plan_beside() -> None:
        suppressed("kolmas@yritys.fi")
        second["planned"] = sync.plan(sync.find_destination(named.name), second_moment)
        db.session.commit()

    planner = beside(app, plan_beside)
    db.session.commit()
    planner.join(timeout=10)
    assert second == {"planned": 1}
    assert oldest_pending(named) == second_moment


def test_a_pass_ending_beside_a_plan_on_postgresql_counts_the_plan_s_rows(app, mailgun):
    """The pass counts the moment again once the plan has committed, from the rows it made
    pending, rather than from what the outbox held as the count began."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one worker at a time")
    named = destination()
    suppressed("matti@yritys.fi")
    moment = utcnow()
    assert sync.plan(named, moment) == 1

    def pass_beside() -> None:
        ending = sync.find_destination(named.name)
        account = sync.account_for(ending, app.config)
        try:
            sync.push_pending(ending, account, sync.Report(ending.name))
            db.session.commit()
        finally:
            account.api.close()

    pusher = beside(app, pass_beside)
    db.session.commit()
    pusher.join(timeout=10)
    assert mailgun.pushes() == 0, "the plan's rows came after the pass's claims"
    assert oldest_pending(named) == moment


def test_the_cli_adds_lists_and_syncs_destinations(app, runner, mailgun):
    suppressed("matti@yritys.fi")
    result = runner.invoke(
        args=["destinations", "add", "mailgun-fi", "--provider", "mailgun", "--target", DOMAIN]
    )
    assert result.exit_code == 0, result.output
    assert "added mailgun-fi (mailgun mg.yritys.fi)" in result.output
    result = runner.invoke(args=["sync"])
    assert result.exit_code == 0, result.output
    assert "mailgun-fi: 1 newly planned, pushed 1" in result.output
    result = runner.invoke(args=["destinations", "list"])
    assert "1 accepted, 0 pending, 0 refused" in result.output
    assert API_KEY not in result.output


def test_removing_a_destination_leaves_none_of_its_outbox_behind(app, runner, mailgun):
    """The outbox has no foreign key to cascade (checking it slowed every plan): removing a
    destination deletes its rows itself, and no other destination's."""
    destination()
    kept = destination("toinen").id
    suppressed("matti@yritys.fi", "maija@yritys.fi")
    sync.run()
    result = runner.invoke(args=["destinations", "remove", "mailgun-fi", "--yes"])
    assert result.exit_code == 0, result.output
    held_by = select(SyncState.destination_id, func.count()).group_by(SyncState.destination_id)
    assert dict(db.session.execute(held_by).all()) == {kept: 2}


def test_the_cli_exits_1_when_a_destination_cannot_be_reached(app, runner, mailgun):
    destination()
    suppressed("matti@yritys.fi")
    mailgun.fail_next(500, times=5)
    result = runner.invoke(args=["sync"])
    assert result.exit_code == 1
    assert "mailgun-fi: stopped: POST" in result.output


def test_an_error_naming_an_address_is_logged_without_it(app, mailgun, caplog):
    caplog.set_level("DEBUG")
    destination()
    suppressed("palaaja@yritys.fi")
    sync.run()
    suppressions.lift("palaaja@yritys.fi", actor="test")
    db.session.commit()
    mailgun.fail_next(500, times=3, body={"message": "cannot remove palaaja@yritys.fi now"})
    (report,) = sync.run()
    assert report.error == (
        "DELETE /v3/mg.yritys.fi/unsubscribes/<address>: HTTP 500 cannot remove <address> now"
    )
    ours = [record for record in caplog.records if not record.name.startswith("werkzeug")]
    assert ours
    assert not [record for record in ours if "palaaja" in record.getMessage()]


def test_reconcile_takes_a_list_entry_for_a_global_suppression_as_held(app, mailgun):
    create_list("uutiskirje", name="Uutiskirje")
    named = destination(list_slug="uutiskirje")
    suppressed("matti@yritys.fi")
    sync.run()
    mailgun.tables["unsubscribes"]["matti@yritys.fi"]["tags"] = ["uutiskirje"]
    drift = sync.reconcile(named, full=True, dry_run=True)
    assert drift.theirs_only == []
    assert drift.ours_only == 0
