"""Specification of `suppress.addresses`: the normal form, its hash and the address kinds."""

import string

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from suppress import addresses
from suppress.addresses import (
    B2B,
    CONSUMER,
    CONSUMER_DOMAINS,
    NO_DIGEST,
    ROLE,
    ROLE_LOCAL_PARTS,
    InvalidAddress,
    _by_domain_forms,
    _domain_forms,
    _normalise_fast,
    _normalise_slow,
    classify,
    domain_of,
    email_digest,
    email_digests,
    email_hash,
    normalise,
    normalise_all,
    normalise_and_hash,
)

# Property tests compare with email-validator, which takes ~40 µs an address; these budgets keep
# the file well under ten seconds while still drawing thousands of addresses.
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Matti.Meikalainen@Yritys.fi", "matti.meikalainen@yritys.fi"),
        ("  matti@firma.fi\t\n", "matti@firma.fi"),
        ("\u00a0matti@firma.fi\u00a0", "matti@firma.fi"),
        ("MATTI@FIRMA.FI", "matti@firma.fi"),
        ("Matti+Uutiskirje@Firma.fi", "matti+uutiskirje@firma.fi"),
        ("m.a.t.t.i@gmail.com", "m.a.t.t.i@gmail.com"),
        ("o'brien-smith_2@firma.fi", "o'brien-smith_2@firma.fi"),
        ("Ä@Bücher.FI", "ä@xn--bcher-kva.fi"),
        ("Päivi.Mäkelä@Sähkö.fi", "päivi.mäkelä@xn--shk-qla6g.fi"),
        ("info@XN--BCHER-KVA.fi", "info@xn--bcher-kva.fi"),
        ("A\u0308@firma.fi", "ä@firma.fi"),
        ("matti@firma\u3002fi", "matti@firma.fi"),
        ("x" * 65 + "@firma.fi", "x" * 65 + "@firma.fi"),
    ],
)
def test_normalise_trims_lower_cases_and_idna_encodes(raw, expected):
    """Case and the domain's spelling go; dots, +tags and over-long local parts stay.

    The last case is email-validator's non-strict rule: RFC 5321's 64-octet local part limit is
    not enforced, because real mailboxes exceed it and refusing one would refuse its opt-out.
    """
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "must have an @-sign"),
        ("matti.firma.fi", "must have an @-sign"),
        ("matti@@firma.fi", "invalid characters"),
        ("matti@virtanen@firma.fi", "invalid characters"),
        ("@firma.fi", "something before the @-sign"),
        ("matti@", "something after the @-sign"),
        ("matti..virtanen@firma.fi", "two periods in a row"),
        (".matti@firma.fi", "cannot start with a period"),
        ("matti.@firma.fi", "period immediately before the @-sign"),
        ("matti virtanen@firma.fi", "invalid characters before the @-sign"),
        ("mat\u200btti@firma.fi", "unsafe characters"),
        ("matti@-firma.fi", "hyphen immediately after the @-sign"),
        ("matti@firma..fi", "two periods in a row"),
        ("matti@firma", "should have a period"),
        ("matti@firma.123", "not within a valid top-level domain"),
        ("matti@ab--firma.fi", "two dashes"),
        ("matti@" + "a" * 64 + ".fi", "periods cannot be separated by so many characters"),
        ("m" * 250 + "@firma.fi", "too long"),
        ("m" * 240 + "@" + "a" * 20 + ".fi", "too long"),
        ("İ" * 83 + "@firma.fi", "too long"),
        ("matti@localhost", "should have a period"),
        ("matti@firma.local", "special-use or reserved name"),
        ("matti@firma.test", "special-use or reserved name"),
        ("matti@firma.invalid", "special-use or reserved name"),
        ("matti@abc.onion", "special-use or reserved name"),
        ("matti@1.0.0.127.in-addr.arpa", "special-use or reserved name"),
        ("Matti <matti@firma.fi>", "display name"),
        ('"Matti Virtanen" <matti@firma.fi>', "display name"),
        ('"matti"@firma.fi', "Quoting"),
        ("matti@[127.0.0.1]", "bracketed IP address"),
        (None, "must be text"),
        (b"matti@firma.fi", "must be text"),
        (42, "must be text"),
    ],
)
def test_normalise_rejects_an_invalid_address_saying_why(raw, reason):
    """The reasons are email-validator's, cut short so that they never quote the address.

    "İ" lower-cases to two characters, so "İ" * 83 is valid as typed but too long once normalised.
    """
    with pytest.raises(InvalidAddress, match=reason):
        normalise(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "zqx zqx@firma.fi",
        "zqx@[IPv6:zqx]",
        "zqx@zqx_zqx.fi",
        "Zqx <zqx@zqx.fi>",
        '"zqx\x00"@zqx.fi',
        "zqx@\u0300zqx.fi",
        "zqx@zqx\u00b7.fi",
        "zqx@xn--zqx-zzz.fi",
    ],
)
def test_reason_never_quotes_the_address(raw):
    """Messages are logged, so none carries any part of the address (here the marker "zqx")."""
    with pytest.raises(InvalidAddress) as raised:
        normalise(raw)
    assert "zqx" not in str(raised.value).lower()


def test_fast_path_takes_the_common_address():
    """Guards against the fast path silently matching nothing and every call paying full price."""
    assert _normalise_fast(" Matti.Meikalainen@Yritys.fi ") == "matti.meikalainen@yritys.fi"


@pytest.mark.parametrize(
    "raw",
    [
        "päivi@firma.fi",
        "matti@xn--bcher-kva.fi",
        "matti@firma.local",
        "matti@firma.fi.",
        "matti@" + "a" * 64 + ".fi",
        "m" * 250 + "@firma.fi",
        b"matti@firma.fi",
    ],
)
def test_fast_path_leaves_anything_unusual_to_email_validator(raw):
    assert _normalise_fast(raw) is None


def test_email_hash_is_hex_sha256_of_the_utf8_normal_form():
    expected = "be71fbd84de122932ed9b85b5a771ef325a9eced3ffd47b50fc59b4a30ea6897"
    assert email_hash("matti.meikalainen@yritys.fi") == expected
    assert email_digest("matti.meikalainen@yritys.fi").hex() == expected


@pytest.mark.parametrize("raw", ["Matti.Meikalainen@Yritys.fi", "Päivi@Sähkö.fi"])
def test_normalise_and_hash_equals_its_two_steps(raw):
    assert normalise_and_hash(raw) == (normalise(raw), email_hash(normalise(raw)))


def test_email_digests_packs_each_digest_and_zeros_for_none():
    digests = email_digests(["matti@firma.fi", "", "ä@xn--bcher-kva.fi"])
    expected = [email_digest("matti@firma.fi"), NO_DIGEST, email_digest("ä@xn--bcher-kva.fi")]
    assert digests == b"".join(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "Päivi.Mäkelä@Sähkö.fi",
        "ÅSA.ÖHMAN@PÖLLÄNEN.COM",
        "matti@xn--kkset-graa3f.fi",
        "Mikko@Kone--Oy.fi",
        "A\u0308@firma.fi",
        "INFO@Bücher.fi",
    ],
)
def test_internationalised_addresses_take_the_domain_path(raw):
    """Guards against the path that spares email-validator's whole check of every
    internationalised address silently matching nothing."""
    assert _by_domain_forms(raw) == _normalise_slow(raw)


def test_a_domain_is_checked_once(monkeypatch):
    checked = []
    real = addresses.validate_email_domain_name
    monkeypatch.setattr(
        addresses,
        "validate_email_domain_name",
        lambda domain, **k: checked.append(domain) or real(domain, **k),
    )
    _domain_forms.cache_clear()
    assert normalise("Päivi@Kone--Oy.fi") == "päivi@kone--oy.fi"
    assert normalise("Åsa@Kone--Oy.fi") == "åsa@kone--oy.fi"
    with pytest.raises(InvalidAddress, match="period"):
        normalise("matti@Sähkö")
    with pytest.raises(InvalidAddress, match="period"):
        normalise("maija@Sähkö")
    assert checked == ["Kone--Oy.fi", "Sähkö"]
    _domain_forms.cache_clear()


@pytest.mark.parametrize(
    "stripped",
    [
        ["Matti@Firma.fi", "", "päivi@Sähkö.fi", "matti", "MATTI@FIRMA.FI", "\u212a@firma.fi"],
        ["x" * 250 + "@firma.fi", "a@b.fi", "matti@firma.local", "Matti <matti@firma.fi>"],
        [],
    ],
)
def test_normalise_all_is_normalise_of_each(stripped):
    assert normalise_all(stripped) == _one_by_one(stripped)


def _one_by_one(stripped: list[str]) -> tuple[list[str], dict[int, str]]:
    normalised, invalid = [], {}
    for index, address in enumerate(stripped):
        try:
            normalised.append(normalise(address) if address else "")
        except InvalidAddress as error:
            normalised.append("")
            invalid[index] = str(error)
    return normalised, invalid


def test_normalise_and_hash_rejects_like_normalise():
    with pytest.raises(InvalidAddress, match="@-sign"):
        normalise_and_hash("matti")


@pytest.mark.parametrize(
    ("normalised", "domain"),
    [("matti@firma.fi", "firma.fi"), ("päivi@xn--shk-qla6g.fi", "xn--shk-qla6g.fi")],
)
def test_domain_of_is_the_part_after_the_at_sign(normalised, domain):
    assert domain_of(normalised) == domain


@pytest.mark.parametrize(
    ("normalised", "kind"),
    [
        ("info@firma.fi", ROLE),
        ("sales@firma.fi", ROLE),
        ("myynti@firma.fi", ROLE),
        ("asiakaspalvelu@firma.fi", ROLE),
        ("toimisto@firma.fi", ROLE),
        ("laskutus@firma.fi", ROLE),
        ("office@firma.fi", ROLE),
        ("contact@firma.fi", ROLE),
        ("info+tilaukset@firma.fi", ROLE),
        ("matti@gmail.com", CONSUMER),
        ("matti@outlook.com", CONSUMER),
        ("matti@hotmail.com", CONSUMER),
        ("matti@live.com", CONSUMER),
        ("matti@yahoo.com", CONSUMER),
        ("matti@icloud.com", CONSUMER),
        ("matti@luukku.com", CONSUMER),
        ("matti@suomi24.fi", CONSUMER),
        ("matti@elisanet.fi", CONSUMER),
        ("matti@kolumbus.fi", CONSUMER),
        ("matti@saunalahti.fi", CONSUMER),
        ("matti@welho.com", CONSUMER),
        ("matti@dnainternet.net", CONSUMER),
        ("matti@pp.inet.fi", CONSUMER),
        ("matti@koti.luukku.com", CONSUMER),
        ("info@gmail.com", CONSUMER),
        ("matti.meikalainen@firma.fi", B2B),
        ("matti.info@firma.fi", B2B),
        ("info.matti@firma.fi", B2B),
        ("matti@inet.fi", B2B),
        ("matti@gmail.com.firma.fi", B2B),
        ("matti@notgmail.com", B2B),
    ],
)
def test_classify_by_local_part_and_domain(normalised, kind):
    """R-FI-2: role local parts are the company's, free-mail and ISP domains a person's.

    A consumer domain wins over a role name (`info@gmail.com` is still somebody's own mailbox),
    subdomains of a consumer domain are consumer, and a `+tag` does not hide a role name.
    """
    assert classify(normalised) == kind


def test_classify_uses_the_sets_it_is_given():
    """R-FI-2: the role names and consumer domains are configurable."""
    roles, consumers = frozenset({"hallitus"}), frozenset({"oma.fi"})
    assert classify("hallitus@firma.fi", roles, consumers) == ROLE
    assert classify("info@firma.fi", roles, consumers) == B2B
    assert classify("matti@oma.fi", roles, consumers) == CONSUMER
    assert classify("matti@gmail.com", roles, consumers) == B2B


def test_default_sets_are_normalised():
    """classify compares against normal forms, so an entry that is not one could never match."""
    for local in ROLE_LOCAL_PARTS:
        assert normalise(local + "@firma.fi") == local + "@firma.fi"
    for domain in CONSUMER_DOMAINS:
        assert domain_of(normalise("matti@" + domain)) == domain


# Near-valid ASCII: addresses in the fast path's shape in which, often enough, one rule is
# broken or stretched: a label starting `xn--` or `ab--` or with a hyphen, a label
# or the whole address right around 63 and 254 characters, a special-use or odd top-level
# label, a dot, quote, bracket, space or second @-sign dropped in anywhere, or a character that
# only looks ASCII once lower-cased. Repeats in the lists below weight the common case.
_ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
_LETTERS_DIGITS = string.ascii_letters + string.digits
_TLDS = ["fi", "com", "FI", "Io", "museum"] * 4 + [
    *("local", "localhost", "test", "invalid", "onion", "arpa", "in-addr.arpa", "example"),
    *("1fi", "fi1", "123", "f", "xn--p1ai", "a" * 63, "a" * 64, "", "fi-", "fi."),
]
_LABEL_STARTS = [""] * 24 + ["xn--", "XN--", "ab--", "a--", "-", "9-"]
_LABEL_ENDS = [""] * 24 + ["-", "--"]
_SNIPPETS = [""] * 40 + [".", "..", "-", "--", "@", " ", '"', "<", ">", "(", ")", ",", ";"]
_SNIPPETS += [":", "[", "]", "\\", "\x00", "_", "\u00e4", "\u212a", "\u0130", "\u00a0"]
_SPACES = st.sampled_from(["", "", "", " ", "\t\n", "\u00a0", "\u2003", "\x1c"])
_atoms = st.text(st.sampled_from(_ATEXT), min_size=1, max_size=12)
_short_labels = st.lists(
    st.text(st.sampled_from(_LETTERS_DIGITS), min_size=1, max_size=10), min_size=1, max_size=2
).map("-".join)
_long_labels = st.integers(61, 65).map(lambda length: ("Ab9-" * 17)[: length - 1] + "z")


@st.composite
def _labels(draw: st.DrawFn) -> str:
    label = draw(_long_labels if draw(st.sampled_from([False] * 5 + [True])) else _short_labels)
    return draw(st.sampled_from(_LABEL_STARTS)) + label + draw(st.sampled_from(_LABEL_ENDS))


@st.composite
def near_valid_ascii(draw: st.DrawFn) -> str:
    local = ".".join(draw(st.lists(_atoms, min_size=1, max_size=3)))
    domain = ".".join([*draw(st.lists(_labels(), max_size=3)), draw(st.sampled_from(_TLDS))])
    address = local + "@" + domain
    if draw(st.sampled_from([False] * 7 + [True])):
        # Pad the local part to bring the whole address to within a few characters of 254.
        address = "x" * max(0, 254 - len(address) + draw(st.integers(-2, 2))) + address
    snippet = draw(st.sampled_from(_SNIPPETS))
    at = draw(st.integers(0, len(address)))
    return draw(_SPACES) + address[:at] + snippet + address[at:] + draw(_SPACES)


# Internationalised: letters, marks and digits from anywhere, plus the characters whose lower
# case is longer, context-dependent or ASCII (İ, final Σ, Kelvin sign, ǅ, ẞ, Ⅻ).
_TRICKY = "İΣςKǅẞⅫÄäÅ"
international = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    st.text(
        st.characters(categories=["L", "M", "N"]) | st.sampled_from(_TRICKY + _ATEXT + "."),
        min_size=1,
        max_size=20,
    ),
    st.text(
        st.characters(categories=["L", "M", "N"]) | st.sampled_from(_TRICKY + "-."),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from(["fi", "com", "ΕΛ", "рф", "XN--P1AI"]),
)
anything = near_valid_ascii() | st.emails() | international | st.text()


def _slow(raw: str) -> str | None:
    try:
        return _normalise_slow(raw)
    except InvalidAddress:
        return None


def test_fast_path_agrees_with_email_validator_on_every_one_character_change():
    """Exhaustive where hypothesis samples: each ASCII character put in or swapped in anywhere."""
    base = "Matti.Meik-alainen+x@Yri-tys.Example.fi"
    changed = [
        base[:at] + chr(code) + base[at + skip :]
        for at in range(len(base) + 1)
        for code in range(128)
        for skip in (0, 1)
    ]
    disagreements = [raw for raw in changed if _normalise_fast(raw) not in (None, _slow(raw))]
    assert disagreements == []


@settings(PROPERTY, max_examples=1200)
@given(near_valid_ascii())
def test_fast_path_agrees_with_email_validator_on_near_valid_ascii(raw):
    """Whatever the fast path accepts, email-validator accepts, in the very same normal form."""
    fast = _normalise_fast(raw)
    event("fast path" if fast is not None else "slow path")
    assert fast is None or _normalise_slow(raw) == fast


@settings(PROPERTY, max_examples=300)
@given(st.emails() | st.emails().map(str.upper) | st.text())
def test_fast_path_agrees_with_email_validator_on_emails_and_text(raw):
    """The same, for hypothesis's own idea of an address and for arbitrary text."""
    fast = _normalise_fast(raw)
    event("fast path" if fast is not None else "slow path")
    assert fast is None or _normalise_slow(raw) == fast


@settings(PROPERTY, max_examples=600)
@given(anything)
def test_normalise_is_idempotent(raw):
    """A stored normal form looked up again lands on the same row, by either path."""
    try:
        once = normalise(raw)
    except InvalidAddress:
        return
    assert normalise(once) == once
    assert _normalise_slow(once) == once


@settings(PROPERTY, max_examples=200)
@given(st.builds("{}zqx{}".format, anything, anything))
def test_no_reason_quotes_the_address(raw):
    try:
        normalise(raw)
    except InvalidAddress as error:
        reason = str(error)
    else:
        return
    assert "zqx" not in reason.lower()


def _verdict(normalise_by, raw: object) -> str | None:
    try:
        return normalise_by(raw)
    except InvalidAddress as error:
        return f"refused: {error}"


# Addresses in the domain path's shape, and just outside it: local parts of ASCII, letters and
# marks from anywhere and the characters it must not take (quote, <, @, a space), domains
# internationalised, `xn--` or `--`, with a mark after the @, a bracket, a special-use name,
# or long enough to cross 254 octets once IDNA-encoded.
_LOCAL_CHARACTERS = st.characters(categories=["L", "M", "N"]) | st.sampled_from(
    _TRICKY + _ATEXT + '..."<@ \u0301\u0338'
)
_DOMAINS = st.sampled_from(
    [
        "Sähkö.fi",
        "xn--kkset-graa3f.fi",
        "XN--BCHER-KVA.FI",
        "Kone--Oy.fi",
        "ääkköset.fi",
        "firma",
        "firma.local",
        "\u0301firma.fi",
        "[127.0.0.1]",
        "firma.fi>",
        "",
        "ΕΛΛΆΔΑ.ΕΛ",
        "xn--zz.fi",
        "a-.fi",
        "b\u00fccher." + "ä" * 60 + ".fi",
        "firma\u3002fi",
        "faß.de",
    ]
)
domain_shaped = st.builds(
    lambda local, domain, padding: padding + local + "@" + domain,
    st.text(_LOCAL_CHARACTERS, min_size=0, max_size=16),
    _DOMAINS,
    st.sampled_from(["", "", "", "x" * 170, "x" * 230]),
)


@settings(PROPERTY, max_examples=1500)
@given(domain_shaped | international | near_valid_ascii())
def test_the_domain_path_agrees_with_email_validator(raw):
    """Whatever the domain path decides, email-validator decides the same, in the very same
    normal form or with the very same reason."""
    remembered = _verdict(_by_domain_forms, raw)
    event("domain path" if remembered is not None else "slow path")
    assert remembered is None or remembered == _verdict(_normalise_slow, raw)


@settings(PROPERTY, max_examples=100)
@given(st.lists(near_valid_ascii().map(str.strip) | international | st.just(""), max_size=12))
def test_normalise_all_agrees_with_normalise_on_lists(stripped):
    assert normalise_all(stripped) == _one_by_one(stripped)
