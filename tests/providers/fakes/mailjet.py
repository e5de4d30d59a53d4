"""Mailjet's contacts API (API reference "Contacts", "Bulk Contact Management"; guides
"Exclusion List", "Manage Contacts in bulk", "Filtering resources"): Basic auth with the API key
and secret, ``{"Count", "Data", "Total"}`` envelopes, asynchronous bulk jobs watched by JobID,
and ``Limit``/``Offset`` paging.

An address is checked against a plain ASCII pattern, so an internationalised address that our
normaliser accepts stands in for whatever address the real API would refuse: a bulk job skips it
and ends with an error file, a single call answers 400.
"""

import base64
import re
from datetime import UTC, datetime
from urllib.parse import unquote

from werkzeug import Request, Response

from tests.providers.fakes import FakeApi, reply

LIMIT = 1000
PAGE_LIMIT = 1000
ACTIONS = ("addforce", "addnoforce", "remove", "unsub")
ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
UNAUTHORISED = (
    "API key authentication/authorization failure. You may be unauthorized to access the API "
    "or your API key may be expired. Visit API keys management section to check your keys."
)


def envelope(items: list[dict], total: int | None = None) -> dict:
    return {"Count": len(items), "Data": items, "Total": len(items) if total is None else total}


def error(message: str, status: int = 400) -> Response:
    return reply({"ErrorInfo": "", "ErrorMessage": message, "StatusCode": status}, status)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeMailjet(FakeApi):
    def __init__(self, server, *, api_key: str, api_secret: str, job_polls: int = 1) -> None:
        super().__init__(server)
        self.credentials = f"{api_key}:{api_secret}"
        # address -> contact, as Mailjet keeps one contact per address.
        self.contacts: dict[str, dict] = {}
        # list id -> contact id -> subscription.
        self.lists: dict[int, dict[int, dict]] = {}
        self.jobs: dict[int, dict] = {}
        # How many looks at a job answer "Importing" before it is "Completed".
        self.job_polls = job_polls

    def authorised(self, request: Request) -> bool:
        expected = base64.b64encode(self.credentials.encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    def unauthorised(self) -> Response:
        return error(UNAUTHORISED, 401)

    def routes(self):
        rest = "/v3/REST/"
        return [
            ("POST", re.compile(rest + "contact/managemanycontacts"), self.exclude_many),
            ("GET", re.compile(rest + r"contact/managemanycontacts/(\d+)"), self.job),
            ("POST", re.compile(rest + r"contactslist/(\d+)/managemanycontacts"), self.list_many),
            ("GET", re.compile(rest + r"contactslist/\d+/managemanycontacts/(\d+)"), self.job),
            ("POST", re.compile(rest + r"contactslist/(\d+)/managecontact"), self.list_one),
            ("POST", re.compile(rest + "contact"), self.create),
            ("GET", re.compile(rest + "contact"), self.listing),
            ("PUT", re.compile(rest + "contact/([^/]+)"), self.update),
            ("GET", re.compile(rest + "contact/([^/]+)"), self.contact),
            ("GET", re.compile(rest + "contact/([^/]+)/getcontactslists"), self.memberships),
            ("GET", re.compile(rest + "listrecipient"), self.members),
        ]

    # The state tests read and set up.

    def excluded(self) -> set[str]:
        return {email for email, c in self.contacts.items() if c["IsExcludedFromCampaigns"]}

    def unsubscribed(self, list_id: int) -> set[str]:
        ids = {i for i, member in self.lists.get(list_id, {}).items() if member["IsUnsubscribed"]}
        return {email for email, c in self.contacts.items() if c["ID"] in ids}

    def add_contact(self, email: str, *, excluded: bool = False, complained: bool = False) -> dict:
        contact = self.contacts.setdefault(
            email.lower(),
            {
                "ID": len(self.contacts) + 1,
                "Email": email,
                "IsExcludedFromCampaigns": False,
                "ExclusionFromCampaignsUpdatedAt": "",
                "IsSpamComplaining": complained,
            },
        )
        if excluded:
            self.set_excluded(contact, True)
        return contact

    def set_excluded(self, contact: dict, excluded: bool) -> None:
        contact["IsExcludedFromCampaigns"] = excluded
        contact["ExclusionFromCampaignsUpdatedAt"] = now()

    def subscribe(self, list_id: int, email: str, *, unsubscribed: bool) -> None:
        contact = self.add_contact(email)
        self.lists.setdefault(list_id, {})[contact["ID"]] = {
            "IsUnsubscribed": unsubscribed,
            "UnsubscribedAt": now() if unsubscribed else "",
        }

    # Bulk jobs ("Manage multiple contacts", "Manage contacts in a list").

    def exclude_many(self, request: Request) -> Response:
        body = request.get_json(silent=True)
        problem = self._contacts_problem(body)
        if problem:
            return error(problem)
        skipped = 0
        for item in body["Contacts"]:
            if not ADDRESS.fullmatch(item["Email"]):
                skipped += 1
                continue
            contact = self.add_contact(item["Email"])
            if "IsExcludedFromCampaigns" in item:
                self.set_excluded(contact, item["IsExcludedFromCampaigns"])
        return self._job_started(skipped)

    def list_many(self, request: Request, list_id: str) -> Response:
        body = request.get_json(silent=True)
        problem = self._contacts_problem(body)
        if problem:
            return error(problem)
        if body.get("Action") not in ACTIONS:
            return error("action missing or not valid")
        skipped = 0
        for item in body["Contacts"]:
            if not ADDRESS.fullmatch(item["Email"]):
                skipped += 1
                continue
            self._apply(int(list_id), item["Email"], body["Action"])
        return self._job_started(skipped)

    def job(self, request: Request, job_id: str) -> Response:
        job = self.jobs.get(int(job_id))
        if job is None:
            return error("Object not found", 404)
        job["looks"] += 1
        done = job["looks"] >= self.job_polls
        state = {
            "Status": "Completed" if done else "Importing",
            "JobStart": job["start"],
            "JobEnd": now() if done else "",
            "Count": job["count"],
            "Error": job["error"] if done else "",
            "ErrorFile": job["error_file"] if done else "",
        }
        return reply(envelope([state]))

    def _contacts_problem(self, body: object) -> str | None:
        if not isinstance(body, dict) or not isinstance(body.get("Contacts"), list):
            return "Contacts: a JSON array is required"
        if not 1 <= len(body["Contacts"]) <= LIMIT:
            return f"Contacts: from 1 to {LIMIT} contacts per call"
        for item in body["Contacts"]:
            if not isinstance(item, dict) or not isinstance(item.get("Email"), str):
                return "Contacts: Email is the only mandatory property, and it is missing"
            flag = item.get("IsExcludedFromCampaigns", False)
            if not isinstance(flag, bool):
                return "IsExcludedFromCampaigns: a boolean is expected"
        return None

    def _job_started(self, skipped: int) -> Response:
        job_id = 35800 + len(self.jobs)
        self.jobs[job_id] = {
            "looks": 0,
            "start": now(),
            "count": 0,
            "error": f"{skipped} contact(s) could not be imported" if skipped else "",
            "error_file": f"/v3/DATA/batchjob/{job_id}/JSONError/application:json/LAST"
            if skipped
            else "",
        }
        return reply(envelope([{"JobID": job_id}]), 201)

    # Single contacts.

    def list_one(self, request: Request, list_id: str) -> Response:
        body = request.get_json(silent=True) or {}
        if not ADDRESS.fullmatch(str(body.get("Email", ""))):
            return error("Email: invalid email address")
        if body.get("Action") not in ACTIONS:
            return error("action missing or not valid")
        self._apply(int(list_id), body["Email"], body["Action"])
        return reply(envelope([{"Email": body["Email"], "Action": body["Action"]}]), 201)

    def create(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        email = str(body.get("Email", ""))
        if not ADDRESS.fullmatch(email):
            return error("Email: invalid email address")
        if email.lower() in self.contacts:
            return error(f'MJ18 A Contact resource with value "{email}" for Email already exists.')
        contact = self.add_contact(email)
        self.set_excluded(contact, body.get("IsExcludedFromCampaigns") is True)
        return reply(envelope([contact]), 201)

    def update(self, request: Request, key: str) -> Response:
        contact = self._found(key)
        if contact is None:
            return error("Object not found", 404)
        flag = (request.get_json(silent=True) or {}).get("IsExcludedFromCampaigns")
        if flag is None or flag == contact["IsExcludedFromCampaigns"]:
            return Response(status=304)
        self.set_excluded(contact, flag)
        return reply(envelope([contact]))

    def contact(self, request: Request, key: str) -> Response:
        contact = self._found(key)
        return reply(envelope([contact])) if contact else error("Object not found", 404)

    def memberships(self, request: Request, key: str) -> Response:
        contact = self._found(key)
        if contact is None:
            return error("Object not found", 404)
        held = [
            {"IsActive": True, "IsUnsub": lists[contact["ID"]]["IsUnsubscribed"], "ListID": i}
            for i, lists in self.lists.items()
            if contact["ID"] in lists
        ]
        return reply(envelope(held))

    # Listings ("Filtering resources": Limit at most 1000, Offset).

    def listing(self, request: Request) -> Response:
        contacts = sorted(self.contacts.values(), key=lambda contact: contact["ID"])
        wanted = request.args.get("IsExcludedFromCampaigns")
        if wanted is not None:
            contacts = [c for c in contacts if c["IsExcludedFromCampaigns"] == (wanted == "true")]
        return self._page(request, contacts)

    def members(self, request: Request) -> Response:
        list_id = int(request.args.get("ContactsList", "0"))
        members = [
            {"ContactID": contact_id, "ListID": list_id, **member}
            for contact_id, member in sorted(self.lists.get(list_id, {}).items())
        ]
        if request.args.get("Unsub") is not None:
            unsubscribed = request.args["Unsub"] == "true"
            members = [m for m in members if m["IsUnsubscribed"] == unsubscribed]
        return self._page(request, members)

    def _page(self, request: Request, items: list[dict]) -> Response:
        limit = int(request.args.get("Limit", 10)) or PAGE_LIMIT
        if limit > PAGE_LIMIT:
            return error(f"Limit: the maximum value is {PAGE_LIMIT}")
        offset = int(request.args.get("Offset", 0))
        return reply(envelope(items[offset : offset + limit], len(items)))

    def _apply(self, list_id: int, email: str, action: str) -> None:
        members = self.lists.setdefault(list_id, {})
        contact = self.add_contact(email)
        if action == "remove":
            members.pop(contact["ID"], None)
        elif action == "unsub":
            members[contact["ID"]] = {"IsUnsubscribed": True, "UnsubscribedAt": now()}
        elif action == "addforce" or contact["ID"] not in members:
            members[contact["ID"]] = {"IsUnsubscribed": False, "UnsubscribedAt": ""}

    def _found(self, key: str) -> dict | None:
        key = unquote(key)
        if key.isdigit():
            return next((c for c in self.contacts.values() if c["ID"] == int(key)), None)
        return self.contacts.get(key.lower())
