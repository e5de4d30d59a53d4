"""The schema's migrations: Flask-Migrate (Alembic) on the app, and its ``flask db`` commands.

Flask-Migrate imports Alembic, and Alembic its templates and every dialect's DDL: a quarter of
a second that every other command (a ``clean`` of a million rows, a ``sync`` pass) would pay at
start-up for nothing. So the app's command group sets Flask-Migrate up only when ``db`` is asked
for, and whoever runs migrations from code (the tests) calls ``with_migrations`` first.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy.engine import make_url

from suppress.models import ONLY_ON, db

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
COMMAND = "db"
EXTENSION = "migrate"  # Flask-Migrate's own key, which its commands and migrations/env.py read


def init_app(app: Flask) -> None:
    """Give ``app`` the command group that knows ``db`` before it is loaded; call it before
    any command is added."""
    commands = AppCommands(app.cli.name)
    commands.commands.update(app.cli.commands)
    app.cli = commands


def with_migrations(app: Flask) -> Flask:
    """``app`` with Flask-Migrate set up, as its ``db`` commands, its functions (``upgrade``,
    ...) and the migrations themselves expect it."""
    if EXTENSION not in app.extensions:
        from flask_migrate import Migrate

        Migrate(
            app,
            db,
            directory=str(MIGRATIONS),
            command=COMMAND,
            render_as_batch=True,
            compare_type=True,
            include_object=made_on(make_url(app.config["DATABASE_URL"]).get_backend_name()),
        )
    return app


def made_on(dialect: str) -> Callable[..., bool]:
    """Autogenerate's filter of the models on ``dialect``: what they create on other databases
    only (``models.only_on``), such as the outbox's index of pending rows, which only SQLite has, is
    left out rather than taken for a missing object."""

    def include_object(obj: Any, name: str, type_: str, reflected: bool, compare_to: Any) -> bool:
        only_on = getattr(obj, "info", {}).get(ONLY_ON)
        return only_on is None or only_on == dialect

    return include_object


class AppCommands(AppGroup):
    """The app's commands, with Flask-Migrate's ``db`` group added when it is first asked
    for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), COMMAND})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == COMMAND and name not in self.commands:
            with_migrations(ctx.ensure_object(ScriptInfo).load_app())
        return super().get_command(ctx, name)
