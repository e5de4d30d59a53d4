"""Benchmark a burst of RFC 8058 one-click POSTs against a floor measured in the same run.

After a large campaign, mailbox providers that show an unsubscribe button (Gmail, Yahoo) send
their ``List-Unsubscribe=One-Click`` POSTs in bursts. This starts the real service under
gunicorn with the project's ``gunicorn.conf.py`` and drives it with N concurrent clients for a
fixed time, every request for a distinct token (a distinct address), sent as the providers send
it: form-encoded, no cookie. The floor is a bare Flask app under the same gunicorn settings that
parses the same form and commits one INSERT per POST on the same database. Both are served side
by side and driven in alternating rounds, so both see the same machine.

Run from the repository root:
``.venv/bin/python -m bench.bench_one_click [--clients 64] [--seconds 20] [--database-url URL]``
(default: a temporary SQLite file; a PostgreSQL database must be fresh). The worker model is
whatever ``gunicorn.conf.py`` and gunicorn make of the environment (``SUPPRESS_WORKERS``,
``GUNICORN_CMD_ARGS``). Targets: requests/s ≥ 0.70× the floor, p99 ≤ 250 ms, no errors, and
one suppression row for every token answered 200.
"""

import argparse
import asyncio
import itertools
import math
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from flask import Config, Flask, Response, request
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.engine import URL, make_url

from bench.bench_suppressions import distinct_addresses, distinct_normalised
from bench.bench_suppressions import flask as flask_command
from suppress import create_app
from suppress.addresses import domain_of
from suppress.config import load_into
from suppress.database import sqlite_pragmas
from suppress.lists import create_list, kind_of
from suppress.models import Address, Suppression, db
from suppress.tokens import _serializer, mint

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
HOST = "127.0.0.1"
SECRET_KEY = "bench"
LIST_SLUG = "uutiskirje"
FORM = b"List-Unsubscribe=One-Click"
# What Gmail sends (RFC 8058 §3.2): a form-encoded body and nothing that identifies a browser.
REQUEST_HEAD = (
    "POST /u/{token} HTTP/1.1\r\n"
    "Host: {host}\r\n"
    "Content-Type: application/x-www-form-urlencoded\r\n"
    f"Content-Length: {len(FORM)}\r\n"
    "\r\n"
)
# Not measured: lets every worker boot and warm its caches and connections first.
WARM_UP_SECONDS = 2.0
# The floor and the service take turns, so that load from neighbours on a shared machine falls
# on both alike instead of on whichever ran second.
ROUNDS = 4
# Tokens minted per second of run, far above what this service answers on a small machine; a
# run that still uses them all up fails rather than repeating a token.
TOKENS_PER_SECOND = 3000
REQUEST_TIMEOUT = 30.0
START_TIMEOUT = 30.0
# A load generator busier than this is itself the bottleneck, and the figures would be its own.
CLIENT_BUSY_LIMIT = 0.8
TARGET_RATIO = 0.70
TARGET_P99_MS = 250.0

FLOOR_APP = "bench.bench_one_click:floor_app()"
SERVICE_APP = "wsgi:app"
floor_clicks = Table(
    "bench_floor_clicks",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("token", String(200), nullable=False),
)


def floor_app() -> Flask:
    """The floor, built by gunicorn in each worker: read the form, commit one INSERT, answer.

    It reads its settings as the service does, and opens its database connection the same way
    (the service's own SQLite pragmas), one per thread, so gthread workers work too.
    """
    settings = Config(str(ROOT))
    load_into(settings)
    url = make_url(settings["DATABASE_URL"])
    local = threading.local()
    app = Flask(__name__)

    @app.post("/u/<token>")
    def one_click(token: str) -> Response:
        if request.form.get("List-Unsubscribe") != "One-Click":
            return Response("Bad request.\n", status=400, mimetype="text/plain")
        if not hasattr(local, "connection"):
            local.connection, local.insert = floor_connection(url, settings)
        local.connection.execute(local.insert, (token,))
        local.connection.commit()
        return Response("Unsubscribed.\n", status=200, mimetype="text/plain")

    return app


def floor_connection(url: URL, settings: Config) -> tuple[Any, str]:
    """A bare DBAPI connection and the floor's INSERT in that driver's parameter style."""
    insert = f"INSERT INTO {floor_clicks.name} (token) VALUES ({{}})"
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database)
        for pragma in sqlite_pragmas(settings):
            connection.execute(pragma)
        return connection, insert.format("?")
    connection = psycopg.connect(url.set(drivername="postgresql").render_as_string(False))
    return connection, insert.format("%s")


def prepare(url: str, count: int) -> list[str]:
    """Migrate, create a list, put ``count`` distinct addresses on it; a token for each.

    Minting through the ORM one address at a time would take longer than the run, so the rows
    go in with one DBAPI ``executemany`` and the tokens come from the service's own serializer
    with the payload ``mint`` signs. The first token is checked against ``mint`` itself, so the
    service verifies and resolves every token exactly as it would a real one.
    """
    flask_command(url, "db", "upgrade")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET_KEY})
    with app.app_context():
        list_id = create_list(LIST_SLUG, "Uutiskirje").id
        hashed = distinct_normalised(distinct_addresses(count + count // 50, seed=8058))
        emails = [*itertools.islice(hashed.items(), count)]
        insert_addresses(emails)
        floor_clicks.create(db.session.connection())
        db.session.commit()
        ids = db.session.scalars(select(Address.id).order_by(Address.id)).all()
        serializer = _serializer()
        tokens = [serializer.dumps([address_id, list_id]) for address_id in ids]
        if mint(emails[0][0], LIST_SLUG) != tokens[0]:
            raise RuntimeError("the bench's tokens differ from the ones mint() makes")
    return tokens


def insert_addresses(emails: list[tuple[str, str]]) -> None:
    """Address rows as ``ensure_address`` writes them (hash, domain, kind), in one executemany."""
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (digest, email, domain_of(email), kind_of(email), False, 0, 0, 0, now)
        for email, digest in emails
    ]
    columns = "email_hash, email, domain, kind, restricted, sent_count, open_count, click_count"
    marker = "?" if db.engine.dialect.name == "sqlite" else "%s"
    sql = f"INSERT INTO addresses ({columns}, created_at) VALUES ({', '.join([marker] * 9)})"
    cursor = db.session.connection().connection.cursor()
    cursor.executemany(sql, rows)
    cursor.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@contextmanager
def served(url: str, app_uri: str, log: Path) -> Iterator[int]:
    """``app_uri`` under gunicorn with the project's config on a free loopback port.

    The access log goes to /dev/null, so that it costs the server what it costs in production
    without filling the terminal; gunicorn's own log goes to ``log``.
    """
    port = free_port()
    env = {
        **os.environ,
        "SUPPRESS_BIND": f"{HOST}:{port}",
        "SUPPRESS_DATABASE_URL": url,
        "SUPPRESS_SECRET_KEY": SECRET_KEY,
    }
    command = [str(GUNICORN), "--config", "gunicorn.conf.py", app_uri]
    with log.open("w") as errors:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errors
        )
    try:
        wait_for(port, server, log)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=60)


def wait_for(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and server.poll() is None:
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not start:\n{log.read_text()}")


def worker_model(log: Path) -> str:
    """The worker class and count gunicorn reports having started, e.g. ``sync × 2``."""
    text = log.read_text()
    used = re.search(r"Using worker: (\S+)", text)
    booted = len(re.findall(r"Booting worker with pid", text))
    extra = os.environ.get("GUNICORN_CMD_ARGS")
    return f"{used[1] if used else '?'} × {booted}" + (f" ({extra})" if extra else "")


@dataclass
class Tally:
    """What the clients saw over the phases added to it; ``answered``: every token answered 200."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    answered: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    ran_dry: bool = False

    @property
    def failures(self) -> int:
        return sum(self.errors.values()) + self.statuses.total() - self.statuses[200]

    @property
    def rate(self) -> float:
        return self.statuses[200] / self.seconds

    def percentile_ms(self, percent: int) -> float:
        if len(self.latencies) < 2:
            return math.inf
        return statistics.quantiles(self.latencies, n=100)[percent - 1] * 1000


def drive(port: int, clients: int, seconds: float, tokens: Iterator[str], tally: Tally) -> None:
    """``clients`` concurrent connections for ``seconds``, one token per POST, in one thread.

    An asyncio loop on raw streams costs the client far less CPU per request than threads with
    an HTTP library; the CPU time it did use is recorded, to show it was not the limit.
    """
    started, cpu = time.perf_counter(), time.process_time()
    asyncio.run(_drive(port, clients, started + seconds, tokens, tally))
    tally.seconds += time.perf_counter() - started
    tally.cpu_seconds += time.process_time() - cpu


async def _drive(
    port: int, clients: int, deadline: float, tokens: Iterator[str], tally: Tally
) -> None:
    await asyncio.gather(*(client(port, deadline, tokens, tally) for _ in range(clients)))


async def client(port: int, deadline: float, tokens: Iterator[str], tally: Tally) -> None:
    """One provider connection: POST, read the answer, reconnect only when the server closes."""
    host = f"{HOST}:{port}"
    streams = None
    try:
        while time.perf_counter() < deadline:
            token = next(tokens, None)
            if token is None:
                tally.ran_dry = True
                return
            message = REQUEST_HEAD.format(token=token, host=host).encode() + FORM
            started = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    streams = streams or await asyncio.open_connection(HOST, port)
                    streams[1].write(message)
                    status, keep_alive = await read_response(streams[0])
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
                tally.errors[type(error).__name__] += 1
                keep_alive = False
            else:
                tally.latencies.append(time.perf_counter() - started)
                tally.statuses[status] += 1
                if status == 200:
                    tally.answered.append(token)
            if streams and not keep_alive:
                streams[1].close()
                streams = None
    finally:
        if streams:
            streams[1].close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status, and whether the connection stays open; the body is read and dropped."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines if line)
    }
    if "content-length" not in headers:
        raise ConnectionError("response without Content-Length")
    await reader.readexactly(int(headers["content-length"]))
    keep_alive = status_line.startswith("HTTP/1.1") and headers.get("connection") != "close"
    return int(status_line.split()[1]), keep_alive


def measure(
    url: str, clients: int, seconds: float, tokens: list[str], folder: Path
) -> tuple[Tally, Tally, Tally]:
    """The floor, the service's warm-up and the service, both apps served side by side."""
    floor_tokens = (f"{n:0{len(tokens[0])}d}" for n in itertools.count())
    service_tokens = iter(tokens)
    floor, warm_up, ours = Tally(), Tally(), Tally()
    with (
        served(url, FLOOR_APP, folder / "floor.log") as floor_port,
        served(url, SERVICE_APP, folder / "service.log") as service_port,
    ):
        drive(floor_port, clients, WARM_UP_SECONDS, floor_tokens, Tally())
        drive(service_port, clients, WARM_UP_SECONDS, service_tokens, warm_up)
        for _ in range(ROUNDS):
            drive(floor_port, clients, seconds / ROUNDS, floor_tokens, floor)
            drive(service_port, clients, seconds / ROUNDS, service_tokens, ours)
    return floor, warm_up, ours


def describe(name: str, tally: Tally) -> None:
    statuses = ", ".join(
        f"{status} × {count:,}" for status, count in sorted(tally.statuses.items())
    )
    errors = ", ".join(f"{error} × {count:,}" for error, count in tally.errors.items())
    print(
        f"{name:<28} {tally.rate:8,.0f} req/s  p50 {tally.percentile_ms(50):6.1f} ms"
        f"  p99 {tally.percentile_ms(99):6.1f} ms  {statuses}{'; ' + errors if errors else ''}"
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def run(url: str, clients: int, seconds: float) -> bool:
    backend = make_url(url).get_backend_name()
    tokens = prepare(url, int(TOKENS_PER_SECOND * (seconds + WARM_UP_SECONDS)))
    with tempfile.TemporaryDirectory() as folder:
        floor, warm_up, ours = measure(url, clients, seconds, tokens, Path(folder))
        model = worker_model(Path(folder) / "service.log")
    print(
        f"== {backend}, {clients} clients, {seconds:g} s each in {ROUNDS} rounds, gunicorn {model}"
    )
    describe("floor: bare Flask, 1 INSERT", floor)
    describe("one-click POST /u/<token>", ours)

    busy = max(tally.cpu_seconds / tally.seconds for tally in (floor, ours))
    client_ok = busy < CLIENT_BUSY_LIMIT
    print(
        f"{'load generator':<28} {busy:8.0%} of one core at most "
        f"(limit {CLIENT_BUSY_LIMIT:.0%}) {verdict(client_ok)}"
    )
    ratio = ours.rate / floor.rate
    ratio_ok = ratio >= TARGET_RATIO and not ours.ran_dry
    print(
        f"{'requests/s':<28} {ours.rate:8,.0f}  floor {floor.rate:8,.0f}  {ratio:5.2f}× "
        f"(target ≥ {TARGET_RATIO:.2f}×){' ran out of tokens' if ours.ran_dry else ''} "
        f"{verdict(ratio_ok)}"
    )
    p99 = ours.percentile_ms(99)
    p99_ok = p99 <= TARGET_P99_MS
    print(f"{'p99 latency':<28} {p99:8.1f} ms (target ≤ {TARGET_P99_MS:.0f} ms) {verdict(p99_ok)}")
    errors = warm_up.failures + ours.failures
    print(f"{'errors (warm-up included)':<28} {errors:8,} (target 0) {verdict(errors == 0)}")
    return lost_check(url, {*warm_up.answered, *ours.answered}) and all(
        (client_ok, ratio_ok, p99_ok, errors == 0)
    )


def lost_check(url: str, answered: set[str]) -> bool:
    """Every token answered 200 must have left exactly one suppression row behind."""
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": SECRET_KEY})
    with app.app_context():
        rows = db.session.scalar(select(func.count()).select_from(Suppression))
    ok = rows == len(answered)
    print(
        f"{'zero lost unsubscribes':<28} {rows:8,} rows in suppressions, "
        f"{len(answered):,} tokens answered 200 {verdict(ok)}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    if args.database_url:
        return 0 if run(args.database_url, args.clients, args.seconds) else 1
    with tempfile.TemporaryDirectory() as folder:
        return 0 if run(f"sqlite:///{folder}/bench.db", args.clients, args.seconds) else 1


if __name__ == "__main__":
    sys.exit(main())
