"""Prepared statements: a Core statement compiled once, run straight on a DBAPI cursor."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.sql.expression import Executable


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
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, dialect: Dialect) -> "Compiled":
        if dialect.name not in self._compiled:
            self._compiled[dialect.name] = Compiled.of(self.build(dialect), dialect)
        return self._compiled[dialect.name]

    def parameters(self, dialect: Dialect, values: Mapping[str, Any]) -> list[Any]:
        compiled = self.compiled(dialect)
        fixed = compiled.fixed
        return compiled.processed(
            [fixed[name] if name in fixed else values[name] for name in compiled.names]
        )


@dataclass(frozen=True)
class Compiled:
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
    def of(cls, statement: Executable, dialect: Dialect) -> "Compiled":
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
