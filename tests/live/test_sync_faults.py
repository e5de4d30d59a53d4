"""The sync job as an operator runs it, ``flask --app wsgi sync`` in a process of its own, through
the faults a long-lived worker meets: the provider going down part-way through a run, the worker
killed mid-run, and two workers started at once.

Mailgun's API is played on 127.0.0.1 by the fake the sync tests use, on a threaded server so that
two workers' calls can be in flight together. The fake can hold writes in flight until the test
lets them through, which makes "mid-run" a precise moment rather than a guess at timing. The
workers share the test database (SQLite file or PostgreSQL) with this process, which reads back
only what they committed.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url
from werkzeug import Request, Response

from suppress import suppressions, sync
from suppress.models import Destination, SyncState, db, utcnow
from suppress.providers.mailgun import Mailgun
from tests.providers.fakes import reply
from tests.providers.fakes.mailgun import FakeMailgun

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
FLASK = Path(sys.executable).parent / "flask"
API_KEY = "key-live-0123456789"
DOMAIN = "mg.yritys.fi"
BATCH = Mailgun.PUSH_BATCH
BATCHES = 5
ADDRESSES = [f"asiakas{number}@yritys.fi" for number in range(BATCHES * BATCH)]
# The calls a worker keeps in flight at once.
CALLS = min(Mailgun.CONCURRENCY, BATCHES)
# The calls it makes once the first ones are answered: the batches left, as many at once.
NEXT_CALLS = min(CALLS, BATCHES - CALLS)
# Long enough for a worker to start on a busy machine; a test that waits this long has failed.
PATIENCE_S = 60


class UnsteadyMailgun(FakeMailgun):
    """FakeMailgun whose writes, counted as they arrive, can fail from a given one on until it
    recovers, or wait in flight from a given one on until the test releases them all or lets
    some of them through."""

    def __init__(self, server: HTTPServer, **keys: str) -> None:
        super().__init__(server, **keys)
        self.arrived = 0
        self.down_from: int | None = None
        self.held_from: int | None = None
        self.released = threading.Event()
        self.released.set()
        self.passes = threading.Semaphore(0)

    def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return super().handle(request)
        with self.lock:
            self.arrived += 1
            number = self.arrived
        if self.held_from is not None and number >= self.held_from:
            self.wait_until_let_through()
        if self.down_from is not None and number >= self.down_from:
            return reply({"message": "Internal Server Error"}, 500)
        return super().handle(request)

    def hold_from(self, number: int) -> None:
        self.held_from = number
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def let_through(self, calls: int) -> None:
        """Answer ``calls`` of the writes held in flight (or held next), whichever wait first."""
        for _ in range(calls):
            self.passes.release()

    def wait_until_let_through(self) -> None:
        deadline = time.monotonic() + PATIENCE_S
        while not self.released.is_set() and time.monotonic() < deadline:
            if self.passes.acquire(timeout=0.01):
                return

    def held(self) -> set[str]:
        return set(self.tables["unsubscribes"])


@pytest.fixture(scope="module")
def threaded_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailgun(threaded_server: HTTPServer) -> Iterator[UnsteadyMailgun]:
    threaded_server.clear()
    fake = UnsteadyMailgun(threaded_server, api_key=API_KEY, domain=DOMAIN)
    yield fake
    fake.release()


@pytest.fixture
def destination(app, mailgun, monkeypatch) -> Destination:
    """A Mailgun destination, and five full batches of suppressions it has yet to learn."""
    monkeypatch.setitem(app.config, "MAILGUN_API_KEY", API_KEY)
    monkeypatch.setitem(app.config, "MAILGUN_API_URL", mailgun.url)
    added = sync.add_destination("mailgun-fi", "mailgun", target=DOMAIN)
    db.session.commit()
    suppressions.import_suppressions(
        ((number, {"email": email}) for number, email in enumerate(ADDRESSES, start=1)),
        source="test",
        actor="test",
        batch_size=len(ADDRESSES),
        on_reject=lambda number, why: pytest.fail(f"line {number}: {why}"),
    )
    return added


@pytest.fixture
def start_worker(
    database_url: str, mailgun: UnsteadyMailgun
) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    """Start ``flask --app wsgi sync`` as cron or systemd would, reaching the fake."""
    started: list[subprocess.Popen[str]] = []
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUPPRESS_")}
    env |= {
        "SUPPRESS_DATABASE_URL": database_url,
        "SUPPRESS_SECRET_KEY": "live-test-secret",
        "SUPPRESS_MAILGUN_API_KEY": API_KEY,
        "SUPPRESS_MAILGUN_API_URL": mailgun.url,
        "SUPPRESS_SYNC_RETRIES": "1",
    }

    def start() -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [str(FLASK), "--app", "wsgi", "sync"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """The exit status, standard output and standard error of a worker that ran to its end."""
    stdout, stderr = process.communicate(timeout=PATIENCE_S)
    return process.returncode, stdout, stderr


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting until {what}")
        time.sleep(0.01)


def pushed(stdout: str) -> int:
    """How many suppressions a worker's report says it pushed."""
    return int(re.search(r"pushed (\d+)", stdout)[1])


def outbox() -> dict[str, int]:
    """The destination's outbox rows by status, as the workers committed them."""
    db.session.commit()
    query = select(SyncState.status, func.count()).group_by(SyncState.status)
    return dict(db.session.execute(query).all())


def waiting_for_lock(pid: int) -> bool:
    """Whether process ``pid`` is blocked on a file lock (Linux marks its waiters ``->``)."""
    blocked = re.compile(rf"^\d+: -> FLOCK\s+ADVISORY\s+WRITE {pid} ", re.MULTILINE)
    return bool(blocked.search(Path("/proc/locks").read_text()))


def on_postgresql(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


def test_a_provider_down_from_the_second_batch_gets_every_suppression_once_it_recovers(
    destination, mailgun, start_worker
):
    mailgun.down_from = 2
    status, _, errors = finished(start_worker())
    assert status == 1, "cron mails the operator"
    assert "mailgun-fi: stopped: POST" in errors
    assert "HTTP 500" in errors
    assert len(mailgun.held()) == BATCH
    assert outbox() == {"accepted": BATCH, "pending": (BATCHES - 1) * BATCH}

    mailgun.down_from = None
    status, _, _ = finished(start_worker())
    assert status == 0
    waiting = set(db.session.scalars(select(SyncState.email).where(SyncState.status == "pending")))
    assert waiting, "the failed batches wait for their retry time"
    assert not waiting & mailgun.held()
    assert len(waiting) + len(mailgun.held()) == len(ADDRESSES)

    db.session.execute(update(SyncState).values(next_attempt_at=utcnow()))
    db.session.commit()
    status, _, _ = finished(start_worker())
    assert status == 0
    assert mailgun.held() == set(ADDRESSES)
    assert Counter(mailgun.added.values()) == {1: len(ADDRESSES)}
    assert outbox() == {"accepted": len(ADDRESSES)}


def test_a_worker_killed_mid_run_loses_nothing_and_the_next_one_finishes(
    destination, mailgun, start_worker
):
    # The first calls are answered; the next ones are held in flight. The first calls are let
    # through only once all are in flight: one answered at once could otherwise free its place
    # for a next call before another first call had arrived.
    mailgun.hold_from(1)
    killed = start_worker()
    wait_until(lambda: mailgun.arrived == CALLS, "the first calls are in flight")
    mailgun.let_through(CALLS)
    wait_until(
        lambda: mailgun.arrived == CALLS + NEXT_CALLS and outbox().get("accepted") == CALLS * BATCH,
        "the first calls are recorded and the next ones in flight",
    )
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    mailgun.release()
    in_flight = NEXT_CALLS * BATCH
    wait_until(
        lambda: len(mailgun.held()) == CALLS * BATCH + in_flight,
        "the fake has stored the calls in flight",
    )

    status, _, _ = finished(start_worker())
    assert status == 0
    assert mailgun.held() == set(ADDRESSES)
    assert outbox() == {"accepted": len(ADDRESSES)}
    assert Counter(mailgun.added.values()) == {1: len(ADDRESSES) - in_flight, 2: in_flight}, (
        "only the calls in flight when the worker died are pushed again, and they are accepted"
    )


def test_two_workers_at_once_on_postgresql_never_push_a_batch_twice(
    database_url, destination, mailgun, start_worker
):
    if not on_postgresql(database_url):
        pytest.skip("SQLite runs one worker at a time (the next test)")
    mailgun.hold_from(1)
    first = start_worker()
    wait_until(lambda: mailgun.arrived == CALLS, "the first worker pushes its first batches")
    second = start_worker()
    wait_until(lambda: mailgun.arrived > CALLS, "the second worker pushes a batch of its own")
    mailgun.release()

    reports = [finished(first), finished(second)]
    assert [status for status, _, _ in reports] == [0, 0]
    shares = [pushed(stdout) for _, stdout, _ in reports]
    assert sum(shares) == len(ADDRESSES)
    assert min(shares) >= BATCH, "both workers pushed"
    assert Counter(mailgun.added.values()) == {1: len(ADDRESSES)}
    assert outbox() == {"accepted": len(ADDRESSES)}


def test_on_sqlite_a_second_worker_waits_until_the_first_is_done(
    database_url, destination, mailgun, start_worker
):
    if on_postgresql(database_url):
        pytest.skip("PostgreSQL runs workers side by side (the previous test)")
    mailgun.hold_from(1)
    first = start_worker()
    wait_until(lambda: mailgun.arrived == CALLS, "the first worker pushes its first batches")
    second = start_worker()
    wait_until(lambda: waiting_for_lock(second.pid), "the second worker waits for the lock")
    assert first.poll() is None
    assert mailgun.arrived == CALLS
    mailgun.release()

    status, stdout, _ = finished(first)
    assert (status, pushed(stdout)) == (0, len(ADDRESSES))
    status, stdout, _ = finished(second)
    assert (status, pushed(stdout)) == (0, 0)
    assert Counter(mailgun.added.values()) == {1: len(ADDRESSES)}
    assert outbox() == {"accepted": len(ADDRESSES)}
