"""Mailgun's suppressions API, per sending domain (API reference: "Unsubscribe", "Bounces",
"Complaints"): Basic auth as ``api``, JSON arrays of up to 1000 records, paging by URL."""

import base64
import re
from email.utils import parsedate_to_datetime

from werkzeug import Request, Response

from tests.providers.fakes import FakeApi, reply

TABLES = ("unsubscribes", "bounces", "complaints")
LIMIT = 1000


class FakeMailgun(FakeApi):
    def __init__(self, server, *, api_key: str, domain: str) -> None:
        super().__init__(server)
        self.api_key = api_key
        self.domain = domain
        # table -> address -> record, as Mailgun keeps them (one record per address).
        self.tables: dict[str, dict[str, dict]] = {table: {} for table in TABLES}
        self.added: dict[str, int] = {}

    def authorised(self, request: Request) -> bool:
        expected = base64.b64encode(f"api:{self.api_key}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    def unauthorised(self) -> Response:
        return Response("Forbidden", status=401)

    def routes(self):
        table = "(" + "|".join(TABLES) + ")"
        domain = re.escape(f"/v3/{self.domain}/")
        return [
            ("POST", re.compile(domain + table), self.add),
            ("GET", re.compile(domain + table), self.page),
            ("DELETE", re.compile(domain + table + "/([^/]+)"), self.remove),
        ]

    def add(self, request: Request, table: str) -> Response:
        if request.mimetype != "application/json":
            return reply({"message": "Content-Type must be application/json"}, 400)
        records = request.get_json(silent=True)
        if not isinstance(records, list) or not 1 <= len(records) <= LIMIT:
            return reply({"message": f"expected a JSON array of 1 to {LIMIT} records"}, 400)
        for record in records:
            problem = self._problem(table, record)
            if problem:
                return reply({"message": problem}, 400)
        for record in records:
            stored = self.tables[table].setdefault(record["address"].lower(), dict(record))
            if table == "unsubscribes":
                stored["tags"] = sorted(set(stored["tags"]) | set(record["tags"]))
            self.added[record["address"].lower()] = self.added.get(record["address"].lower(), 0) + 1
        return reply({"message": f"{len(records)} addresses have been added to the {table} table"})

    def _problem(self, table: str, record: object) -> str | None:
        if not isinstance(record, dict) or "@" not in str(record.get("address", "")):
            return "address is required"
        try:
            parsedate_to_datetime(record["created_at"])
        except (KeyError, TypeError, ValueError):
            return "created_at must be an RFC 2822 date"
        if table == "unsubscribes" and not (
            isinstance(record.get("tags"), list) and record["tags"]
        ):
            return "tags must be a non-empty array"
        if table == "bounces" and not (record.get("code") and record.get("error")):
            return "code and error are required"
        return None

    def page(self, request: Request, table: str) -> Response:
        limit = int(request.args.get("limit", 100))
        if limit > LIMIT:
            return reply({"message": f"limit must be at most {LIMIT}"}, 400)
        after = request.args.get("address", "")
        addresses = sorted(a for a in self.tables[table] if a > after)[:limit]
        items = [self.tables[table][address] for address in addresses]
        last = addresses[-1] if addresses else after
        base = f"{self.url}/v3/{self.domain}/{table}"
        return reply(
            {
                "items": items,
                "paging": {
                    "first": f"{base}?limit={limit}",
                    "next": f"{base}?page=next&address={last}&limit={limit}",
                    "previous": f"{base}?page=previous&address={after}&limit={limit}",
                    "last": f"{base}?page=last&limit={limit}",
                },
            }
        )

    def remove(self, request: Request, table: str, address: str) -> Response:
        record = self.tables[table].get(address.lower())
        if record is None:
            return reply({"message": "Address not found in unsubscribers table"}, 404)
        tag = request.args.get("tag")
        if table == "unsubscribes" and tag:
            record["tags"] = [t for t in record["tags"] if t != tag]
            if record["tags"]:
                return reply({"message": "Unsubscribe event has been removed", "address": address})
        del self.tables[table][address.lower()]
        return reply({"message": "Unsubscribe event has been removed", "address": address})
