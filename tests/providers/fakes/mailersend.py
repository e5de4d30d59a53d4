"""MailerSend's suppression lists (API reference "Recipients": get, add and delete recipients of
a suppression list): a Bearer token, one sending domain, JSON bodies checked the way its Laravel
validation answers them (422 with ``message`` and ``errors`` by field, nothing stored), and
``page``/``limit`` paging with ``links`` and ``meta``.

An address is checked against a plain ASCII pattern, so an internationalised address that our
normaliser accepts stands in for whatever address the real API would refuse.
"""

import re
from datetime import UTC, datetime
from itertools import count

from werkzeug import Request, Response

from tests.providers.fakes import FakeApi, reply

LISTS = ("blocklist", "hard-bounces", "spam-complaints", "unsubscribes")
LIMIT = 500
ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def invalid(errors: dict[str, str]) -> Response:
    """Laravel's answer: the first message, "(and N more errors)", every message by field."""
    messages = list(errors.values())
    more = len(messages) - 1
    message = messages[0] + (f" (and {more} more error{'s' * (more > 1)})" if more else "")
    return reply({"message": message, "errors": {f: [m] for f, m in errors.items()}}, 422)


class FakeMailerSend(FakeApi):
    def __init__(self, server, *, api_token: str, domain_id: str) -> None:
        super().__init__(server)
        self.api_token = api_token
        self.domain_id = domain_id
        # list -> entry id -> entry, as MailerSend keeps one entry per address and list.
        self.lists: dict[str, dict[str, dict]] = {name: {} for name in LISTS}
        self.ids = count(1)

    @property
    def url(self) -> str:
        return super().url + "/v1"

    def authorised(self, request: Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_token}"

    def unauthorised(self) -> Response:
        return reply({"message": "Unauthenticated."}, 401)

    def routes(self):
        kinds = re.compile("/v1/suppressions/(" + "|".join(LISTS) + ")")
        return [
            ("POST", kinds, self.add),
            ("GET", kinds, self.page),
            ("DELETE", kinds, self.remove),
        ]

    def held(self, kind: str) -> set[str]:
        return {self.email(entry) for entry in self.lists[kind].values()}

    def email(self, entry: dict) -> str:
        return entry["pattern"] if "pattern" in entry else entry["recipient"]["email"]

    def hold(self, kind: str, address: str, *, pattern: bool = False) -> dict:
        """Store an entry as MailerSend shows it ("Get recipients from a suppression list")."""
        for entry in self.lists[kind].values():
            if self.email(entry) == address.lower():
                return entry
        entry_id = f"{next(self.ids):024x}"
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        if kind == "blocklist":
            entry = {"id": entry_id, "type": "pattern" if pattern else "exact"}
            entry.update(pattern=address.lower(), created_at=stamp, updated_at=stamp)
        else:
            recipient = {"id": f"r{entry_id}", "email": address.lower(), "created_at": stamp}
            entry = {"id": entry_id, "recipient": recipient, "created_at": stamp}
            if kind in ("unsubscribes", "hard-bounces"):
                entry["reason"] = "added via the API"
        self.lists[kind][entry_id] = entry
        return entry

    def add(self, request: Request, kind: str) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return reply({"message": "The request body must be JSON."}, 400)
        errors = self._domain_errors(body, required=kind != "blocklist")
        recipients = body.get("recipients")
        if not isinstance(recipients, list) or not recipients:
            errors["recipients"] = "The recipients field is required."
        elif len(recipients) > LIMIT:
            errors["recipients"] = f"The recipients may not have more than {LIMIT} items."
        else:
            errors.update(
                (f"recipients.{n}", f"The recipients.{n} must be a valid email address.")
                for n, address in enumerate(recipients)
                if not (isinstance(address, str) and ADDRESS.fullmatch(address))
            )
        if errors:
            return invalid(errors)
        return reply({"data": [self.hold(kind, address) for address in recipients]}, 201)

    def page(self, request: Request, kind: str) -> Response:
        limit = int(request.args.get("limit", 25))
        if not 10 <= limit <= 100:
            return invalid({"limit": "The limit must be between 10 and 100."})
        if request.args.get("domain_id") not in (None, self.domain_id):
            return invalid({"domain_id": "The selected domain id is invalid."})
        page = int(request.args.get("page", 1))
        entries = list(self.lists[kind].values())
        last = max(1, -(-len(entries) // limit))
        base = f"{self.url}/suppressions/{kind}?page="
        return reply(
            {
                "data": entries[(page - 1) * limit : page * limit],
                "links": {
                    "first": f"{base}1",
                    "last": f"{base}{last}",
                    "prev": f"{base}{page - 1}" if page > 1 else None,
                    "next": f"{base}{page + 1}" if page < last else None,
                },
                "meta": {"current_page": page, "last_page": last, "per_page": limit},
            }
        )

    def remove(self, request: Request, kind: str) -> Response:
        body = request.get_json(silent=True) or {}
        errors = self._domain_errors(body, required=False)
        ids = body.get("ids")
        if body.get("all") is True and not errors:
            self.lists[kind].clear()
            return reply({"message": "Recipients have been removed from the suppression list."})
        if not isinstance(ids, list) or not ids:
            errors["ids"] = "The ids field is required when all is not present."
        else:
            errors.update(
                (f"ids.{n}", f"The selected ids.{n} is invalid.")
                for n, entry_id in enumerate(ids)
                if entry_id not in self.lists[kind]
            )
        if errors:
            return invalid(errors)
        for entry_id in ids:
            del self.lists[kind][entry_id]
        return reply({"message": "Recipients have been removed from the suppression list."})

    def _domain_errors(self, body: dict, *, required: bool) -> dict[str, str]:
        domain_id = body.get("domain_id")
        if domain_id is None:
            return {"domain_id": "The domain id field is required."} if required else {}
        if domain_id != self.domain_id:
            return {"domain_id": "The selected domain id is invalid."}
        return {}
