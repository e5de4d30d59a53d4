"""Fixtures for tests that drive the real service: gunicorn on a loopback port, a migrated SQLite
file, links minted the way the sending side mints them, and Debian's chromium through Playwright.

The server runs exactly as ``make run`` starts it and never mints: links are minted in the test
process by an app in testing mode, which is what lets them carry an ``http://`` base URL.
Everything the tests read back from the database goes through a connection of its own, never
the server's session, so a row that is found was committed.
"""

import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    sync_playwright,
)
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.pool import NullPool

from suppress import create_app, database
from suppress.addresses import normalise_and_hash
from suppress.lists import create_list
from suppress.models import AuditEntry, Suppression, db
from suppress.tokens import unsubscribe_link

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRET_KEY = "live-test-secret"
START_TIMEOUT_S = 20
# Beyond gunicorn's own graceful timeout (30 s), after which it kills its workers itself.
STOP_TIMEOUT_S = 35

CHROMIUM = Path("/usr/bin/chromium")
# Debian's chromium, not a Playwright download. The network here is closed to everything but
# loopback, so chromium must not try its own services (updates, sync, QUIC probes) either.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _start_gunicorn(env: dict[str, str], listener: socket.socket, **popen: Any) -> subprocess.Popen:
    """gunicorn with the project's config, serving ``listener``, a socket bound by the caller and
    handed over by its descriptor.

    A port found free and released for gunicorn to bind a moment later can be taken by another
    process in between (a parallel test run, a fake provider), and the health check would then
    reach that process instead.
    """
    descriptor = listener.fileno()
    command = [
        str(BIN / "gunicorn"),
        "--config",
        "gunicorn.conf.py",
        "--bind",
        f"fd://{descriptor}",
        "wsgi:app",
    ]
    return subprocess.Popen(command, cwd=ROOT, env=env, pass_fds=[descriptor], **popen)


def stop_gunicorn(server: subprocess.Popen, log: Callable[[], str]) -> None:
    """Stop gunicorn as a supervisor would (SIGTERM), failing with its ``log`` if it has not
    stopped once its own graceful timeout (30 s) is over: killed then, so that no server
    outlives the test that started it."""
    server.terminate()
    try:
        server.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise AssertionError(f"gunicorn did not stop on SIGTERM; its log:\n{log()}") from None


@pytest.fixture(scope="session")
def start_gunicorn() -> Callable[..., subprocess.Popen]:
    """``_start_gunicorn``, for the tests that start servers of their own."""
    return _start_gunicorn


@pytest.fixture(scope="session")
def stopped_gunicorn() -> Callable[[subprocess.Popen, Callable[[], str]], None]:
    """``stop_gunicorn``, for the tests that start servers of their own."""
    return stop_gunicorn


def _wait_until_healthy(base_url: str, process: subprocess.Popen, log: Path) -> None:
    host_port = urlsplit(base_url).netloc
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        connection = http.client.HTTPConnection(host_port, timeout=1)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    raise AssertionError(f"gunicorn did not become healthy; its log:\n{log.read_text()}")


@dataclass(frozen=True)
class LiveService:
    """The running service, plus what the sending side and an auditor do beside it."""

    base_url: str
    minter: Flask
    engine: Engine

    @property
    def host_port(self) -> str:
        return urlsplit(self.base_url).netloc

    def add_list(self, slug: str, name: str) -> None:
        with self.minter.app_context():
            create_list(slug, name)
            db.session.commit()
            db.session.remove()

    def link(self, email: str, list_slug: str) -> str:
        """The unsubscribe page URL a message to ``email`` on ``list_slug`` would carry."""
        with self.minter.app_context():
            url = unsubscribe_link(email, list_slug).url
            db.session.commit()
            db.session.remove()
        return url

    def suppressions_of(self, email: str) -> set[tuple[str, str, str]]:
        """``(scope, reason, source)`` of every suppression row of ``email``, as committed."""
        _, digest = normalise_and_hash(email)
        query = select(Suppression.scope, Suppression.reason, Suppression.source).where(
            Suppression.email_hash == digest
        )
        with self.engine.connect() as connection:
            return {tuple(row) for row in connection.execute(query)}

    def stored_rows(self) -> tuple[int, int]:
        """How many suppression rows and audit entries exist: anything written moves one."""
        with self.engine.connect() as connection:
            return (
                connection.scalar(select(func.count()).select_from(Suppression)),
                connection.scalar(select(func.count()).select_from(AuditEntry)),
            )


@pytest.fixture(scope="module")
def live_settings() -> dict[str, str]:
    """``SUPPRESS_*`` settings (without the prefix) for the server beyond the ones it needs; a
    test module overrides this fixture to choose its own."""
    return {}


@pytest.fixture(scope="module")
def live_service(
    tmp_path_factory: pytest.TempPathFactory, live_settings: dict[str, str]
) -> Iterator[LiveService]:
    """gunicorn with the project's config on a free port, over a freshly migrated SQLite file."""
    folder = tmp_path_factory.mktemp("live-service")
    database_url = f"sqlite:///{folder / 'suppress.db'}"
    listener = socket.create_server(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    # Settings from the caller's shell would make the server differ from what the test names.
    env = {key: value for key, value in os.environ.items() if not key.startswith("SUPPRESS_")}
    env |= {
        "SUPPRESS_DATABASE_URL": database_url,
        "SUPPRESS_SECRET_KEY": SECRET_KEY,
        "SUPPRESS_BASE_URL": base_url,
        **{f"SUPPRESS_{key}": value for key, value in live_settings.items()},
    }
    subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )

    minter = create_app(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET_KEY,
            "BASE_URL": base_url,
            "TESTING": True,
        }
    )

    log = folder / "gunicorn.log"
    with listener, log.open("wb") as output:
        server = _start_gunicorn(env, listener, stdout=output, stderr=subprocess.STDOUT)
    # A fresh connection for every read: NullPool never hands back one used before.
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        _wait_until_healthy(base_url, server, log)
        yield LiveService(base_url=base_url, minter=minter, engine=engine)
    finally:
        stop_gunicorn(server, log.read_text)
        engine.dispose()
        database.dispose(minter)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's package (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# How chromium logs an error status it received, whoever asked for the resource.
STATUS_LOG = "Failed to load resource: the server responded with a status of"


def _is_expected_status_log(text: str, url: str, pages: set[str]) -> bool:
    """The status log of a page itself is not an error: the test that opened it checks the
    status it expects (a 404 for a changed link)."""
    return text.startswith(STATUS_LOG) and url in pages


@dataclass
class Browsing:
    """One browser context on the service, recording what its pages fetched and logged."""

    context: BrowserContext
    page: Page
    origin: str
    requests: list[str] = field(default_factory=list)
    documents: list[Response] = field(default_factory=list)
    console_errors: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.page.on("response", self._keep_document)
        self.page.on("console", self._keep_error)
        self.page.on("pageerror", lambda error: self.console_errors.append((str(error), "")))

    def _keep_document(self, response: Response) -> None:
        if response.request.resource_type == "document":
            self.documents.append(response)

    def _keep_error(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append((message.text, message.location.get("url", "")))

    def problems(self) -> list[str]:
        """Console errors, requests to other origins, and pages served without a CSP."""
        pages = {response.url for response in self.documents}
        errors = [
            f"{text} ({url})"
            for text, url in self.console_errors
            if not _is_expected_status_log(text, url, pages)
        ]
        foreign = [url for url in self.requests if not url.startswith(self.origin + "/")]
        without_csp = [
            response.url
            for response in self.documents
            if "content-security-policy" not in response.all_headers()
        ]
        return [
            *(f"console error: {error}" for error in errors),
            *(f"request to another origin: {url}" for url in foreign),
            *(f"page without a Content-Security-Policy: {url}" for url in without_csp),
        ]


@pytest.fixture
def browse(chromium: Browser, live_service: LiveService) -> Iterator[Callable[..., Browsing]]:
    """Open a browser context (``locale``, ``javascript``) on the service.

    Every page a test opens this way is also checked when the test ends: no console errors, no
    request to any origin but the service's own, and a Content-Security-Policy on every page.
    """
    opened: list[Browsing] = []

    def open_context(locale: str | None = None, javascript: bool = True) -> Browsing:
        context = chromium.new_context(locale=locale, java_script_enabled=javascript)
        browsing = Browsing(context=context, page=context.new_page(), origin=live_service.base_url)
        opened.append(browsing)
        return browsing

    yield open_context
    problems = [problem for browsing in opened for problem in browsing.problems()]
    for browsing in opened:
        browsing.context.close()
    assert not problems, "\n".join(problems)
