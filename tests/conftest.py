"""Shared fixtures: one real database per test session, emptied after every test.

The suite runs on a temporary SQLite file, or on PostgreSQL when ``SUPPRESS_TEST_DATABASE_URL``
names one (CI does both). The schema is built by the Alembic migrations themselves, so every
run also proves that the migrations produce what the models describe.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from suppress import create_app, database
from suppress.migrations import with_migrations
from suppress.models import db

TEST_DATABASE_ENV = "SUPPRESS_TEST_DATABASE_URL"


class RequestPerContextClient(FlaskClient):
    """Runs each request in its own app context, as a server does.

    Tests keep an app context open for database checks; without this, requests would share its
    ``g`` and its database session, hiding bugs that only show when requests are independent.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


def _fresh_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get(TEST_DATABASE_ENV)
    if not url:
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'suppress.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _fresh_database_url(tmp_path_factory)


@pytest.fixture(scope="session")
def make_app(database_url: str):
    """Build apps on the test database (overrides for tests that need their own app)."""
    built: list[Flask] = []

    def build(**overrides: object) -> Flask:
        settings = {"DATABASE_URL": database_url, "SECRET_KEY": "test-secret", "TESTING": True}
        app = with_migrations(create_app({**settings, **overrides}))
        app.test_client_class = RequestPerContextClient
        built.append(app)
        return app

    yield build
    for app in built:
        database.dispose(app)


@pytest.fixture(scope="session")
def migrated_app(make_app) -> Flask:
    app = make_app()
    with app.app_context():
        upgrade()
    return app


@pytest.fixture
def app(migrated_app: Flask) -> Iterator[Flask]:
    with migrated_app.app_context():
        yield migrated_app
        db.session.rollback()
        _empty_tables()
        db.session.remove()


def _empty_tables() -> None:
    with db.engine.begin() as connection:
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def write_csv(tmp_path: Path):
    """Write a CSV file as bytes in a given encoding, the way a spreadsheet would save it."""

    def write(text: str, encoding: str = "utf-8", name: str = "list.csv") -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        return path

    return write


class _CommitFails:
    """A pooled connection whose commit fails, as it does on a full or failing disk."""

    def __init__(self, connection):
        self.connection = connection

    def __getattr__(self, name):
        return getattr(self.connection, name)

    def commit(self):
        raise db.engine.dialect.loaded_dbapi.OperationalError("disk I/O error")


@pytest.fixture
def commits_fail(app: Flask):
    """A context in which every direct transaction's commit fails."""

    @contextmanager
    def failing() -> Iterator[None]:
        engine = app.extensions[database.DIRECT_ENGINE]
        real = engine.raw_connection
        engine.raw_connection = lambda: _CommitFails(real())
        try:
            yield
        finally:
            del engine.raw_connection

    return failing
