"""What the HTTP benchmarks share: gunicorn on loopback, an asyncio load generator, the floor.

The service runs under gunicorn with the project's own ``gunicorn.conf.py``; the floor is a bare
Flask app under the same settings that reads the request and commits one INSERT per POST on the
same database, opened with the service's own pragmas. Each benchmark builds its requests before
the clock starts, so the load generator only writes bytes and reads answers, and checks that it
was never busier than CLIENT_BUSY_LIMIT of a core.
"""

import asyncio
import math
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from flask import Config, Flask, Response, request
from sqlalchemy import Column, Integer, MetaData, String, Table
from sqlalchemy.engine import URL, make_url

from suppress.config import load_into
from suppress.database import sqlite_pragmas

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
HOST = "127.0.0.1"
SECRET_KEY = "bench"
FLOOR_APP = "bench.load:floor_app()"
SERVICE_APP = "wsgi:app"
# Not measured: lets every worker boot and warm its caches and connections first.
WARM_UP_SECONDS = 2.0
REQUEST_TIMEOUT = 30.0
START_TIMEOUT = 30.0
# A load generator busier than this is itself the bottleneck, and the figures would be its own.
CLIENT_BUSY_LIMIT = 0.8

floor_requests = Table(
    "bench_floor_requests",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("target", String(200), nullable=False),
)


def floor_app() -> Flask:
    """The floor, built by gunicorn in each worker: read the body, commit one INSERT, answer.

    A form body is parsed, as the one-click service parses it; any other body is read whole.
    One connection per thread, so gthread workers work too.
    """
    settings = Config(str(ROOT))
    load_into(settings)
    url = make_url(settings["DATABASE_URL"])
    local = threading.local()
    app = Flask(__name__)

    @app.post("/<path:target>")
    def receive(target: str) -> Response:
        if request.mimetype == "application/x-www-form-urlencoded":
            request.form.get("List-Unsubscribe")
        else:
            request.get_data()
        if not hasattr(local, "connection"):
            local.connection, local.insert = floor_connection(url, settings)
        local.connection.execute(local.insert, (target[-200:],))
        local.connection.commit()
        return Response("Stored.\n", status=200, mimetype="text/plain")

    return app


def floor_connection(url: URL, settings: Config) -> tuple[Any, str]:
    """A bare DBAPI connection and the floor's INSERT in that driver's parameter style."""
    insert = f"INSERT INTO {floor_requests.name} (target) VALUES ({{}})"
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database)
        for pragma in sqlite_pragmas(settings):
            connection.execute(pragma)
        return connection, insert.format("?")
    connection = psycopg.connect(url.set(drivername="postgresql").render_as_string(False))
    return connection, insert.format("%s")


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
    """What the clients saw over the phases added to it; ``answered``: the keys answered 200."""

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


Requests = Iterator[tuple[str, bytes]]
"""Each request as a key (what the check counts) and the bytes sent."""


def drive(port: int, clients: int, seconds: float, requests: Requests, tally: Tally) -> None:
    """``clients`` concurrent connections for ``seconds``, in one thread.

    An asyncio loop on raw streams costs the client far less CPU per request than threads with
    an HTTP library; the CPU time it did use is recorded, to show it was not the limit.
    """
    started, cpu = time.perf_counter(), time.process_time()
    asyncio.run(_drive(port, clients, started + seconds, requests, tally))
    tally.seconds += time.perf_counter() - started
    tally.cpu_seconds += time.process_time() - cpu


async def _drive(port: int, clients: int, deadline: float, requests: Requests, tally: Tally):
    await asyncio.gather(*(client(port, deadline, requests, tally) for _ in range(clients)))


async def client(port: int, deadline: float, requests: Requests, tally: Tally) -> None:
    """One sender's connection: POST, read the answer, reconnect only when the server closes."""
    streams = None
    try:
        while time.perf_counter() < deadline:
            key, message = next(requests, (None, b""))
            if key is None:
                tally.ran_dry = True
                return
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
                    tally.answered.append(key)
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


def post(path: str, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 POST, as an ESP or a mailbox provider sends it."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


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


def client_check(*tallies: Tally) -> bool:
    busy = max(tally.cpu_seconds / tally.seconds for tally in tallies)
    ok = busy < CLIENT_BUSY_LIMIT
    print(
        f"{'load generator':<28} {busy:8.0%} of one core at most "
        f"(limit {CLIENT_BUSY_LIMIT:.0%}) {verdict(ok)}"
    )
    return ok
