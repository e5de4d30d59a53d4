"""Benchmark the sync job against a Mailgun-shaped API that takes 20 ms to answer each call.

1. Throughput: ``flask --app wsgi sync`` (the whole command in its own process: start-up,
   planning, claiming, pushing, recording) of N new suppressions to one destination. Floor:
   the calls the provider needs at the least, N ÷ 1,000 records per call, each taking the round
   trip of one empty request to the same fake (its 20 ms included), measured in the same run.
2. Lag: under a running ``flask --app wsgi sync --every 5`` worker, the seconds from a new
   suppression's commit until the fake provider has it, measured several times at different
   moments of the worker's cycle.

The fake (a threaded HTTP server in this process) plays Mailgun's suppressions API as far as the
job uses it: ``POST /v3/<domain>/<table>`` with a JSON array of at most 1,000 records, HTTP Basic
``api:<key>``, 401/404/400 otherwise. It counts every address it is given, so the run also
checks that each suppression arrived exactly once. For the floor it also takes an empty array.

Run from the repository root:
``.venv/bin/python -m bench.bench_sync [--n 100000] [--database-url URL]``
(default: a temporary SQLite file; a PostgreSQL database must be fresh). Targets: the command
≤ 1.5× its floor; the lag ≤ 10 s. Latest figures: bench/README.md.
"""

import base64
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from sqlalchemy.engine import make_url

from bench.bench_suppressions import (
    FLASK,
    ROOT,
    distinct_addresses,
    distinct_normalised,
    main_of,
)
from bench.bench_suppressions import flask as flask_command
from suppress import create_app, suppressions
from suppress.models import db

HOST = "127.0.0.1"
API_KEY = "key-bench-0123456789"
DOMAIN = "mg.bench.fi"
DESTINATION = "bench"
ANSWER_DELAY_S = 0.020
RECORDS_PER_CALL = 1000
ROUND_TRIPS = 20
EVERY_S = 5
LAG_SAMPLES = 6
LAG_TIMEOUT_S = 60.0
TARGET_RATIO = 1.5
TARGET_LAG_S = 10.0
TABLE_PATH = re.compile(rf"/v3/{re.escape(DOMAIN)}/(unsubscribes|bounces|complaints)")


class FakeMailgun(ThreadingHTTPServer):
    """Mailgun's suppression tables as far as a push goes, answering each call after a delay."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((HOST, 0), MailgunHandler)
        self.added: Counter[str] = Counter()
        self.lock = threading.Lock()
        credentials = base64.b64encode(f"api:{API_KEY}".encode()).decode()
        self.authorization = f"Basic {credentials}"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet for a client that closed its kept-alive connection, as each pass's does."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class MailgunHandler(BaseHTTPRequestHandler):
    """One call: the body is read, the delay waited, then the call checked as Mailgun would."""

    protocol_version = "HTTP/1.1"
    # The head and the body go out as two writes; with Nagle's algorithm the second waits for
    # the client's delayed ACK (40 ms), which no real API's server makes its callers wait.
    disable_nagle_algorithm = True
    server: FakeMailgun

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(ANSWER_DELAY_S)
        if self.headers.get("Authorization") != self.server.authorization:
            self.answer(401, "Forbidden")
            return
        table = TABLE_PATH.fullmatch(self.path)
        if not table:
            self.answer(404, {"message": "not found"})
            return
        try:
            records = json.loads(body)
            addresses = [record["address"].lower() for record in records]
        except (ValueError, TypeError, KeyError, AttributeError):
            self.answer(400, {"message": "expected a JSON array of records with an address"})
            return
        if len(records) > RECORDS_PER_CALL:
            self.answer(400, {"message": f"at most {RECORDS_PER_CALL} records"})
            return
        with self.server.lock:
            self.server.added.update(addresses)
        message = f"{len(records)} addresses have been added to the {table[1]} table"
        self.answer(200, {"message": message})

    def answer(self, status: int, body: object) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Silent: a line per call would cost the fake more than the call."""


@contextmanager
def fake_mailgun() -> Iterator[FakeMailgun]:
    server = FakeMailgun()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def round_trip(fake: FakeMailgun) -> float:
    """Median seconds of one empty push on a kept-alive connection, as the job's session keeps."""
    with requests.Session() as session:
        session.auth = ("api", API_KEY)
        url = f"{fake.url}/v3/{DOMAIN}/unsubscribes"
        session.post(url, json=[]).raise_for_status()
        times = []
        for _ in range(ROUND_TRIPS):
            started = time.perf_counter()
            session.post(url, json=[]).raise_for_status()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def environment(url: str, fake: FakeMailgun) -> dict[str, str]:
    return {
        **os.environ,
        "SUPPRESS_DATABASE_URL": url,
        "SUPPRESS_SECRET_KEY": "bench",
        "SUPPRESS_MAILGUN_API_KEY": API_KEY,
        "SUPPRESS_MAILGUN_API_URL": fake.url,
    }


def prepare(url: str, n: int, fake: FakeMailgun) -> list[str]:
    """Migrate, add the destination, write N suppressions; the addresses written."""
    flask_command(url, "db", "upgrade")
    emails = list(distinct_normalised(distinct_addresses(n + n // 50 + 10, seed=11)))[:n]
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    with app.app_context():
        report = suppressions.import_suppressions(
            ((number, {"email": email}) for number, email in enumerate(emails, start=1)),
            source="bench",
            actor="bench",
            batch_size=20_000,
            on_reject=lambda number, why: print(f"line {number} rejected: {why}"),
        )
        assert report.written == n, "every bench address is new"
    command(
        url, fake, "destinations", "add", DESTINATION, "--provider", "mailgun", "--target", DOMAIN
    )
    return emails


def command(url: str, fake: FakeMailgun, *args: str) -> str:
    """Run ``flask --app wsgi ARGS`` in its own process, reaching the fake; its output."""
    done = subprocess.run(
        [str(FLASK), "--app", "wsgi", *args],
        cwd=ROOT,
        env=environment(url, fake),
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed with status {done.returncode}:\n{done.stderr}")
    return done.stdout.strip()


def timed_sync(url: str, fake: FakeMailgun) -> tuple[float, float, str]:
    """Seconds of the whole ``sync`` command, the CPU seconds it used, and its report line.

    The CPU time is what to compare between runs on a shared machine, where the wall time
    moves with whatever else is running (it leaves out the fake's and the database server's).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    summary = command(url, fake, "sync")
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds, cpu, summary


def lags(url: str, fake: FakeMailgun) -> list[float]:
    """Seconds from commit to the fake, for LAG_SAMPLES new suppressions under a worker."""
    every = [str(FLASK), "--app", "wsgi", "sync", "--every", str(EVERY_S)]
    worker = subprocess.Popen(
        every, cwd=ROOT, env=environment(url, fake), stdout=subprocess.PIPE, text=True
    )
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench"})
    samples = []
    try:
        worker.stdout.readline()  # its first pass is done: the worker is up
        with app.app_context():
            for number in range(LAG_SAMPLES):
                # A sample arrives just after a pass: waiting a growing share of the cycle
                # lands each next one at another moment of it.
                time.sleep(number * EVERY_S / LAG_SAMPLES)
                samples.append(one_lag(f"lag{number}@viive.fi", fake))
            db.session.remove()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return samples


def one_lag(email: str, fake: FakeMailgun) -> float:
    suppressions.suppress(email, reason="unsubscribed", source="bench", actor="bench")
    db.session.commit()
    started = time.perf_counter()
    while fake.added[email] == 0:
        if time.perf_counter() - started > LAG_TIMEOUT_S:
            raise RuntimeError(f"{email} did not reach the fake in {LAG_TIMEOUT_S:.0f} s")
        time.sleep(0.01)
    return time.perf_counter() - started


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def run(url: str, n: int) -> bool:
    backend = make_url(url).get_backend_name()
    print(f"== {backend}, {n:,} new suppressions, fake Mailgun answering after 20 ms")
    with fake_mailgun() as fake:
        emails = prepare(url, n, fake)
        trip = round_trip(fake)
        floor = math.ceil(n / RECORDS_PER_CALL) * trip
        seconds, cpu, summary = timed_sync(url, fake)
        idle, idle_cpu, _ = timed_sync(url, fake)
        ratio = seconds / floor
        print(f"round trip of one empty push   {trip * 1000:8.1f} ms (median of {ROUND_TRIPS})")
        print(f"sync: {summary}")
        print(
            f"{'sync (CLI, whole command)':<30} {seconds:8.2f} s  floor {floor:6.2f} s  "
            f"{ratio:5.2f}× (target ≤ {TARGET_RATIO}×) {verdict(ratio <= TARGET_RATIO)}"
        )
        print(f"{'  its CPU time':<30} {cpu:8.2f} s  (load {os.getloadavg()[0]:.1f})")
        print(
            f"{'  a pass with nothing to push':<30} {idle:8.2f} s  (start-up and planning; "
            f"CPU {idle_cpu:.2f} s)"
        )
        once = set(fake.added) == set(emails) and set(fake.added.values()) == {1}
        print(f"{'each suppression pushed once':<30} {len(fake.added):8,} = {n:,} {verdict(once)}")
        samples = lags(url, fake)
    worst = max(samples)
    print(
        f"{f'lag under sync --every {EVERY_S}':<30} {worst:8.2f} s worst; "
        f"median {statistics.median(samples):.2f} s, best {min(samples):.2f} s of {len(samples)} "
        f"(target ≤ {TARGET_LAG_S:.0f} s) {verdict(worst <= TARGET_LAG_S)}"
    )
    return ratio <= TARGET_RATIO and once and worst <= TARGET_LAG_S


def main() -> int:
    return main_of(run, __doc__, 100_000)


if __name__ == "__main__":
    sys.exit(main())
