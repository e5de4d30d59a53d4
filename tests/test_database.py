import threading
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import current_app
from flask_migrate import downgrade, upgrade
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    Boolean,
    DateTime,
    Integer,
    String,
    Text,
    inspect,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite

from suppress.addresses import email_hash
from suppress.database import DIRECT_ENGINE, Bulk, Prepared, direct_transaction
from suppress.migrations import made_on
from suppress.models import Destination, UTCDateTime, db, utc_text, utcnow
from suppress.suppressions import Hashed, suppress, suppress_domain, suppress_hashed


def test_migrations_build_exactly_what_the_models_describe(app):
    """On each database, as autogenerate compares them (``made_on``)."""
    with db.engine.connect() as connection:
        only_here = made_on(connection.dialect.name)
        options = {"compare_type": True, "include_object": only_here}
        context = MigrationContext.configure(connection, opts=options)
        assert compare_metadata(context, db.metadata) == []


def test_sqlite_runs_with_wal_busy_timeout_and_foreign_keys(app):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    with db.engine.connect() as connection:
        pragma = lambda name: connection.execute(text(f"PRAGMA {name}")).scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("busy_timeout") == app.config["SQLITE_BUSY_TIMEOUT_MS"]
        assert pragma("foreign_keys") == 1
        assert pragma("synchronous") == 1  # NORMAL: the log is synced at checkpoints


def test_sqlite_syncs_every_commit_when_asked(make_app, tmp_path):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'own.db'}", SQLITE_SYNCHRONOUS="full")
    with app.app_context(), db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2


@pytest.mark.parametrize(
    ("write", "revision", "table"),
    [
        (lambda: suppress("a@b.fi", reason="unsubscribed", source="link"), "base", "suppressions"),
        (
            lambda: suppress_domain("*.example.fi", reason="manual", source="cli:test"),
            "49f2e646a3a5",
            "domain_suppressions",
        ),
    ],
)
def test_downgrade_refuses_to_drop_suppressions_and_undoes_an_empty_table(
    make_app, tmp_path, capfd, write, revision, table
):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'own.db'}")
    with app.app_context():
        upgrade()
        write()
        db.session.commit()
        with pytest.raises(SystemExit):
            downgrade(revision=revision)
        assert f"refusing to downgrade: the {table} table holds 1 rows" in capfd.readouterr().err
        db.session.remove()
        assert db.session.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 1
        db.session.execute(text(f"DELETE FROM {table}"))
        db.session.commit()
        downgrade(revision=revision)
        assert table not in inspect(db.engine).get_table_names()
        upgrade()
        assert table in inspect(db.engine).get_table_names()


def test_destinations_gain_their_oldest_pending_moment_counted_from_the_outbox(make_app, tmp_path):
    """Migration adc27ae7e62c: each destination's own oldest pending row, NULL where it has
    none pending."""
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'own.db'}")
    hours_ago = {hours: utcnow() - timedelta(hours=hours) for hours in range(1, 5)}
    outboxes = {
        "odottava": [("accepted", 3), ("pending", 2), ("pending", 1)],
        "valmis": [("accepted", 4)],
        "toinen": [("pending", 4)],
    }
    with app.app_context():
        upgrade(revision="e4b57bd8a247")
        for number, (name, rows) in enumerate(outboxes.items(), start=1):
            db.session.execute(
                text(
                    "INSERT INTO destinations (id, name, provider, created_at, planned_through)"
                    " VALUES (:id, :name, 'mailgun', :now, 0)"
                ),
                {"id": number, "name": name, "now": utc_text(utcnow())},
            )
            for row, (status, hours) in enumerate(rows):
                db.session.execute(
                    text(
                        "INSERT INTO sync_states (destination_id, email_hash, scope, reason,"
                        " action, status, attempts, changed_at) VALUES"
                        " (:id, :hash, 'global', 'unsubscribed', 'suppress', :status, 0, :at)"
                    ),
                    {
                        "id": number,
                        "hash": f"{row:064x}",
                        "status": status,
                        "at": utc_text(hours_ago[hours]),
                    },
                )
        db.session.commit()
        upgrade()
        kept = db.session.execute(select(Destination.name, Destination.oldest_pending_at))
        assert dict(kept.all()) == {
            "odottava": hours_ago[2],
            "valmis": None,
            "toinen": hours_ago[4],
        }
        db.session.remove()


@given(st.datetimes(timezones=st.timezones()))
def test_the_fast_sqlite_time_text_is_what_sqlalchemy_stores(moment):
    dialect = sqlite.dialect()
    standard = DateTime().dialect_impl(dialect).bind_processor(dialect)
    expected = standard(moment.astimezone(UTC).replace(tzinfo=None))
    assert UTCDateTime().bind_processor(dialect)(moment) == expected


def test_a_naive_time_is_refused_on_every_backend():
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        with pytest.raises(ValueError, match="naive"):
            UTCDateTime().bind_processor(dialect)(datetime(2026, 1, 1))


def bounced(email: str) -> Hashed:
    return Hashed(email, email_hash(email), reason="bounced")


def test_direct_writers_in_many_threads_take_turns_and_all_commit(make_app, tmp_path):
    """SQLite writers queue on a lock file beside the database instead of sleeping on it."""
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'own.db'}", SQLITE_BUSY_TIMEOUT_MS=50)
    with app.app_context():
        upgrade()

    def write(thread: int) -> None:
        with app.app_context():
            for number in range(40):
                email = f"person{thread}.{number}@yritys.fi"
                with direct_transaction() as transaction:
                    suppress_hashed(transaction, [bounced(email)], source="test")

    workers = [threading.Thread(target=write, args=(thread,)) for thread in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    with app.app_context():
        assert db.session.execute(text("SELECT count(*) FROM suppressions")).scalar() == 160
    assert (tmp_path / "own.db-writer").exists()


class DroppedByTheServer:
    """A pooled connection the server has closed: its first statement fails."""

    def __init__(self, connection):
        self.connection = connection
        self.invalidated = False

    def __getattr__(self, name):
        return getattr(self.connection, name)

    def cursor(self):
        dbapi = db.engine.dialect.loaded_dbapi
        cursor = self.connection.cursor()

        class Dead:
            def execute(self, *args):
                raise dbapi.OperationalError("server closed the connection unexpectedly")

            executemany = execute

        return Dead() if not self.invalidated else cursor

    def invalidate(self):
        self.invalidated = True
        self.connection.invalidate()


def test_a_direct_transaction_replaces_a_dropped_connection_before_its_first_statement(
    app, monkeypatch
):
    engine = current_app.extensions[DIRECT_ENGINE]
    connections = iter([DroppedByTheServer(engine.raw_connection())])
    real = engine.raw_connection
    monkeypatch.setattr(engine, "raw_connection", lambda: next(connections, None) or real())
    with direct_transaction() as transaction:
        assert suppress_hashed(transaction, [bounced("a@b.fi")], source="test") == 1
    monkeypatch.undo()
    assert db.session.execute(text("SELECT count(*) FROM suppressions")).scalar() == 1


def test_a_connection_dropped_after_the_first_statement_fails_the_transaction(app, monkeypatch):
    def write_two() -> None:
        with direct_transaction() as transaction:
            suppress_hashed(transaction, [bounced("a@b.fi")], source="t")
            transaction.connection = DroppedByTheServer(transaction.connection)
            suppress_hashed(transaction, [bounced("c@d.fi")], source="t")

    with pytest.raises(db.engine.dialect.loaded_dbapi.OperationalError):
        write_two()
    assert db.session.execute(text("SELECT count(*) FROM suppressions")).scalar() == 0


def test_a_bulk_statement_over_more_rows_than_a_chunk_returns_them_all(app):
    listed = Bulk(
        {"slug": String(64), "rank": Integer()},
        lambda dialect, incoming: select(incoming.c.slug, incoming.c.rank + literal_column("1")),
    )
    rows = [(f"list-{number}", number) for number in range(300)]
    with direct_transaction() as transaction:
        returned = transaction.run_bulk(listed.ready(transaction.dialect, rows))
    assert sorted(returned, key=lambda row: row[1]) == [(slug, rank + 1) for slug, rank in rows]


def test_a_bulk_statement_carries_every_value_as_it_was_given(app):
    """On PostgreSQL the rows travel as one JSON document: quotes, backslashes, line breaks,
    letters beyond ASCII, NULLs, booleans and times to the microsecond arrive unchanged."""
    echoed = Bulk(
        {"name": Text(), "flag": Boolean(), "at": UTCDateTime()},
        lambda dialect, incoming: select(incoming.c.name, incoming.c.flag, incoming.c.at),
    )
    at = datetime(2026, 11, 23, 23, 59, 59, 123456, tzinfo=UTC)
    rows = [('"Äijä" \\ \n', True, at), ("🙂", None, None), ("x", False, at)]
    dialect = db.engine.dialect
    with direct_transaction() as transaction:
        returned = transaction.run_bulk(echoed.ready(dialect, rows))
    stored = echoed.bound(dialect, "at", at)
    assert sorted(returned) == sorted(
        [('"Äijä" \\ \n', True, stored), ("🙂", None, None), ("x", False, stored)]
    )


def test_a_bulk_statement_binds_nothing_but_its_rows(app):
    binding = Bulk(
        {"slug": String(64)},
        lambda dialect, incoming: select(incoming.c.slug).where(incoming.c.slug != "news"),
    )
    with pytest.raises(ValueError, match="binds only its rows"):
        binding.ready(db.engine.dialect, [("news",)])
    narrow = Bulk({"slug": String(64), "rank": Integer()}, lambda dialect, incoming: select(1))
    if db.engine.dialect.name == "sqlite":
        with pytest.raises(ValueError, match="every row needs 2 values"):
            narrow.ready(db.engine.dialect, [("news",)])


def run_twice_in_one_statement() -> None:
    one = Prepared(select(literal_column("1")))
    with direct_transaction(one_statement=True) as transaction:
        transaction.run(one).close()
        transaction.run(one)


def test_a_one_statement_transaction_refuses_a_second_statement_on_postgresql(app):
    """There its statement commits as it runs (autocommit): a second could not be rolled back
    with it. (Every webhook test of an event without a rule stores through one.)"""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs every direct block as a transaction")
    with pytest.raises(RuntimeError, match="second statement"):
        run_twice_in_one_statement()
