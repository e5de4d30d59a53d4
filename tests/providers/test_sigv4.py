"""AWS Signature Version 4: the signer and the fake SES's verifier each reproduce AWS's published
test vectors (the SigV4 test suite: credentials AKIDEXAMPLE, 2015-08-30T12:36:00Z, us-east-1,
service "service"), so that the fake's check of every SES call means something."""

import pytest
import requests

from suppress.providers.sigv4 import SigV4, authorization
from tests.providers.fakes.ses import expected_signature

KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
STAMP = "20150830T123600Z"
HOST = "example.amazonaws.com"
FORM = "application/x-www-form-urlencoded"

VECTORS = [
    pytest.param(
        "GET", "/", "", {}, b"",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        id="get-vanilla",
    ),
    pytest.param(
        "GET", "/", "Param2=value2&Param1=value1", {}, b"",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        id="get-vanilla-query-order-key-case",
    ),
    pytest.param(
        "POST", "/", "", {}, b"",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        id="post-vanilla",
    ),
    pytest.param(
        "POST", "/", "", {"content-type": FORM}, b"Param1=value1",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        id="post-x-www-form-urlencoded",
    ),
]  # fmt: skip


def signed_headers(extra: dict[str, str]) -> dict[str, str]:
    return {"host": HOST, "x-amz-date": STAMP, **extra}


@pytest.mark.parametrize(("method", "path", "query", "extra", "body", "signature"), VECTORS)
def test_the_signer_reproduces_aws_published_vectors(method, path, query, extra, body, signature):
    header = authorization(
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        region="us-east-1",
        service="service",
        method=method,
        url=f"https://{HOST}{path}" + (f"?{query}" if query else ""),
        headers=signed_headers(extra),
        body=body,
        stamp=STAMP,
    )
    names = ";".join(sorted(signed_headers(extra)))
    assert header == (
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders={names}, Signature={signature}"
    )


@pytest.mark.parametrize(("method", "path", "query", "extra", "body", "signature"), VECTORS)
def test_the_fake_s_verifier_reproduces_aws_published_vectors(
    method, path, query, extra, body, signature
):
    headers = signed_headers(extra)
    assert signature == expected_signature(
        secret=SECRET,
        method=method,
        raw_path=path,
        raw_query=query,
        headers=headers,
        signed=sorted(headers),
        body=body,
        day="20150830",
        region="us-east-1",
        service="service",
    )


def test_a_path_naming_an_address_is_signed_with_each_segment_encoded_twice():
    """The signer encodes the path once more than the wire (which the verifier decodes and
    encodes twice): both agree on an address with @ and + in it."""
    request = requests.Request(
        "DELETE", f"https://{HOST}/v2/email/suppression/addresses/matti%2Bkirje%40yritys.fi"
    ).prepare()
    SigV4(KEY_ID, SECRET, "eu-north-1", "ses")(request)
    stamp = request.headers["X-Amz-Date"]
    signature = request.headers["Authorization"].rpartition("Signature=")[2]
    assert signature == expected_signature(
        secret=SECRET,
        method="DELETE",
        raw_path="/v2/email/suppression/addresses/matti%2Bkirje%40yritys.fi",
        raw_query="",
        headers={"host": HOST, "x-amz-date": stamp},
        signed=["host", "x-amz-date"],
        body=b"",
        day=stamp[:8],
        region="eu-north-1",
        service="ses",
    )
