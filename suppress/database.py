"""Connecting to the database: the engine settings each backend needs to be safe and fast.

SQLite runs in WAL mode (readers never block the writer), waits for the write lock instead of
failing at once, and enforces foreign keys, which it leaves off by default. In WAL mode,
``synchronous = NORMAL`` syncs the log at checkpoints rather than at every commit: a commit is
still durable when a process dies, and a one-click burst runs about twice as fast. PostgreSQL needs
nothing beyond its URL, so the same code runs on both.
"""

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import (
    JSON,
    Dialect,
    Text,
    cast,
    column,
    create_engine,
    event,
    func,
    select,
    union_all,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql import bindparam
from sqlalchemy.sql.expression import Executable, FromClause
from sqlalchemy.types import TypeEngine

from suppress.models import UTCDateTime, db, utc_text

DIRECT_ENGINE = "suppress.direct_engine"
STATEMENT_ENGINE = "suppress.statement_engine"
# Rows per Bulk statement on SQLite, which binds every value on its own: a chunk is padded up to
# the next of these sizes, so that each statement is compiled for five shapes only.
BULK_SIZES = (1, 4, 16, 64, 256)


def init_app(app: Flask) -> None:
    url = make_url(app.config["DATABASE_URL"])
    app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"]
    # A server can drop a pooled connection, so each checkout pings it first; a file cannot.
    pre_ping = url.get_backend_name() != "sqlite"
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": pre_ping})
    db.init_app(app)
    with app.app_context():
        engine = db.engine
    if engine.dialect.name == "sqlite":
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        _configure_sqlite(engine, app.config)
        app.extensions[DIRECT_ENGINE] = app.extensions[STATEMENT_ENGINE] = engine
        return
    # The hot paths skip the ping, a round trip per request: their first statement is retried
    # on a fresh connection instead (DirectTransaction). Their statements, which psycopg
    # prepares, are lookups by key and rows read from a JSON document: the server's default would
    # plan those afresh on every run (a document's length changes the estimate), which costs
    # more than running them, so they keep one generic plan. Their cursors are raw (see
    # ``raw_cursor``). A block of one statement runs on connections in autocommit mode (see
    # DirectTransaction).
    options = {"pool_pre_ping": False, "connect_args": {"options": _GENERIC_PLANS}}
    app.extensions[DIRECT_ENGINE] = _raw_cursors(create_engine(engine.url, **options))
    app.extensions[STATEMENT_ENGINE] = _raw_cursors(
        create_engine(engine.url, isolation_level="AUTOCOMMIT", **options)
    )


_GENERIC_PLANS = "-c plan_cache_mode=force_generic_plan"


def _raw_cursors(engine: Engine) -> Engine:
    """``engine``, its connections making raw cursors (see ``raw_cursor``) once SQLAlchemy has
    set them up: its own first queries bind parameters by name."""

    @event.listens_for(engine, "connect")
    def make_raw_cursors(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.cursor_factory = engine.dialect.loaded_dbapi.RawCursor

    return engine


def dispose(app: Flask) -> None:
    """Close every pooled connection of ``app``'s engines."""
    with app.app_context():
        db.engine.dispose()
    for name in (DIRECT_ENGINE, STATEMENT_ENGINE):
        app.extensions[name].dispose()


def sqlite_pragmas(config: Mapping[str, Any]) -> list[str]:
    """The statements every SQLite connection starts with, from the settings."""
    return [
        f"PRAGMA busy_timeout = {int(config['SQLITE_BUSY_TIMEOUT_MS'])}",
        "PRAGMA journal_mode = WAL",
        f"PRAGMA synchronous = {config['SQLITE_SYNCHRONOUS']}",
        "PRAGMA foreign_keys = ON",
    ]


def _configure_sqlite(engine: Engine, config: Mapping[str, Any]) -> None:
    pragmas = sqlite_pragmas(config)

    @event.listens_for(engine, "connect")
    def set_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()


def raw_cursor(connection: Any, dialect: Dialect) -> Any:
    """A cursor to run Prepared and Bulk statements on a pooled DBAPI ``connection`` of the
    app's own engine (the direct engines' connections make such cursors by themselves).

    On PostgreSQL a raw cursor, which sends the statements' ``$1`` markers as they are:
    psycopg's own cursor parses the text for ``%s`` on every run of a statement over 4 kB (the
    webhook INSERT is longer), a fifth of a single webhook's time in the driver.
    """
    if dialect.name != "postgresql":
        return connection.cursor()
    return dialect.loaded_dbapi.RawCursor(connection.driver_connection)


class Prepared:
    """A Core statement compiled once per dialect, to run straight on a DBAPI cursor.

    The hot paths (a burst of one-click POSTs, bulk imports, webhook batches) run the same few
    statements thousands of times a second, where SQLAlchemy's per-execution work (cache
    lookup, parameter and result objects) costs more than the database's own. Parameters still
    pass through each column type's bind processor, so values are stored exactly as the ORM
    stores them; results come back as the driver's plain tuples.
    """

    def __init__(self, statement: Executable | Callable[[Dialect], Executable]):
        """``statement``, or a function building it for a dialect (an upsert is written with
        each dialect's own ``insert``)."""
        self.build = statement if callable(statement) else lambda dialect: statement
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> "_Compiled":
        if dialect.name not in self._compiled:
            self._compiled[dialect.name] = _Compiled.of(self.build(dialect), dialect)
        return self._compiled[dialect.name]

    def parameters(self, dialect: Dialect, values: Mapping[str, Any]) -> list[Any]:
        compiled = self.compiled(dialect)
        fixed = compiled.fixed
        return compiled.processed(
            [fixed[name] if name in fixed else values[name] for name in compiled.names]
        )


@dataclass(frozen=True)
class _Compiled:
    """The driver's SQL with positional markers, the parameter names in order, the values of
    those the statement fixes itself (``count + 1``), and the bind processor of each parameter
    whose type needs one."""

    sql: str
    names: tuple[str, ...]
    fixed: dict[str, Any]
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]

    def processed(self, parameters: list[Any]) -> list[Any]:
        """``parameters``, in statement order, through their bind processors (in place)."""
        for position, process in self.processors:
            parameters[position] = process(parameters[position])
        return parameters

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect) -> "_Compiled":
        style = "qmark" if dialect.name == "sqlite" else "numeric_dollar"
        positional = type(dialect)(paramstyle=style)
        compiled = statement.compile(dialect=positional)
        names = tuple(compiled.positiontup or ())
        binds = compiled.binds
        fixed = {name: binds[name].effective_value for name in names if not binds[name].required}
        processors = []
        for position, name in enumerate(names):
            process = binds[name].type.dialect_impl(positional).bind_processor(positional)
            if process is not None:
                processors.append((position, process))
        return cls(str(compiled), names, fixed, tuple(processors))


class Bulk:
    """A statement over many rows at once, compiled once per dialect (and size, on SQLite).

    The statement reads the rows from ``incoming``, which has ``columns``: on PostgreSQL one
    JSON document of every row (``json_to_recordset``), so that any number of rows is one
    statement of one shape, which psycopg prepares once, and the rows are encoded in C (psycopg
    dumps an array value by value in Python, which cost a webhook batch more than the rest of
    its database work on the client); on SQLite up to 256 rows of bound values, padded with
    rows of NULLs that ``incoming`` leaves out, so the first column must never be NULL. The
    statement binds nothing else: its parameters are the rows themselves, which ``ready`` puts
    through each column's bind processor (before a SQLite writer's turn, when the caller wants).
    """

    def __init__(
        self,
        columns: Mapping[str, TypeEngine[Any]],
        build: Callable[[Dialect, FromClause], Executable],
    ):
        """``build(dialect, incoming)`` is the statement."""
        self.columns = dict(columns)
        self.build = build
        self._sql: dict[tuple[str, int], str] = {}
        self._processors: dict[str, list[tuple[int, Callable[[Any], Any]]]] = {}

    def ready(self, dialect: Dialect, rows: Sequence[Sequence[Any]]) -> list[tuple[str, list]]:
        """The SQL and parameters running the statement over ``rows`` (values in the order of
        ``columns``): one statement on PostgreSQL, one per 256 rows on SQLite."""
        if not rows:
            return []
        processors = self._processors_for(dialect)
        if dialect.name == "postgresql" and len(rows) > 1:
            return [(self.sql(dialect, 0), [self._json(dialect, rows)])]
        width = len(self.columns)
        flat = [value for row in rows for value in row]
        if len(flat) != width * len(rows):
            raise ValueError(f"every row needs {width} values: {', '.join(self.columns)}")
        for position, process in processors:
            flat[position::width] = [*map(process, flat[position::width])]
        ready, step = [], BULK_SIZES[-1] * width
        for start in range(0, len(flat), step):
            chunk = flat[start : start + step]
            size = next(size for size in BULK_SIZES if size * width >= len(chunk))
            chunk.extend([None] * (size * width - len(chunk)))
            ready.append((self.sql(dialect, size), chunk))
        return ready

    def bound(self, dialect: Dialect, name: str, value: Any) -> Any:
        """``value`` as the driver is handed it for the column ``name``: what the database hands
        back when a statement returns that column as it was written."""
        process = self.columns[name].dialect_impl(dialect).bind_processor(dialect)
        return value if process is None else process(value)

    def _json(self, dialect: Dialect, rows: Sequence[Sequence[Any]]) -> str:
        """``rows`` as one JSON array of objects: times as UTC text (``utc_text``, by the
        encoder, one step instead of a processor and a conversion), any other value through its
        column's bind processor."""
        names = [*self.columns]
        processors = [
            (position, process)
            for position, process in self._processors_for(dialect)
            if not isinstance(self.columns[names[position]], UTCDateTime)
        ]
        if processors:
            columns = [[*given] for given in zip(*rows, strict=True)]
            for position, process in processors:
                columns[position] = [*map(process, columns[position])]
            rows = [*zip(*columns, strict=True)]
        return _JSON.encode([dict(zip(names, row, strict=True)) for row in rows])

    def _processors_for(self, dialect: Dialect) -> list[tuple[int, Callable[[Any], Any]]]:
        """Each column's position and bind processor, for the columns whose type has one."""
        if dialect.name not in self._processors:
            processors = [
                (position, type_.dialect_impl(dialect).bind_processor(dialect))
                for position, type_ in enumerate(self.columns.values())
            ]
            self._processors[dialect.name] = [(at, does) for at, does in processors if does]
        return self._processors[dialect.name]

    def sql(self, dialect: Dialect, size: int) -> str:
        """The statement for ``size`` rows bound one by one, or (0) for a JSON document of any
        number of rows."""
        if (dialect.name, size) not in self._sql:
            statement = self.build(dialect, self._incoming(dialect, size))
            compiled = _Compiled.of(statement, dialect)
            if [*compiled.names] != self._names(dialect, size):
                raise ValueError(f"a Bulk statement binds only its rows, not {compiled.names}")
            self._sql[dialect.name, size] = compiled.sql
        return self._sql[dialect.name, size]

    def _names(self, dialect: Dialect, size: int) -> list[str]:
        if size == 0:
            return [_JSON_ROWS]
        return [f"{name}__{index}" for index in range(size) for name in self.columns]

    def _incoming(self, dialect: Dialect, size: int) -> FromClause:
        shape = [column(name, type_) for name, type_ in self.columns.items()]
        if size == 0:
            rows = func.json_to_recordset(cast(bindparam(_JSON_ROWS, type_=Text()), JSON))
            return rows.table_valued(*shape).render_derived(name="incoming", with_types=True)
        # Rows as a subquery, not a WITH clause: Python's sqlite3 opens a transaction by itself
        # only before a statement that starts with INSERT, UPDATE, DELETE or REPLACE.
        rows = [
            select(
                *(
                    bindparam(f"{name}__{index}", type_=type_).label(name)
                    for name, type_ in self.columns.items()
                )
            )
            for index in range(size)
        ]
        padded = (union_all(*rows) if size > 1 else rows[0]).subquery("padded")
        first = padded.c[next(iter(self.columns))]
        return select(padded).where(first.is_not(None)).subquery("incoming")


_JSON_ROWS = "rows"
# Times as ISO 8601 text, which PostgreSQL casts back to the column's type exactly.
_JSON = json.JSONEncoder(default=utc_text, separators=(",", ":"))


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
