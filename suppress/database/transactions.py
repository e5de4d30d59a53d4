"""Direct transactions: the hot paths' own pooled connections, and the writer's turn on SQLite."""

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app
from sqlalchemy import Dialect
from sqlalchemy.engine import Engine

from suppress.database.engines import DIRECT_ENGINE, STATEMENT_ENGINE
from suppress.database.prepared import Prepared


class DirectTransaction:
    """Runs Prepared statements on one DBAPI connection inside one transaction.

    Until a statement has succeeded, a connection the server dropped is replaced and the
    statement tried again: nothing has happened in the transaction yet, and this spares the
    hot paths a ping on every checkout.

    ``one_statement``: on PostgreSQL the transaction is its one statement, run on a connection
    in autocommit mode. The server commits it as a transaction of its own before it answers,
    which spares the round trips of BEGIN and COMMIT; a second statement is refused, as it
    would not be rolled back with the first.
    """

    def __init__(
        self,
        connection: Any,
        dialect: Dialect,
        reconnect: Callable[[], Any],
        *,
        one_statement: bool = False,
    ):
        self.connection = connection
        self.dialect = dialect
        self._reconnect: Callable[[], Any] | None = reconnect
        self.one_statement = one_statement and dialect.name == "postgresql"
        self._statements = 0

    @classmethod
    def on(cls, engine: Engine, *, one_statement: bool = False) -> "DirectTransaction":
        """A transaction on a connection from ``engine``'s pool."""
        return cls(
            engine.raw_connection(),
            engine.dialect,
            engine.raw_connection,
            one_statement=one_statement,
        )

    def commit(self) -> None:
        """Commit, unless the one statement has committed itself."""
        if not self.one_statement:
            self.connection.commit()

    def run(self, prepared: Prepared, **values: Any) -> Any:
        """Execute ``prepared`` with ``values``; returns the cursor to fetch from."""
        sql = prepared.compiled(self.dialect).sql
        parameters = prepared.parameters(self.dialect, values)
        return self._execute(lambda cursor: cursor.execute(sql, parameters))

    def run_bulk(self, ready: list[tuple[str, list[Any]]]) -> list[Any]:
        """Execute what ``Bulk.ready`` made ready; every row returned."""
        returned = []
        for sql, parameters in ready:
            cursor = self._execute(
                lambda cursor, sql=sql, parameters=parameters: cursor.execute(sql, parameters)
            )
            if cursor.description is not None:
                returned.extend(cursor.fetchall())
        return returned

    def _execute(self, statement: Callable[[Any], Any]) -> Any:
        if self.one_statement and self._statements:
            raise RuntimeError("a one-statement transaction cannot run a second statement")
        self._statements += 1
        cursor = self.connection.cursor()
        try:
            statement(cursor)
        except self.dialect.loaded_dbapi.OperationalError:
            if self._reconnect is None:
                raise
            self.connection.invalidate()
            self.connection = self._reconnect()
            cursor = self.connection.cursor()
            statement(cursor)
        self._reconnect = None
        return cursor


@contextmanager
def direct_transaction(*, one_statement: bool = False) -> Iterator[DirectTransaction]:
    """A pooled connection of its own, committed when the block ends, rolled back on error.

    Nothing is answered before the block has left: a 2xx always follows a commit. A block that
    runs a single statement on PostgreSQL says so with ``one_statement`` (see
    ``DirectTransaction``); SQLite, where BEGIN and COMMIT cost no round trip, ignores it.
    """
    engine = current_app.extensions[STATEMENT_ENGINE if one_statement else DIRECT_ENGINE]
    # The writer's turn covers the transaction, not the pool's checkout and checkin.
    transaction = DirectTransaction.on(engine, one_statement=one_statement)
    try:
        with _writer_turn(engine):
            try:
                yield transaction
                transaction.commit()
            except BaseException:
                transaction.connection.rollback()
                raise
    finally:
        transaction.connection.close()


@contextmanager
def writer_turn() -> Iterator[None]:
    """The writer's turn on a SQLite file (see ``_writer_turn``) for a write made through the
    session, such as the sync job's threads recording their outcomes; nothing on PostgreSQL."""
    with _writer_turn(current_app.extensions[DIRECT_ENGINE]):
        yield


def direct_dialect() -> Dialect:
    """The dialect direct transactions run in, to make their parameters ready beforehand."""
    return current_app.extensions[DIRECT_ENGINE].dialect


_lock_files = threading.local()


@contextmanager
def _writer_turn(engine: Engine) -> Iterator[None]:
    """On a SQLite file, wait for the writer's turn on an advisory lock beside the database.

    SQLite admits one writer at a time and makes the others poll with growing sleeps (1 ms,
    then 2, 5, 10 ms and on), so a burst of short write transactions from several workers
    spends its time asleep with the lock free. Queued on ``flock`` instead, the next writer
    wakes the moment the lock is released. Each thread opens its own lock file, as ``flock``
    does not exclude threads sharing one.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    files = _lock_files.__dict__
    if database not in files:
        files[database] = os.open(f"{database}-writer", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(files[database], fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(files[database], fcntl.LOCK_UN)
