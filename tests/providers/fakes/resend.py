"""Resend's Suppressions API, in private beta (resend.com/docs api-reference/suppressions): one
list per team, Bearer auth (a wrong key answers 403 ``invalid_api_key``), batches of 1 to 100
addresses, ``{"statusCode", "message", "name"}`` refusals, pages by ``after`` and ``has_more``.
An account without the beta (``available=False``) finds no such routes."""

import re
import uuid

from werkzeug import Request, Response

from tests.providers.fakes import FakeApi, reply

LIMIT = 100
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def error(status: int, name: str, message: str) -> Response:
    return reply({"statusCode": status, "name": name, "message": message}, status)


class FakeResend(FakeApi):
    def __init__(self, server, *, api_key: str, available: bool = True) -> None:
        super().__init__(server)
        self.api_key = api_key
        self.available = available
        # address -> the entry as "List Suppressions" shows it, oldest first.
        self.suppressions: dict[str, dict] = {}
        self.batches: list[int] = []

    def authorised(self, request: Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def unauthorised(self) -> Response:
        return error(403, "invalid_api_key", "API key is invalid")

    def routes(self):
        if not self.available:
            return []
        return [
            ("POST", re.compile(r"/suppressions/batch/add"), self.add),
            ("POST", re.compile(r"/suppressions/batch/remove"), self.remove),
            ("GET", re.compile(r"/suppressions"), self.page),
        ]

    def suppress(
        self, address: str, origin: str, created: str = "2026-10-07T08:12:03.412Z"
    ) -> dict:
        """An entry Resend made itself (a bounce, a complaint) or one added by hand."""
        entry = {
            "object": "suppression",
            "id": str(uuid.uuid4()),
            "email": address.strip().lower(),
            "origin": origin,
            "source_id": None,
            "created_at": created,
        }
        return self.suppressions.setdefault(entry["email"], entry)

    def add(self, request: Request) -> Response:
        """Addresses are lowercased and deduplicated; one suppressed already comes back with
        its existing suppression."""
        emails = self._emails(request)
        if isinstance(emails, Response):
            return emails
        entries = {self.suppress(email, "manual")["id"] for email in emails}
        return reply({"data": [{"object": "suppression", "id": id_} for id_ in entries]}, 201)

    def remove(self, request: Request) -> Response:
        """Only what was suppressed comes back; misses are omitted, not errors."""
        emails = self._emails(request)
        if isinstance(emails, Response):
            return emails
        removed = [self.suppressions.pop(e.strip().lower(), None) for e in emails]
        data = [{"object": "suppression", "id": e["id"], "deleted": True} for e in removed if e]
        return reply({"data": data})

    def _emails(self, request: Request) -> list[str] | Response:
        body = request.get_json(silent=True)
        emails = body.get("emails") if isinstance(body, dict) else None
        if not isinstance(emails, list) or not 1 <= len(emails) <= LIMIT:
            return error(422, "validation_error", f"emails must contain between 1 and {LIMIT}")
        for email in emails:
            if not isinstance(email, str) or not ADDRESS.fullmatch(email.strip()):
                return error(422, "validation_error", f"Invalid `email` field: {email!r}")
        self.batches.append(len(emails))
        return emails

    def page(self, request: Request) -> Response:
        limit = int(request.args.get("limit", 20))
        if not 1 <= limit <= LIMIT:
            return error(422, "validation_error", f"limit must be between 1 and {LIMIT}")
        entries = list(self.suppressions.values())
        after = request.args.get("after")
        if after:
            start = next(n for n, entry in enumerate(entries) if entry["id"] == after) + 1
            entries = entries[start:]
        return reply({"object": "list", "has_more": len(entries) > limit, "data": entries[:limit]})
