"""Postmark's Suppressions API (developer/api/suppressions-api), one list per message stream:
the server token in ``X-Postmark-Server-Token``, up to 50 addresses a call, a per-address
``Status`` in the answer, ``{"ErrorCode", "Message"}`` refusals with HTTP 422, and a dump with
no paging."""

import re
from datetime import date

from werkzeug import Request, Response

from tests.providers.fakes import FakeApi, reply

LIMIT = 50
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
NO_AUTHORITY = "You do not have the required authority to change this suppression."
INVALID = "An invalid email address was provided."


def error(code: int, message: str, status: int = 422) -> Response:
    return reply({"ErrorCode": code, "Message": message}, status)


class FakePostmark(FakeApi):
    def __init__(self, server, *, token: str, streams=("broadcast",)) -> None:
        super().__init__(server)
        self.token = token
        # stream -> address -> the suppression as the dump lists it.
        self.streams: dict[str, dict[str, dict]] = {stream: {} for stream in streams}
        self.batches: list[int] = []

    def authorised(self, request: Request) -> bool:
        return request.headers.get("X-Postmark-Server-Token") == self.token

    def unauthorised(self) -> Response:
        return error(
            10, "The Server Token you provided in the X-Postmark-Server-Token was invalid.", 401
        )

    def routes(self):
        stream = r"/message-streams/([^/]+)/suppressions"
        return [
            ("POST", re.compile(stream), self.create),
            ("POST", re.compile(stream + "/delete"), self.delete),
            ("GET", re.compile(stream + "/dump"), self.dump),
        ]

    def suppress(self, stream: str, address: str, reason: str, origin: str, created: str) -> None:
        """A suppression Postmark made itself (a bounce, a complaint, a recipient's unsubscribe)."""
        self.streams[stream][address.lower()] = {
            "EmailAddress": address,
            "SuppressionReason": reason,
            "Origin": origin,
            "CreatedAt": created,
        }

    def create(self, request: Request, stream: str) -> Response:
        addresses = self._addresses(request, stream)
        if isinstance(addresses, Response):
            return addresses
        return reply({"Suppressions": [self._created(stream, a) for a in addresses]})

    def _created(self, stream: str, address: str) -> dict:
        held = self.streams[stream].get(address.lower())
        if not ADDRESS.fullmatch(address):
            return _status(address, "Failed", INVALID)
        if held and held["SuppressionReason"] == "SpamComplaint":
            return _status(address, "Failed", NO_AUTHORITY)
        if not held:
            self.suppress(stream, address, "ManualSuppression", "Customer", "2026-11-23T10:00:00Z")
        return _status(address, "Suppressed")

    def delete(self, request: Request, stream: str) -> Response:
        """A SpamComplaint, or an unsubscribe the recipient made, cannot be deleted; an address
        that is not suppressed is "Deleted" all the same."""
        addresses = self._addresses(request, stream)
        if isinstance(addresses, Response):
            return addresses
        answers = []
        for address in addresses:
            held = self.streams[stream].get(address.lower())
            if held and (held["SuppressionReason"], held["Origin"]) in (
                ("SpamComplaint", "Recipient"),
                ("ManualSuppression", "Recipient"),
            ):
                answers.append(_status(address, "Failed", NO_AUTHORITY))
                continue
            self.streams[stream].pop(address.lower(), None)
            answers.append(_status(address, "Deleted"))
        return reply({"Suppressions": answers})

    def _addresses(self, request: Request, stream: str) -> list[str] | Response:
        if stream not in self.streams:
            return error(1226, "The message stream for the provided 'ID' was not found.")
        body = request.get_json(silent=True)
        items = body.get("Suppressions") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return error(1409, "A proper request body must be provided.")
        if len(items) > LIMIT:
            return error(1410, "You cannot provide more than the maximum number of suppressions.")
        if not all(isinstance(item, dict) and "EmailAddress" in item for item in items):
            return error(1409, "A proper request body must be provided.")
        self.batches.append(len(items))
        return [str(item["EmailAddress"]) for item in items]

    def dump(self, request: Request, stream: str) -> Response:
        if stream not in self.streams:
            return error(1226, "The message stream for the provided 'ID' was not found.")
        since = request.args.get("fromdate")
        entries = [
            entry
            for entry in self.streams[stream].values()
            if not since or date.fromisoformat(entry["CreatedAt"][:10]) >= date.fromisoformat(since)
        ]
        return reply({"Suppressions": entries})


def _status(address: str, status: str, message: str | None = None) -> dict:
    return {"EmailAddress": address, "Status": status, "Message": message}
