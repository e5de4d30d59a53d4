"""SendGrid's Suppressions API (v3 API reference, "Suppressions - Global Suppressions",
"Suppressions - Suppressions", "Bounces", "Spam Reports", "Invalid Emails"): Bearer auth,
``{"recipient_emails": [...]}`` bodies, ``{"errors": [...]}`` refusals, limit/offset pages."""

import re
import time

from werkzeug import Request, Response

from tests.providers.fakes import FakeApi, reply

LISTS = ("unsubscribes", "bounces", "spam_reports", "invalid_emails")
PAGE_LIMIT = 500
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def errors(message: str, status: int, field: str | None = None) -> Response:
    return reply({"errors": [{"field": field, "message": message}]}, status)


class FakeSendGrid(FakeApi):
    def __init__(self, server, *, api_key: str, groups=()) -> None:
        super().__init__(server)
        self.api_key = api_key
        # list name -> address -> record; "unsubscribes" is the global suppression list.
        self.lists: dict[str, dict[str, dict]] = {name: {} for name in LISTS}
        self.groups: dict[str, set[str]] = {str(group): set() for group in groups}
        self.batches: list[int] = []

    @property
    def unsubscribed(self) -> set[str]:
        return set(self.lists["unsubscribes"])

    def authorised(self, request: Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def unauthorised(self) -> Response:
        return errors("authorization required", 401)

    def routes(self):
        lists = "(" + "|".join(LISTS) + ")"
        group = r"/v3/asm/groups/([^/]+)"
        return [
            ("POST", re.compile(r"/v3/asm/suppressions/global"), self.add_global),
            ("DELETE", re.compile(r"/v3/asm/suppressions/global/([^/]+)"), self.remove_global),
            ("GET", re.compile(r"/v3/suppression/" + lists), self.page),
            ("GET", re.compile(group), self.group),
            ("POST", re.compile(group + "/suppressions"), self.add_to_group),
            ("GET", re.compile(group + "/suppressions"), self.group_members),
            ("DELETE", re.compile(group + "/suppressions/([^/]+)"), self.remove_from_group),
        ]

    def add_global(self, request: Request) -> Response:
        addresses = self._recipients(request)
        if isinstance(addresses, Response):
            return addresses
        for address in addresses:
            self.lists["unsubscribes"].setdefault(address.lower(), record(address))
        return reply({"recipient_emails": addresses}, 201)

    def add_to_group(self, request: Request, group: str) -> Response:
        """ "If you attempt to add suppressions to a group that has been deleted or does not
        exist, the suppressions will be added to the global suppressions list." """
        if group not in self.groups:
            return self.add_global(request)
        addresses = self._recipients(request)
        if isinstance(addresses, Response):
            return addresses
        self.groups[group] |= {address.lower() for address in addresses}
        return reply({"recipient_emails": addresses}, 201)

    def _recipients(self, request: Request) -> list[str] | Response:
        body = request.get_json(silent=True)
        addresses = body.get("recipient_emails") if isinstance(body, dict) else None
        if not isinstance(addresses, list) or not addresses:
            return errors("recipient_emails is required", 400, "recipient_emails")
        for address in addresses:
            if not isinstance(address, str) or not ADDRESS.fullmatch(address):
                return errors(f"{address!r} is not a valid email", 400, "recipient_emails")
        self.batches.append(len(addresses))
        return addresses

    def remove_global(self, request: Request, address: str) -> Response:
        if self.lists["unsubscribes"].pop(address.lower(), None) is None:
            return errors("email address not found", 404)
        return Response(status=204)

    def group(self, request: Request, group: str) -> Response:
        if group not in self.groups:
            return errors("Not Found", 404)
        return reply({"id": int(group), "name": "Uutiskirje", "unsubscribes": 0})

    def group_members(self, request: Request, group: str) -> Response:
        return reply(sorted(self.groups.get(group, ())))

    def remove_from_group(self, request: Request, group: str, address: str) -> Response:
        if address.lower() not in self.groups.get(group, set()):
            return errors("email address not found", 404)
        self.groups[group].discard(address.lower())
        return Response(status=204)

    def page(self, request: Request, name: str) -> Response:
        limit = int(request.args.get("limit", PAGE_LIMIT))
        if not 1 <= limit <= PAGE_LIMIT:
            return errors(f"limit must be between 1 and {PAGE_LIMIT}", 400, "limit")
        offset = int(request.args.get("offset", 0))
        since = int(request.args.get("start_time", 0))
        records = [r for _, r in sorted(self.lists[name].items()) if r["created"] >= since]
        return reply(records[offset : offset + limit])


def record(address: str, created: int | None = None) -> dict:
    """A list entry as SendGrid lists it ("Retrieve all global suppressions")."""
    return {"email": address, "created": int(time.time()) if created is None else created}
