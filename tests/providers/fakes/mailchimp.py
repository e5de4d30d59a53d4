"""Mailchimp's Marketing API for one audience (API reference: Lists/Audiences "Batch subscribe
or unsubscribe", List members "List members info"): HTTP Basic with any user and the key as
password, batches of up to 500 members answered 200 with per-member errors, members paged by
``count`` and ``offset``, and every failure of a whole call as a problem+json document."""

import hashlib
import json
import re
from datetime import UTC, datetime
from itertools import count

from werkzeug import Request, Response

from tests.providers.fakes import FakeApi

LIMIT = 500
PAGE_LIMIT = 1000
STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
ERROR_GLOSSARY = "https://mailchimp.com/developer/marketing/docs/errors/"
INVALID = "The resource submitted could not be validated. For field-specific details, see the "
INVALID += "'errors' array."


def problem(title: str, status: int, detail: str, **extra: object) -> Response:
    """An error as Mailchimp answers it ("Errors": RFC 7807 problem details)."""
    body = {"type": ERROR_GLOSSARY, "title": title, "status": status, "detail": detail}
    return Response(
        json.dumps({**body, "instance": "5f3e2a1b-fake", **extra}),
        status=status,
        content_type="application/problem+json; charset=utf-8",
    )


def invalid(field: str, message: str) -> Response:
    return problem("Invalid Resource", 400, INVALID, errors=[{"field": field, "message": message}])


def subscriber_hash(address: str) -> str:
    """ "List members": the member's id is the MD5 hash of the lower-cased address."""
    return hashlib.md5(address.lower().encode()).hexdigest()


class FakeMailchimp(FakeApi):
    def __init__(self, server, *, api_key: str, audience: str) -> None:
        super().__init__(server)
        self.api_key = api_key
        self.audience = audience
        # subscriber_hash -> member, in the order members joined.
        self.members: dict[str, dict] = {}
        # Addresses permanently deleted from the audience, which Mailchimp will not import again.
        self.forgotten: set[str] = set()
        self.ticks = count()

    @property
    def url(self) -> str:
        return super().url + "/3.0"

    def authorised(self, request: Request) -> bool:
        given = request.authorization
        return given is not None and given.type == "basic" and given.password == self.api_key

    def unauthorised(self) -> Response:
        return problem(
            "API Key Invalid",
            401,
            "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
        )

    def routes(self):
        audience = re.escape(f"/3.0/lists/{self.audience}")
        anything = re.compile(".*")
        return [
            ("POST", re.compile(audience), self.batch),
            ("GET", re.compile(audience + "/members"), self.page),
            *((method, anything, self.not_found) for method in ("GET", "POST", "PUT", "DELETE")),
        ]

    def not_found(self, request: Request) -> Response:
        return problem("Resource Not Found", 404, "The requested resource could not be found.")

    def status_of(self, address: str) -> str | None:
        member = self.members.get(subscriber_hash(address))
        return member["status"] if member else None

    def hold(self, address: str, status: str, last_changed: str) -> None:
        """A member as someone else put it in the audience."""
        self.members[subscriber_hash(address)] = {
            "email_address": address,
            "status": status,
            "last_changed": last_changed,
        }

    def batch(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        members = body.get("members") if isinstance(body, dict) else None
        if not isinstance(members, list):
            return invalid("members", "Required fields were not provided: members")
        if len(members) > LIMIT:
            return invalid("members", f"Schema describes array with at most {LIMIT} items")
        for member in members:
            if not isinstance(member, dict) or "@" not in str(member.get("email_address", "")):
                return invalid("members.item:email_address", "This value should be an email")
            if member.get("status") not in STATUSES:
                return invalid("members.item:status", f"Value is not one of {list(STATUSES)}")
        answer: dict[str, list] = {"new_members": [], "updated_members": [], "errors": []}
        for member in members:
            kind, outcome = self._write(member, bool(body.get("update_existing")))
            answer[kind].append(outcome)
        return Response(json.dumps(self._counted(answer)), content_type="application/json")

    def _write(self, member: dict, update_existing: bool) -> tuple[str, dict]:
        address = member["email_address"]
        if address.lower() in self.forgotten:
            why = (
                f"{address} was permanently deleted and cannot be re-imported. "
                "The contact must re-subscribe to get back on the list."
            )
            return "errors", {"email_address": address, "error": why, "error_code": "ERROR_GENERIC"}
        held = self.members.get(subscriber_hash(address))
        if held and not update_existing:
            why = f"{address} is already a list member, do you want to update? please provide "
            why += "update_existing:true in the request body"
            return "errors", {
                "email_address": address,
                "error": why,
                "error_code": "ERROR_CONTACT_EXISTS",
            }
        stamp = datetime.fromtimestamp(1767225600 + next(self.ticks), UTC).isoformat()
        self.hold(address, member["status"], stamp)
        return ("updated_members" if held else "new_members"), self.members[
            subscriber_hash(address)
        ]

    def _counted(self, answer: dict[str, list]) -> dict:
        return {
            **answer,
            "total_created": len(answer["new_members"]),
            "total_updated": len(answer["updated_members"]),
            "error_count": len(answer["errors"]),
        }

    def page(self, request: Request) -> Response:
        size = int(request.args.get("count", 10))
        if size > PAGE_LIMIT:
            return invalid("count", f"count must be at most {PAGE_LIMIT}")
        offset = int(request.args.get("offset", 0))
        status = request.args.get("status")
        since = request.args.get("since_last_changed")
        chosen = [
            member
            for member in self.members.values()
            if status in (None, member["status"])
            and (
                since is None
                or datetime.fromisoformat(member["last_changed"]) > datetime.fromisoformat(since)
            )
        ]
        body = {
            "members": chosen[offset : offset + size],
            "list_id": self.audience,
            "total_items": len(chosen),
        }
        return Response(json.dumps(body), content_type="application/json")
