"""``GET /healthz``: whether this instance can reach its database, and whether every
destination has accepted the suppressions within ``SUPPRESS_SYNC_MAX_LAG``.

A destination that lags means someone who said no may still be mailed by that tool (the 48-hour
promise, RULES.md R-MBP-3), which an operator's monitoring must see.
"""

import logging

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from suppress import sync
from suppress.models import db, utcnow

bp = Blueprint("health", __name__)

log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    try:
        db.session.execute(text("SELECT 1"))
        lags = sync.lag(utcnow())
    except SQLAlchemyError as error:
        db.session.rollback()
        log.warning("health check: database unavailable (%s)", type(error).__name__)
        return jsonify(status="unavailable", database="unreachable"), 503
    limit = current_app.config["SYNC_MAX_LAG"]
    late = sorted(name for name, seconds in lags.items() if seconds > limit)
    body = {
        "status": "lagging" if late else "ok",
        "database": "ok",
        "sync": {name: {"lag_seconds": round(seconds)} for name, seconds in lags.items()},
    }
    if late:
        body["lagging"] = late
    return jsonify(body), 503 if late else 200
