"""Providers' suppression APIs played on 127.0.0.1 by pytest-httpserver, for the sync tests.

A fake keeps the provider's suppression lists in memory and answers each call the way the
provider's API reference documents it: it checks the credentials, the path, the batch limit and
the body, and refuses what the real API would refuse, with the real status. Tests read the fake's
lists to see what a destination holds, and queue faults (``fail_next``: a 429 with Retry-After,
a 5xx, a slow answer) to see the sync job survive them.
"""

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_httpserver import HTTPServer
from pytest_httpserver.httpserver import URIPattern
from werkzeug import Request, Response


@dataclass
class Fault:
    status: int
    headers: dict[str, str]
    body: Any
    delay: float


class FakeApi:
    """Base of the fakes: a subclass sets ``routes`` and checks ``authorised``."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.calls: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.delay = 0.0
        self.lock = threading.Lock()
        server.expect_request(_ANY).respond_with_handler(self.handle)

    @property
    def url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        delay: float = 0.0,
    ) -> None:
        """The next ``times`` calls answer ``status`` (after ``delay`` seconds) and change
        nothing."""
        self.faults += [Fault(status, headers or {}, body, delay)] * times

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.calls.append((request.method, request.path))
            fault = self.faults.pop(0) if self.faults else None
        time.sleep(fault.delay if fault else self.delay)
        if fault:
            return reply(fault.body or {"message": "fault injected"}, fault.status, fault.headers)
        if not self.authorised(request):
            return self.unauthorised()
        for method, pattern, answer in self.routes():
            match = pattern.fullmatch(request.path)
            if match and request.method == method:
                with self.lock:
                    return answer(request, *match.groups())
        return reply({"message": "not found"}, 404)

    def authorised(self, request: Request) -> bool:
        raise NotImplementedError

    def unauthorised(self) -> Response:
        return reply({"message": "Invalid credentials"}, 401)

    def routes(self) -> list[tuple[str, Any, Callable[..., Response]]]:
        raise NotImplementedError

    def pushes(self) -> int:
        """Calls that wrote, for tests that count requests against batch limits."""
        return sum(method in ("POST", "PUT", "DELETE") for method, _ in self.calls)


class Everything(URIPattern):
    """Every URI, so that one handler sees every call and answers 404 for unknown paths as the
    real API does (instead of pytest-httpserver's 500 for an unexpected request)."""

    def match(self, uri: str) -> bool:
        return True


_ANY = Everything()


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, headers=headers or {}, content_type="application/json"
    )
