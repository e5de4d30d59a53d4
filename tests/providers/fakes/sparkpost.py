"""SparkPost's Suppression List API (API reference, "Suppression List"): the key alone in the
Authorization header, bulk upserts of up to 10,000 recipients, one list per subaccount named by
``X-MSYS-SUBACCOUNT``, cursor paging through ``links``, errors as ``{"errors": [{"message"}]}``.
"""

import base64
import re
from datetime import UTC, datetime
from urllib.parse import urlencode

from werkzeug import Request, Response

from tests.providers.fakes import FakeApi, reply

TYPES = ("transactional", "non_transactional")
LIMIT = 10_000
MASTER = "0"


def errors(message: str, status: int) -> Response:
    return reply({"errors": [{"message": message}]}, status)


class FakeSparkPost(FakeApi):
    def __init__(self, server, *, api_key: str) -> None:
        super().__init__(server)
        self.api_key = api_key
        # subaccount id ("0": the master account) -> (address, type) -> entry
        self.lists: dict[str, dict[tuple[str, str], dict]] = {MASTER: {}}
        # Addresses SparkPost judges invalid (its rules are not documented) and entries its
        # compliance system made, which cannot be removed.
        self.invalid: set[str] = set()
        self.compliance: set[str] = set()

    def entries(self, subaccount: str = MASTER) -> dict[str, set[str]]:
        """address -> the types it is suppressed for, in one list."""
        held: dict[str, set[str]] = {}
        for address, kind in self.lists.get(subaccount, {}):
            held.setdefault(address, set()).add(kind)
        return held

    def authorised(self, request: Request) -> bool:
        given = request.headers.get("Authorization", "")
        basic = "Basic " + base64.b64encode(f"{self.api_key}:".encode()).decode()
        return given in (self.api_key, basic)

    def unauthorised(self) -> Response:
        return errors("Unauthorized.", 401)

    def routes(self):
        root = "/api/v1/suppression-list"
        return [
            ("PUT", re.compile(root + "/?"), self.upsert),
            ("GET", re.compile(root + "/?"), self.search),
            ("DELETE", re.compile(root + "/([^/]+)"), self.delete),
        ]

    def upsert(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        recipients = body.get("recipients") if isinstance(body, dict) else None
        if not isinstance(recipients, list) or not 1 <= len(recipients) <= LIMIT:
            return errors(f"recipients must be an array of 1 to {LIMIT} objects", 400)
        invalid = [item for item in recipients if self._invalid(item)]
        if invalid:
            named = ", ".join(str(item.get("recipient")) for item in invalid)
            return errors(
                f"PUT body contains {len(invalid)} invalid or malformed recipient(s): {named}", 400
            )
        held = self.lists.setdefault(request.headers.get("X-MSYS-SUBACCOUNT", MASTER), {})
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for item in recipients:
            key = (item["recipient"].lower(), item["type"])
            entry = held.setdefault(key, {"created": now, "source": "Manually Added"})
            entry.update(recipient=item["recipient"], type=item["type"], updated=now)
            entry["description"] = item.get("description", "")
        return reply({"results": {"message": "Suppression List successfully updated"}})

    def _invalid(self, item: object) -> bool:
        if not isinstance(item, dict) or item.get("type") not in TYPES:
            return True
        address = item.get("recipient")
        return not isinstance(address, str) or "@" not in address or address in self.invalid

    def delete(self, request: Request, address: str) -> Response:
        held = self.lists.get(request.headers.get("X-MSYS-SUBACCOUNT", MASTER), {})
        body = request.get_json(silent=True) or {}
        kinds = [body["type"]] if body.get("type") else list(TYPES)
        keys = [(address.lower(), kind) for kind in kinds if (address.lower(), kind) in held]
        if not keys:
            return errors("Recipient could not be found", 404)
        if address.lower() in self.compliance:
            return errors("Recipient could not be removed - Compliance", 403)
        for key in keys:
            del held[key]
        return Response(status=204)

    def search(self, request: Request) -> Response:
        """Cursor paging: the cursor is an offset here; like SparkPost's, the links point on
        to a next page until a page comes back empty."""
        size = int(request.args.get("per_page", 1000))
        if not 1 <= size <= LIMIT:
            return errors(f"per_page must be between 1 and {LIMIT}", 400)
        subaccount = request.headers.get("X-MSYS-SUBACCOUNT")
        lists = [self.lists.get(subaccount, {})] if subaccount else list(self.lists.values())
        since = request.args.get("from")
        rows = sorted(
            (entry for held in lists for entry in held.values()),
            key=lambda entry: (entry["recipient"], entry["type"]),
        )
        if since:
            rows = [row for row in rows if row["updated"] >= _iso(since)]
        cursor = request.args.get("cursor", "initial")
        start = 0 if cursor == "initial" else int(cursor)
        page = rows[start : start + size]
        # The next link is the whole search again, at the next cursor.
        query = {**request.args.to_dict(), "cursor": str(start + len(page))}
        links = [{"href": f"/api/v1/suppression-list?{urlencode(query)}", "rel": "next"}]
        return reply({"results": page, "links": links, "total_count": len(rows)})


def _iso(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).isoformat(timespec="seconds")
