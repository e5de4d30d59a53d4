import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from suppress.models import db
from suppress.suppressions import suppress


def test_migrations_build_exactly_what_the_models_describe(app):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
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


def test_downgrade_refuses_to_drop_suppressions(make_app, tmp_path, capfd):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'own.db'}")
    with app.app_context():
        upgrade()
        suppress("a@b.fi", reason="unsubscribed", source="link")
        db.session.commit()
        with pytest.raises(SystemExit):
            downgrade(revision="base")
        assert (
            "refusing to downgrade: the suppressions table holds 1 rows" in capfd.readouterr().err
        )
        db.session.remove()
        count = db.session.execute(text("SELECT count(*) FROM suppressions")).scalar()
        assert count == 1
