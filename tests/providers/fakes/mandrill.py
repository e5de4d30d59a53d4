"""Mandrill's Rejects API (API reference, "Rejects"): POSTs of JSON bodies carrying the key, one
denylist per (sub)account, rejects/list capped at 1000 entries, and every error answered HTTP 500
with ``{"status": "error", "code", "name", "message"}``.
"""

import re
from datetime import UTC, datetime

from werkzeug import Request, Response

from tests.providers.fakes import FakeApi, reply

LIST_CAP = 1000
MASTER = ""


def mandrill_error(name: str, message: str, code: int = -1) -> Response:
    return reply({"status": "error", "code": code, "name": name, "message": message}, 500)


class FakeMandrill(FakeApi):
    def __init__(self, server, *, api_key: str, subaccounts: tuple[str, ...] = ()) -> None:
        super().__init__(server)
        self.api_key = api_key
        self.subaccounts = set(subaccounts)
        # subaccount ("" for the account itself) -> address -> entry, as rejects/list shows it.
        self.denylists: dict[str, dict[str, dict]] = {MASTER: {}}
        # Addresses on the allowlist, which rejects/add leaves alone ("will have no effect"),
        # and addresses Mandrill's validation refuses (its rules are not documented).
        self.allowlist: set[str] = set()
        self.invalid: set[str] = set()

    def denylist(self, subaccount: str = MASTER) -> dict[str, dict]:
        return self.denylists.get(subaccount, {})

    def authorised(self, request: Request) -> bool:
        body = request.get_json(silent=True)
        return isinstance(body, dict) and body.get("key") == self.api_key

    def unauthorised(self) -> Response:
        return mandrill_error("Invalid_Key", "Invalid API key")

    def routes(self):
        return [
            ("POST", re.compile(r"/rejects/add(?:\.json)?"), self.add),
            ("POST", re.compile(r"/rejects/list(?:\.json)?"), self.list),
            ("POST", re.compile(r"/rejects/delete(?:\.json)?"), self.delete),
        ]

    def _scope(self, body: dict) -> dict[str, dict] | Response:
        subaccount = body.get("subaccount") or MASTER
        if subaccount and subaccount not in self.subaccounts:
            return mandrill_error(
                "Unknown_Subaccount", f"No subaccount exists with the id '{subaccount}'", 12
            )
        return self.denylists.setdefault(subaccount, {})

    def add(self, request: Request) -> Response:
        body = request.get_json()
        email = body.get("email")
        if not isinstance(email, str) or "@" not in email or email in self.invalid:
            return mandrill_error(
                "ValidationError", 'Validation error: {"email":"An email address is required"}'
            )
        held = self._scope(body)
        if isinstance(held, Response):
            return held
        if email.lower() in self.allowlist:
            return reply({"email": email, "added": False})
        now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        held[email.lower()] = {
            "email": email,
            "reason": "custom",
            "detail": body.get("comment") or "",
            "created_at": now,
            "last_event_at": now,
            "expires_at": None,
            "expired": False,
            "subaccount": body.get("subaccount"),
        }
        return reply({"email": email, "added": True})

    def list(self, request: Request) -> Response:
        body = request.get_json()
        held = self._scope(body)
        if isinstance(held, Response):
            return held
        entries = [held[address] for address in sorted(held)]
        if body.get("email"):
            entries = [
                entry for entry in entries if entry["email"].lower() == body["email"].lower()
            ]
        if not body.get("include_expired"):
            entries = [entry for entry in entries if not entry["expired"]]
        return reply(entries[:LIST_CAP])

    def delete(self, request: Request) -> Response:
        body = request.get_json()
        held = self._scope(body)
        if isinstance(held, Response):
            return held
        email = str(body.get("email", ""))
        if held.pop(email.lower(), None) is None:
            return mandrill_error(
                "Invalid_Reject", f"The email address {email} is not in the rejection list", 11
            )
        return reply({"email": email, "deleted": True, "subaccount": body.get("subaccount")})
