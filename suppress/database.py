"""Connecting to the database: the engine settings each backend needs to be safe and fast.

SQLite runs in WAL mode (readers never block the writer), waits for the write lock instead of
failing at once, and enforces foreign keys, which it leaves off by default. In WAL mode,
``synchronous = NORMAL`` syncs the log at checkpoints rather than at every commit: a commit is
still durable when a process dies, and a one-click burst runs about twice as fast. PostgreSQL needs
nothing beyond its URL, so the same code runs on both.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from suppress.models import db

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


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
