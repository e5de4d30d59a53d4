"""suppress: a self-hosted suppression list and unsubscribe service.

``create_app`` only assembles the application: settings, the database, blueprints, error pages
and CLI commands. Each concern registers itself through its own ``init_app``.
"""

import logging
from typing import Any

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from suppress import (
    cli,
    database,
    errors,
    health,
    i18n,
    inbound,
    migrations,
    unsubscribe,
    webhooks,
)
from suppress.config import load_into, secret_key_from

csrf = CSRFProtect()


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signer built only for a request that carries a
    session cookie: one-click POSTs and webhooks never do, and building it costs them more than
    their own work."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if "HTTP_COOKIE" not in request.environ or self.get_cookie_name(app) not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app; settings in ``config`` (used by tests) win over the environment."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder="../templates",
        static_folder="../static",
    )
    app.session_interface = CookieSessions()
    load_into(app.config, config)
    if app.config["SECRET_KEY"] is None:
        app.config["SECRET_KEY"] = secret_key_from(app.instance_path)
    logging.getLogger("suppress").setLevel(app.config["LOG_LEVEL"])

    database.init_app(app)
    migrations.init_app(app)
    errors.init_app(app)
    i18n.init_app(app)
    # Every form is CSRF-protected except the recipient's pages, where the token in the URL is
    # the credential and RFC 8058 forbids asking for anything else (R-OC-7).
    csrf.init_app(app)
    csrf.exempt(unsubscribe.bp)
    csrf.exempt(inbound.bp)
    csrf.exempt(webhooks.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(unsubscribe.bp)
    cli.init_app(app)
    inbound.init_app(app)
    webhooks.init_app(app)
    return app
