"""The ``db`` commands: Flask-Migrate and Alembic, loaded only when they are asked for."""

import os
import subprocess
import sys
from pathlib import Path

from suppress import create_app, database
from suppress.migrations import EXTENSION

ROOT = Path(__file__).resolve().parent.parent


def test_an_app_starts_without_importing_alembic(tmp_path):
    """Every other command (a clean of a million rows) starts without it."""
    code = (
        "import sys; from suppress import create_app; create_app(); "
        "print(sorted({'alembic', 'flask_migrate'} & set(sys.modules)))"
    )
    env = {
        **os.environ,
        "SUPPRESS_DATABASE_URL": f"sqlite:///{tmp_path / 'own.db'}",
        "SUPPRESS_SECRET_KEY": "test-secret",
    }
    started = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert started.stdout.strip() == "[]"


def test_a_db_command_sets_flask_migrate_up_when_asked_for(database_url, migrated_app):
    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "test-secret", "TESTING": True})
    try:
        assert EXTENSION not in app.extensions
        result = app.test_cli_runner().invoke(args=["db", "current"])
        assert result.exit_code == 0, result.output
        assert EXTENSION in app.extensions
    finally:
        database.dispose(app)


def test_the_db_commands_are_listed_with_the_others(runner):
    assert "db " in runner.invoke(args=["--help"]).output
