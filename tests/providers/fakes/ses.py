"""The SES API v2 suppression and contact-list calls (API reference: "PutSuppressedDestination",
"DeleteSuppressedDestination", "ListSuppressedDestinations", "GetContact", "CreateContact",
"UpdateContact", "ListContacts"), with every request's SigV4 signature checked.

The signature is recomputed here from the raw request line, by the steps of the IAM User Guide
("Create a signed AWS API request"), independently of ``suppress.providers.sigv4``; the test
suite checks this verifier against AWS's published SigV4 test vectors. Errors are answered as
REST-JSON services answer them: the status, ``x-amzn-ErrorType`` and ``{"message": ...}``.
"""

import hashlib
import hmac
import json
import re
import time
from calendar import timegm
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from werkzeug import Request, Response

from tests.providers.fakes import FakeApi

REASONS = ("BOUNCE", "COMPLAINT")
STATUSES = ("OPT_IN", "OPT_OUT")
# "Elements of an AWS API request signature": a signature is good for five minutes.
SIGNATURE_LIFETIME = 5 * 60
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
STAMP = re.compile(r"\d{8}T\d{6}Z")


def error(kind: str, message: str, status: int) -> Response:
    return Response(
        json.dumps({"message": message}),
        status=status,
        headers={"x-amzn-ErrorType": f"{kind}:"},
        content_type="application/json",
    )


def _encoded(text: str) -> str:
    return quote(text, safe="-_.~")


def expected_signature(
    *,
    secret: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    signed: list[str],
    body: bytes,
    day: str,
    region: str,
    service: str,
) -> str:
    """What the signature of this request must be, from the request as it came over the wire:
    each path segment decoded, then URI-encoded twice (every service but S3); each query name
    and value decoded, then encoded once and sorted."""
    segments = [_encoded(_encoded(unquote(segment))) for segment in raw_path.split("/")]
    pairs = []
    for item in filter(None, raw_query.split("&")):
        name, _, value = item.partition("=")
        pairs.append((_encoded(unquote(name.replace("+", " "))), _encoded(unquote(value))))
    lines = [method, "/".join(segments) or "/", "&".join(f"{n}={v}" for n, v in sorted(pairs))]
    lines += [f"{name}:{' '.join(headers[name].split())}" for name in signed]
    lines += ["", ";".join(signed), hashlib.sha256(body).hexdigest()]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    stamp = headers["x-amz-date"]
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{digest}"
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), "sha256").digest()
    return hmac.new(key, to_sign.encode(), "sha256").hexdigest()


class FakeSes(FakeApi):
    def __init__(self, server, *, access_key_id: str, secret_access_key: str, region: str):
        super().__init__(server)
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.region = region
        # Account-level list: address -> summary, as ListSuppressedDestinations answers it.
        self.suppressed: dict[str, dict] = {}
        # Contact lists: name -> address -> contact, as GetContact answers it.
        self.contact_lists: dict[str, dict[str, dict]] = {}

    def authorised(self, request: Request) -> bool:
        match = AUTHORIZATION.fullmatch(request.headers.get("Authorization", ""))
        stamp = request.headers.get("X-Amz-Date", "")
        if not (match and STAMP.fullmatch(stamp) and stamp.startswith(match["day"])):
            return False
        signed = match["signed"].split(";")
        age = time.time() - timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
        scope = (match["key"], match["region"], match["service"])
        if not (
            abs(age) <= SIGNATURE_LIFETIME
            and scope == (self.access_key_id, self.region, "ses")
            and {"host", "x-amz-date"} <= set(signed)
        ):
            return False
        raw_path, _, raw_query = request.environ["RAW_URI"].partition("?")
        expected = expected_signature(
            secret=self.secret_access_key,
            method=request.method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers={name: request.headers.get(name, "") for name in signed},
            signed=signed,
            body=request.get_data(),
            day=match["day"],
            region=self.region,
            service="ses",
        )
        return hmac.compare_digest(expected, match["signature"])

    def unauthorised(self) -> Response:
        return error(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
            403,
        )

    def routes(self):
        suppressed = "/v2/email/suppression/addresses"
        contacts = r"/v2/email/contact-lists/([^/]+)/contacts"
        return [
            ("PUT", re.compile(suppressed), self.put_suppressed),
            ("GET", re.compile(suppressed), self.list_suppressed),
            ("DELETE", re.compile(suppressed + "/([^/]+)"), self.delete_suppressed),
            ("POST", re.compile(contacts), self.create_contact),
            ("POST", re.compile(contacts + "/list"), self.list_contacts),
            ("GET", re.compile(contacts + "/([^/]+)"), self.get_contact),
            ("PUT", re.compile(contacts + "/([^/]+)"), self.update_contact),
        ]

    # The account-level suppression list

    def put_suppressed(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        address, reason = body.get("EmailAddress"), body.get("Reason")
        problem = _address_problem(address) or (
            None if reason in REASONS else f"Reason must be one of {', '.join(REASONS)}"
        )
        if problem:
            return error("BadRequestException", problem, 400)
        self.suppressed[address.lower()] = {
            "EmailAddress": address,
            "Reason": reason,
            "LastUpdateTime": time.time(),
        }
        return Response(status=200)

    def delete_suppressed(self, request: Request, address: str) -> Response:
        if self.suppressed.pop(address.lower(), None) is None:
            return error("NotFoundException", f"Email address {address} does not exist.", 404)
        return Response(status=200)

    def list_suppressed(self, request: Request) -> Response:
        size = int(request.args.get("PageSize", 1000))
        start = request.args.get("StartDate")
        since = datetime.fromisoformat(start).timestamp() if start else 0
        rows = [row for _, row in sorted(self.suppressed.items()) if row["LastUpdateTime"] > since]
        return self._page(
            request.args.get("NextToken"), size, rows, "SuppressedDestinationSummaries"
        )

    # Contact lists

    def create_contact(self, request: Request, name: str) -> Response:
        contacts = self.contact_lists.get(unquote(name))
        body = request.get_json(silent=True) or {}
        if contacts is None:
            return error("NotFoundException", f"List with name {unquote(name)} doesn't exist.", 404)
        problem = _address_problem(body.get("EmailAddress")) or _contact_problem(body)
        if problem:
            return error("BadRequestException", problem, 400)
        if body["EmailAddress"].lower() in contacts:
            return error("AlreadyExistsException", "Contact already exists.", 400)
        contacts[body["EmailAddress"].lower()] = _contact(body["EmailAddress"], body)
        return Response(status=200)

    def get_contact(self, request: Request, name: str, address: str) -> Response:
        contact = self.contact_lists.get(unquote(name), {}).get(address.lower())
        if contact is None:
            return error("NotFoundException", f"Contact {address} doesn't exist.", 404)
        return Response(json.dumps(contact), content_type="application/json")

    def update_contact(self, request: Request, name: str, address: str) -> Response:
        contact = self.contact_lists.get(unquote(name), {}).get(address.lower())
        body = request.get_json(silent=True) or {}
        if contact is None:
            return error("NotFoundException", f"Contact {address} doesn't exist.", 404)
        problem = _contact_problem(body)
        if problem:
            return error("BadRequestException", problem, 400)
        # "all your existing preferences will be removed" unless given again: replaced whole.
        contact.update(_contact(contact["EmailAddress"], body))
        return Response(status=200)

    def list_contacts(self, request: Request, name: str) -> Response:
        contacts = self.contact_lists.get(unquote(name))
        if contacts is None:
            return error("NotFoundException", f"List with name {unquote(name)} doesn't exist.", 404)
        body = request.get_json(silent=True) or {}
        rows = [contacts[address] for address in sorted(contacts)]
        return self._page(body.get("NextToken"), int(body.get("PageSize", 1000)), rows, "Contacts")

    def _page(self, token: str | None, size: int, rows: list, field: str) -> Response:
        """A page of ``rows`` and, while more remain, an opaque NextToken (here an offset)."""
        start = int(token or 0)
        page = {field: rows[start : start + size]}
        if start + size < len(rows):
            page["NextToken"] = str(start + size)
        return Response(json.dumps(page), content_type="application/json")


def _address_problem(address: object) -> str | None:
    """SES "does not support the SMTPUTF8 extension": the local part must be 7-bit ASCII."""
    if not isinstance(address, str) or "@" not in address:
        return "EmailAddress is required."
    if not address.split("@")[0].isascii():
        return "Invalid email address: the local part must be 7-bit ASCII (no SMTPUTF8)."
    return None


def _contact_problem(body: dict) -> str | None:
    for topic in body.get("TopicPreferences") or []:
        if topic.get("SubscriptionStatus") not in STATUSES or not topic.get("TopicName"):
            return "Invalid topic preference."
    if "UnsubscribeAll" in body and not isinstance(body["UnsubscribeAll"], bool):
        return "UnsubscribeAll must be a boolean."
    return None


def _contact(address: str, body: dict) -> dict:
    return {
        "EmailAddress": address,
        "TopicPreferences": body.get("TopicPreferences") or [],
        "UnsubscribeAll": bool(body.get("UnsubscribeAll")),
        "AttributesData": body.get("AttributesData"),
        "LastUpdatedTimestamp": datetime.now(UTC).timestamp(),
    }
