"""Bulk statements: one statement over many rows, as one JSON document or padded bound rows."""

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Dialect,
    Text,
    cast,
    column,
    func,
    select,
    union_all,
)
from sqlalchemy.sql import bindparam
from sqlalchemy.sql.expression import Executable, FromClause
from sqlalchemy.types import TypeEngine

from suppress.database.prepared import Compiled
from suppress.models import UTCDateTime, utc_text

# Rows per Bulk statement on SQLite, which binds every value on its own: a chunk is padded up to
# the next of these sizes, so that each statement is compiled for five shapes only.
BULK_SIZES = (1, 4, 16, 64, 256)


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
            compiled = Compiled.of(statement, dialect)
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
