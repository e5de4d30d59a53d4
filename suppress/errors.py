"""One error handler for the whole app: JSON for machines, a readable page for people.

ESPs, API clients and health checkers get ``{"error": ..., "message": ...}`` with the status;
browsers get an HTML page. Any unexpected error rolls the database session back, so a failed
request never leaves half a change behind for the next one on the same connection.
"""

import logging

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError

from suppress.models import db

JSON_PREFIXES = ("/api/", "/webhooks/", "/inbound/", "/healthz")

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected_error)


def handle_http_error(error: HTTPException) -> ResponseReturnValue:
    if (error.code or 500) >= 500:
        db.session.rollback()
    return render_error(error)


def handle_unexpected_error(error: Exception) -> ResponseReturnValue:
    db.session.rollback()
    log.exception("unhandled error on %s %s", request.method, request.path)
    return render_error(InternalServerError())


def render_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    if request.path.startswith(JSON_PREFIXES):
        slug = error.name.lower().replace(" ", "_")
        return jsonify(error=slug, message=error.description), status
    return render_template("errors/error.html", error=error, status=status), status
