"""Brevo's contacts API (API reference: "Create a contact", "Update a contact", "Get all the
contacts", "Get the list of blocked or unsubscribed transactional contacts"): the key in the
``api-key`` header, one contact per call, errors as ``{"code", "message"}``, lists paged by
``limit`` and ``offset``."""

import re
from datetime import UTC, datetime
from itertools import count

from werkzeug import Request, Response

from tests.providers.fakes import FakeApi, reply

CONTACTS_LIMIT = 1000
BLOCKED_LIMIT = 100
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MODIFIED_SINCE = "%Y-%m-%dT%H:%M:%S.%fZ"


def error(code: str, message: str, status: int = 400) -> Response:
    return reply({"code": code, "message": message}, status)


def stamp(moment: datetime) -> str:
    """Brevo's times: UTC, milliseconds, ``Z``."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeBrevo(FakeApi):
    def __init__(self, server, *, api_key: str, lists: tuple[int, ...] = ()) -> None:
        super().__init__(server)
        self.api_key = api_key
        self.lists = set(lists)
        # address -> contact, in the order contacts were created.
        self.contacts: dict[str, dict] = {}
        # The transactional blocklist, oldest first.
        self.blocked: list[dict] = []
        # Addresses Brevo's own check refuses, though ours accepts them.
        self.invalid: set[str] = set()
        self.ticks = count()

    @property
    def url(self) -> str:
        return super().url + "/v3"

    def authorised(self, request: Request) -> bool:
        return request.headers.get("api-key") == self.api_key

    def unauthorised(self) -> Response:
        return error("unauthorized", "Key not found", 401)

    def routes(self):
        return [
            ("POST", re.compile("/v3/contacts"), self.create),
            ("PUT", re.compile("/v3/contacts/([^/]+)"), self.update),
            ("GET", re.compile("/v3/contacts"), self.page_contacts),
            ("GET", re.compile("/v3/smtp/blockedContacts"), self.page_blocked),
        ]

    def hold(
        self, address: str, *, blacklisted: bool = False, lists=(), modified: datetime | None = None
    ) -> dict:
        """A contact as someone else made it."""
        self.contacts[address.lower()] = {
            "email": address.lower(),
            "id": len(self.contacts) + 1,
            "emailBlacklisted": blacklisted,
            "smsBlacklisted": False,
            "listIds": list(lists),
            "modifiedAt": stamp(modified or self._now()),
        }
        return self.contacts[address.lower()]

    def block(self, address: str, code: str, at: datetime) -> None:
        reason = {"code": code, "message": code}
        self.blocked.append(
            {
                "email": address,
                "senderEmail": "uutiset@yritys.fi",
                "reason": reason,
                "blockedAt": stamp(at),
            }
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(1767225600 + next(self.ticks), UTC)

    def create(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return error("invalid_parameter", "Invalid JSON body")
        address = str(body.get("email", "")).lower()
        if not ADDRESS.fullmatch(address) or address in self.invalid:
            return error("invalid_parameter", "Invalid email address")
        if not isinstance(body.get("emailBlacklisted", False), bool):
            return error("invalid_parameter", "emailBlacklisted should be boolean")
        held = self.contacts.get(address)
        if held and not body.get("updateEnabled"):
            return error(
                "duplicate_parameter",
                "Unable to create contact, email is already associated with another Contact",
            )
        contact = held or self.hold(address)
        contact["emailBlacklisted"] = body.get("emailBlacklisted", contact["emailBlacklisted"])
        contact["modifiedAt"] = stamp(self._now())
        return Response(status=204) if held else reply({"id": contact["id"]}, 201)

    def update(self, request: Request, identifier: str) -> Response:
        if request.args.get("identifierType", "email_id") != "email_id":
            return error("invalid_parameter", "identifierType is not valid")
        contact = self.contacts.get(identifier.lower())
        if contact is None:
            return error("document_not_found", "Contact does not exist", 404)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return error("invalid_parameter", "Invalid JSON body")
        unlinked = body.get("unlinkListIds", [])
        if not isinstance(unlinked, list) or not set(unlinked) <= self.lists:
            return error("invalid_parameter", "List ID does not exist")
        contact["listIds"] = [ref for ref in contact["listIds"] if ref not in unlinked]
        contact["emailBlacklisted"] = body.get("emailBlacklisted", contact["emailBlacklisted"])
        contact["modifiedAt"] = stamp(self._now())
        return Response(status=204)

    def page_contacts(self, request: Request) -> Response:
        limit = int(request.args.get("limit", 50))
        if limit > CONTACTS_LIMIT:
            return error("out_of_range", f"Limit exceeds max value {CONTACTS_LIMIT}")
        try:
            since = datetime.strptime(
                request.args.get("modifiedSince", "0001-01-01T00:00:00.000Z"), MODIFIED_SINCE
            ).replace(tzinfo=UTC)
        except ValueError:
            return error("invalid_parameter", "modifiedSince is not a valid date-time")
        chosen = [
            contact
            for contact in self.contacts.values()
            if datetime.fromisoformat(contact["modifiedAt"]) > since
        ]
        return self._paged(request, chosen, limit)

    def page_blocked(self, request: Request) -> Response:
        limit = int(request.args.get("limit", 50))
        if limit > BLOCKED_LIMIT:
            return error("out_of_range", f"Limit exceeds max value {BLOCKED_LIMIT}")
        start, end = request.args.get("startDate"), request.args.get("endDate")
        if (start is None) != (end is None):
            return error("invalid_parameter", "startDate and endDate both must be passed")
        if end and end > datetime.now(UTC).date().isoformat():
            return error("invalid_parameter", "endDate should not be greater than today")
        chosen = [
            entry
            for entry in self.blocked
            if start is None or start <= entry["blockedAt"][:10] <= end
        ]
        return self._paged(request, chosen, limit)

    def _paged(self, request: Request, chosen: list[dict], limit: int) -> Response:
        if request.args.get("sort", "desc") == "desc":
            chosen = chosen[::-1]
        offset = int(request.args.get("offset", 0))
        return reply({"contacts": chosen[offset : offset + limit], "count": len(chosen)})
