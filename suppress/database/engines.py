"""The engines: the app's own, set up from its URL, and the direct engines of the hot paths.

SQLite has one engine for everything, set up by ``sqlite``; PostgreSQL adds two of its own for
the direct transactions (``transactions``), which skip the ping and keep generic plans.
"""

from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

from suppress.database.sqlite import configure_sqlite
from suppress.models import db

DIRECT_ENGINE = "suppress.direct_engine"
STATEMENT_ENGINE = "suppress.statement_engine"


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
        configure_sqlite(engine, app.config)
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
