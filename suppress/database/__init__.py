"""Connecting to the database: the engine settings each backend needs to be safe and fast.

The engines are set up from the URL in ``engines``: SQLite's connections start with the pragmas
of ``sqlite`` (WAL, a busy timeout, foreign keys on); PostgreSQL needs nothing beyond its URL, so
the same code runs on both, and gets two direct engines of its own for the hot paths. Those paths
run statements compiled once (``prepared``) or over many rows at once (``bulk``) straight on a
DBAPI connection, inside a direct transaction (``transactions``), which on a SQLite file first
waits for the writer's turn.
"""

from suppress.database.bulk import BULK_SIZES, Bulk
from suppress.database.engines import DIRECT_ENGINE, STATEMENT_ENGINE, dispose, init_app
from suppress.database.prepared import Prepared, raw_cursor
from suppress.database.sqlite import sqlite_pragmas
from suppress.database.transactions import (
    DirectTransaction,
    direct_dialect,
    direct_transaction,
    writer_turn,
)

__all__ = [
    "BULK_SIZES",
    "DIRECT_ENGINE",
    "STATEMENT_ENGINE",
    "Bulk",
    "DirectTransaction",
    "Prepared",
    "direct_dialect",
    "direct_transaction",
    "dispose",
    "init_app",
    "raw_cursor",
    "sqlite_pragmas",
    "writer_turn",
]
