"""suppress: a self-hosted suppression list and unsubscribe service.

``create_app`` only assembles the application: settings, the database, blueprints, error pages
and CLI commands. Each concern registers itself through its own ``init_app``.
"""

import logging
from typing import Any

from flask import Flask
from flask_migrate import Migrate

from suppress import cli, database, errors, health
from suppress.config import load_into, secret_key_from
from suppress.models import db

migrate = Migrate(render_as_batch=True, compare_type=True)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; settings in ``config`` (used by tests) win over the environment."""
    app = Flask(__name__, instance_relative_config=True, template_folder="../templates")
    load_into(app.config, config)
    if app.config["SECRET_KEY"] is None:
        app.config["SECRET_KEY"] = secret_key_from(app.instance_path)
    logging.getLogger("suppress").setLevel(app.config["LOG_LEVEL"])

    database.init_app(app)
    migrate.init_app(app, db, directory=str(database.MIGRATIONS))
    errors.init_app(app)
    app.register_blueprint(health.bp)
    cli.init_app(app)
    return app
