"""How close to the single-event floor can any receiver get that does the writes issue 5 asks for?

The ceiling is a bare Flask app under the same gunicorn settings as the service and the floor,
doing only what a single Mailgun event cannot do without: verify the HMAC, parse the JSON,
normalise and hash the recipient, store the event in the service's own events table (its
unique key and its one secondary index) and, with ``--engagement``, move the address's send
counter in the same transaction for the events that move it in the service (sends, opens,
clicks); one commit. It keeps no rules, no replay check, no machine-open
verdict and no pool, so no real receiver is faster. The floor, the service and the ceiling are
served side by side and driven in alternating rounds, as in ``bench_webhooks``.

Run from the repository root:
``.venv/bin/python -m bench.webhook_ceiling [--engagement] [--seconds 16] [--database-url URL]``
(default: a temporary SQLite file; a PostgreSQL database must be fresh).
"""

import argparse
import hashlib
import hmac
import json
import os
import sqlite3
import sys
import tempfile
import threading
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from flask import Config, Flask, Response, request
from sqlalchemy.engine import make_url

from bench.bench_webhooks import MAILGUN_KEY, mailgun_posts, prepare, settings
from bench.load import (
    FLOOR_APP,
    ROOT,
    SERVICE_APP,
    WARM_UP_SECONDS,
    Tally,
    describe,
    drive,
    served,
)
from suppress.addresses import normalise_and_hash
from suppress.config import load_into
from suppress.database import sqlite_pragmas

CEILING_APP = "bench.webhook_ceiling:ceiling_app()"
ENGAGEMENT = "BENCH_CEILING_ENGAGEMENT"
ROUNDS = 4
# The Mailgun events that move an address's counters in the service (sends, opens, clicks).
ENGAGING_EVENTS = frozenset({"accepted", "opened", "clicked"})
COLUMNS = (
    "provider, provider_event_id, type, raw_type, email_hash, machine, occurred_at, received_at"
)
CONFLICT = "ON CONFLICT (provider, provider_event_id) DO NOTHING"
SQLITE_EVENT = (
    f"INSERT INTO events ({COLUMNS}) VALUES ({', '.join('?' * 8)}) {CONFLICT} RETURNING id"
)
SQLITE_COUNTED = (
    "UPDATE addresses SET sent_count = sent_count + 1, last_sent_at = ? WHERE email_hash = ?"
)
POSTGRESQL_EVENT = (
    f"INSERT INTO events ({COLUMNS}) VALUES ({', '.join(f'${n}' for n in range(1, 9))}) {CONFLICT} "
    "RETURNING id, email_hash, occurred_at"
)
POSTGRESQL_COUNTED = (
    f"WITH new AS ({POSTGRESQL_EVENT}), counted AS ("
    "UPDATE addresses SET sent_count = sent_count + 1, last_sent_at = new.occurred_at "
    "FROM new WHERE addresses.email_hash = new.email_hash) SELECT id FROM new"
)


def ceiling_app() -> Flask:
    """The ceiling, built by gunicorn in each worker; one connection per thread."""
    config = Config(str(ROOT))
    load_into(config)
    store = _sqlite_store if config["DATABASE_URL"].startswith("sqlite") else _postgresql_store
    engagement = os.environ.get(ENGAGEMENT) == "1"
    local = threading.local()
    app = Flask(__name__)

    @app.post("/webhooks/mailgun")
    def receive() -> Response:
        document = json.loads(request.get_data())
        block = document["signature"]
        signed = (block["timestamp"] + block["token"]).encode()
        expected = hmac.new(MAILGUN_KEY.encode(), signed, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, block["signature"]):
            return Response("forbidden", 403)
        data = document["event-data"]
        at = datetime.fromtimestamp(data["timestamp"], UTC).replace(tzinfo=None)
        row = (
            "mailgun",
            data["id"],
            "sent",
            data["event"],
            normalise_and_hash(data["recipient"])[1],
        )
        counted = engagement and data["event"] in ENGAGING_EVENTS
        store(local, config, (*row, False, at, at), counted)
        body = json.dumps({"status": "ok", "received": 1, "stored": 1})
        return Response(body, 200, mimetype="application/json")

    return app


def _sqlite_store(local: Any, config: Config, row: tuple, counted: bool) -> None:
    if not hasattr(local, "connection"):
        local.connection = sqlite3.connect(make_url(config["DATABASE_URL"]).database)
        for pragma in sqlite_pragmas(config):
            local.connection.execute(pragma)
    stored = local.connection.execute(SQLITE_EVENT, row).fetchall()
    if counted and stored:
        local.connection.execute(SQLITE_COUNTED, (row[-1], row[4]))
    local.connection.commit()


def _postgresql_store(local: Any, config: Config, row: tuple, counted: bool) -> None:
    """One statement in autocommit mode, prepared: a single round trip, as the service makes."""
    if not hasattr(local, "connection"):
        url = make_url(config["DATABASE_URL"]).set(drivername="postgresql")
        local.connection = psycopg.connect(
            url.render_as_string(False), autocommit=True, cursor_factory=psycopg.RawCursor
        )
    statement = POSTGRESQL_COUNTED if counted else POSTGRESQL_EVENT
    local.connection.execute(statement, row, prepare=True).fetchall()


def run(url: str, seconds: float, engagement: bool) -> None:
    os.environ.update(settings())
    os.environ[ENGAGEMENT] = "1" if engagement else "0"
    emails = prepare(url)
    folder = Path(tempfile.mkdtemp())
    apps = {"floor": FLOOR_APP, "service": SERVICE_APP, "ceiling": CEILING_APP}
    posts = {name: iter(mailgun_posts(emails, 60_000, f"{name}-")) for name in apps}
    tallies = {name: Tally() for name in apps}
    with ExitStack() as servers:
        ports = {
            name: servers.enter_context(served(url, app, folder / f"{name}.log"))
            for name, app in apps.items()
        }
        for name, port in ports.items():
            drive(port, 64, WARM_UP_SECONDS, posts[name], Tally())
        for _ in range(ROUNDS):
            for name, port in ports.items():
                drive(port, 64, seconds / ROUNDS, posts[name], tallies[name])
    what = "event + address counter" if engagement else "event only"
    print(f"== {make_url(url).get_backend_name()}, single Mailgun events, ceiling: {what}")
    for name, tally in tallies.items():
        describe(name, tally)
        ratio = tally.rate / tallies["floor"].rate
        print(f"{'':28} {ratio:5.2f}× the floor")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engagement", action="store_true", help="also move the counter")
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    if args.database_url:
        run(args.database_url, args.seconds, args.engagement)
        return 0
    with tempfile.TemporaryDirectory() as folder:
        run(f"sqlite:///{folder}/bench.db", args.seconds, args.engagement)
    return 0


if __name__ == "__main__":
    sys.exit(main())
