"""Email addresses: the one normal form, its hash, and the address kinds (DESIGN §4, R-FI-2).

Every path that takes an address in (import, clean, lookup, webhook, unsubscribe link, API)
goes through `normalise`, so two spellings of one mailbox always meet on one `email_hash`.
The normal form lower-cases the whole address, IDNA-encodes the domain and keeps dots and
`+tags` (folding them is provider-specific and would merge distinct people).

This module is pure: no Flask, no database, no DNS. It never puts an address into an exception
message, because those messages end up in logs.
"""

import hashlib
import re
import unicodedata
from functools import lru_cache

import email_validator
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from email_validator.syntax import validate_email_domain_name, validate_email_local_part

ROLE = "role"
CONSUMER = "consumer"
B2B = "b2b"

# RFC 5321 4.5.3.1.3 with errata 1690: 254 octets. email-validator enforces the same limit.
MAX_ADDRESS_LENGTH = 254
# SHA-256 digests, as ``email_digest`` gives them; ``email_digests`` packs them this wide.
DIGEST_BYTES = 32
NO_DIGEST = bytes(DIGEST_BYTES)
# Distinct domains whose email-validator verdict is remembered (``_domain_forms``): a file's
# internationalised addresses come from few domains, and checking one costs ~30 µs.
REMEMBERED_DOMAINS = 4096

ROLE_LOCAL_PARTS: frozenset[str] = frozenset(
    {
        # R-FI-2 names these.
        "info",
        "sales",
        "myynti",
        "asiakaspalvelu",
        "toimisto",
        "laskutus",
        "office",
        "contact",
        # Shared function mailboxes in English and Finnish.
        "abuse",
        "accounting",
        "accounts",
        "admin",
        "asiakastuki",
        "billing",
        "booking",
        "careers",
        "contact-us",
        "customerservice",
        "do-not-reply",
        "donotreply",
        "enquiries",
        "feedback",
        "finance",
        "hallinto",
        "hankinnat",
        "hello",
        "help",
        "helpdesk",
        "hostmaster",
        "hr",
        "huolto",
        "inquiries",
        "invoices",
        "jobs",
        "kirjaamo",
        "kirjanpito",
        "laskut",
        "marketing",
        "markkinointi",
        "media",
        "no-reply",
        "noreply",
        "orders",
        "ostolaskut",
        "palaute",
        "postmaster",
        "press",
        "privacy",
        "purchasing",
        "reception",
        "rekry",
        "rekrytointi",
        "security",
        "service",
        "support",
        "talous",
        "team",
        "tiedotus",
        "tietosuoja",
        "tilaukset",
        "tuki",
        "varaukset",
        "vastaanotto",
        "verkkokauppa",
        "viestinta",
        "webmaster",
        "webshop",
    }
)

CONSUMER_DOMAINS: frozenset[str] = frozenset(
    {
        # International free mail.
        "aol.com",
        "gmail.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "googlemail.com",
        "hotmail.co.uk",
        "hotmail.com",
        "hotmail.fi",
        "icloud.com",
        "live.com",
        "live.fi",
        "mac.com",
        "mail.com",
        "me.com",
        "msn.com",
        "outlook.com",
        "pm.me",
        "proton.me",
        "protonmail.com",
        "tuta.io",
        "tutanota.com",
        "web.de",
        "yahoo.co.uk",
        "yahoo.com",
        "ymail.com",
        # Finnish free mail and ISP consumer mailboxes (R-FI-2).
        "anvianet.fi",
        "dnainternet.net",
        "elisanet.fi",
        "kolumbus.fi",
        "luukku.com",
        "netti.fi",
        "pp.inet.fi",
        "saunalahti.fi",
        "suomi24.fi",
        "welho.com",
    }
)


class InvalidAddress(ValueError):
    """The input is not an address we can store; the message says why, never what."""


# The fast path. It takes only plain-ASCII input, lower-cased first, and accepts a subset of
# what `validate_email` (with the options pinned in `_VALIDATION_OPTIONS`) accepts, in the very
# form the slow path returns. Each piece and the email-validator 2.4 check it stays inside:
# - the whole string is one address: no space, `<`, `"` or second `@`, so there is no display
#   name and no quoted local part (`split_email`);
# - local part: RFC 5322 dot-atom over atext, exactly the `DOT_ATOM_TEXT` rule. Its length is
#   not limited: email-validator checks the 64-octet limit only in strict mode, which we do not
#   use, so the slow path would accept the same local part;
# - domain labels: letters, digits and single inner hyphens, 1-63 octets, so no leading,
#   trailing or doubled dot or hyphen, and no `--` at all, which rules out both the R-LDH check
#   and every `xn--` (IDNA) label; those go to the slow path;
# - at least two labels, and the top-level label is 2-63 letters, so the domain has a period
#   and ends in a letter;
# - the top-level label is not the last label of any special-use name email-validator rejects
#   (`localhost`, `.local`, `.test`, `.onion`, `.arpa`, ...), so all of those take the slow path;
# - `_normalise_fast` checks the 254-octet limit (ASCII, so characters are octets).
# Lower-case ASCII letters, digits, `-` and `.` are unchanged by UTS-46 mapping, so the domain
# comes back from email-validator as given. tests/test_addresses.py checks all of this against
# email-validator itself with hypothesis. Possessive quantifiers: nothing here needs
# backtracking (atext has no `.` or `@`; a label always ends at a `.`), and they halve the time.
_ATEXT = r"a-z0-9!#$%&'*+/=?^_`{|}~-"
_SPECIAL_USE_TLDS = "|".join(
    sorted(
        {re.escape(name.rpartition(".")[2]) for name in email_validator.SPECIAL_USE_DOMAIN_NAMES}
    )
)
_DOT_ATOM = rf"[{_ATEXT}]++(?:\.[{_ATEXT}]++)*+"
_FAST_ADDRESS = re.compile(
    _DOT_ATOM + r"@(?:(?=[a-z0-9-]{1,63}+\.)[a-z0-9]++(?:-[a-z0-9]++)*+\.)++"
    rf"(?!(?:{_SPECIAL_USE_TLDS})\Z)[a-z]{{2,63}}"
)
_fast_match = _FAST_ADDRESS.fullmatch
# A lower-case local part email-validator takes as it is: the fast path's.
_plain_local = re.compile(_DOT_ATOM).fullmatch

# Pinned, so that a change to email-validator's module-level defaults elsewhere in the process
# cannot make the slow path disagree with the fast path.
_VALIDATION_OPTIONS = {
    "allow_smtputf8": True,
    "allow_empty_local": False,
    "allow_quoted_local": False,
    "allow_domain_literal": False,
    "allow_display_name": False,
    "strict": False,
    "check_deliverability": False,
    "test_environment": False,
    "globally_deliverable": True,
}

# email-validator puts the detail from idna and ipaddress, which can quote a label or an IP
# literal, in parentheses, and lists the offending characters after the last ": ". Both are cut
# (`_reason`); a bare "(3 characters too many)" is kept: it helps and holds nothing of the address.
_DETAIL_IN_PARENTHESES = re.compile(
    r"\s*\((?!\d+(?:-\d+)? (?:character|byte)s? too many).*\)", re.DOTALL
)


def normalise(raw: str) -> str:
    """Return the normal form of `raw`, or raise InvalidAddress saying why it has none."""
    return _normalise_fast(raw) or _by_domain_forms(raw) or _normalise_slow(raw)


def normalise_all(stripped: list[str]) -> tuple[list[str], dict[int, str]]:
    """``normalise`` of each address, none with blanks around it: the normal forms ("" for an
    empty address and an invalid one) and, by position, why each invalid one is.

    For a clean's chunks, a million addresses: the fast path's test runs over the whole list
    at once, and only the addresses it is unsure of are taken one by one.
    """
    normalised = [*map(str.lower, stripped)]
    unsure = [index for index, match in enumerate(map(_fast_match, normalised)) if match is None]
    # Lower-casing makes one character ASCII, the Kelvin sign; no valid address is that long.
    odd = [index for index, ascii in enumerate(map(str.isascii, stripped)) if not ascii]
    if max(map(len, stripped), default=0) > MAX_ADDRESS_LENGTH:
        odd += _too_long(stripped)
    if odd:
        unsure = sorted({*unsure, *odd})
    invalid: dict[int, str] = {}
    for index in unsure:
        if address := stripped[index]:
            try:
                normalised[index] = _by_domain_forms(address) or _normalise_slow(address)
            except InvalidAddress as error:
                normalised[index] = ""
                invalid[index] = str(error)
    return normalised, invalid


def _too_long(stripped: list[str]) -> list[int]:
    return [index for index, address in enumerate(stripped) if len(address) > MAX_ADDRESS_LENGTH]


def normalise_and_hash(raw: str) -> tuple[str, str]:
    """Return `(normalise(raw), email_hash(...))`: the one call bulk imports make per row."""
    normalised = _normalise_fast(raw) or _by_domain_forms(raw) or _normalise_slow(raw)
    return normalised, email_hash(normalised)


def email_hash(normalised: str) -> str:
    """Hex SHA-256 of the UTF-8 normalised address: the key suppressions survive erasure by."""
    return hashlib.sha256(normalised.encode()).hexdigest()


def email_digest(normalised: str) -> bytes:
    """The SHA-256 digest that ``email_hash`` spells in hex, for tables kept in memory."""
    return hashlib.sha256(normalised.encode()).digest()


def email_digests(normalised: list[str]) -> bytes:
    """``email_digest`` of each normal form, DIGEST_BYTES each, packed; NO_DIGEST for ""."""
    sha256 = hashlib.sha256
    return b"".join([sha256(form.encode()).digest() if form else NO_DIGEST for form in normalised])


def domain_of(normalised: str) -> str:
    """The (IDNA ASCII) domain of a normalised address."""
    return normalised.rpartition("@")[2]


def classify(
    normalised: str,
    role_local_parts: frozenset[str] = ROLE_LOCAL_PARTS,
    consumer_domains: frozenset[str] = CONSUMER_DOMAINS,
) -> str:
    """Return ROLE, CONSUMER or B2B for a normalised address (R-FI-2); sets are lower-case.

    A consumer domain wins over a role local part: `info@gmail.com` is a free-mail box a natural
    person opened for themselves, so it is not a company's address and the B2B opt-out regime
    does not cover it; calling it consumer errs on the side of asking for consent. A subdomain
    of a consumer domain is consumer too, because the provider owns the whole zone and hands out
    mailboxes on it to individuals (e.g. `koti.luukku.com`); no business can own such a name.
    The role test ignores a `+tag`, since `info+tilaukset@` reaches the same shared mailbox.
    """
    local, _, domain = normalised.rpartition("@")
    while True:
        if domain in consumer_domains:
            return CONSUMER
        _, dot, domain = domain.partition(".")
        if not dot:
            break
    if local.partition("+")[0] in role_local_parts:
        return ROLE
    return B2B


def _normalise_fast(raw: object) -> str | None:
    """The normal form of a plain-ASCII address in the common shape, or None if unsure."""
    if not isinstance(raw, str):
        return None
    stripped = raw.strip()
    if not stripped.isascii() or len(stripped) > MAX_ADDRESS_LENGTH:
        return None
    lowered = stripped.lower()
    return lowered if _fast_match(lowered) else None


def _by_domain_forms(raw: object) -> str | None:
    """The slow path's answer (or refusal) for an address in the plain ``local@domain`` shape,
    with the domain checked by email-validator once per distinct domain; None when unsure.

    That shape, a local part with no quote, ``<`` or ``@``, is the one `validate_email` splits
    at its only ``@`` with no display name and no quoting (no character combines with an
    ``@``); it then checks the local part (``_local_forms``), the domain on its own
    (`validate_email_domain_name`) and last the three lengths below, one too long being left
    to it for its wording. Internationalised and ``xn--`` addresses take this path.
    """
    if not isinstance(raw, str) or len(stripped := raw.strip()) > MAX_ADDRESS_LENGTH:
        return None
    local, _, domain = stripped.rpartition("@")
    if not local or "@" in local or '"' in local or "<" in local:
        return None
    if not domain or (domain.startswith("[") and domain.endswith("]")):
        return None
    local = local.lower()
    local_part, ascii_local_part = _local_forms(local)
    forms = _domain_forms(domain)
    if isinstance(forms, str):
        raise InvalidAddress(_reason(forms))
    unicode_domain, ascii_domain = forms
    lengths = (
        f"{local}@{domain}",
        f"{local_part}@{unicode_domain}",
        f"{ascii_local_part or local_part}@{ascii_domain}",
    )
    if any(len(address.encode()) > MAX_ADDRESS_LENGTH for address in lengths):
        return None
    return local_part + "@" + ascii_domain


def _local_forms(local: str) -> tuple[str, str | None]:
    """The local part's normal form and its ASCII form (None if it has none), as
    `validate_email` makes them of an unquoted one: checked, then in Unicode NFC checked
    again, then lower-cased if it is one of RFC 2142's mailbox names; a refusal raises."""
    if _plain_local(local):
        return local, local
    options = {
        "allow_smtputf8": _VALIDATION_OPTIONS["allow_smtputf8"],
        "allow_empty_local": _VALIDATION_OPTIONS["allow_empty_local"],
        "quoted_local_part": False,
        "strict": _VALIDATION_OPTIONS["strict"],
    }
    try:
        checked = validate_email_local_part(local, **options)
    except EmailNotValidError as error:
        raise InvalidAddress(_reason(str(error))) from None
    composed = unicodedata.normalize("NFC", local)
    if composed != local:
        try:
            checked = validate_email_local_part(composed, **options)
        except EmailNotValidError as error:
            raise InvalidAddress(_reason(f"After Unicode normalization: {error}")) from None
    local_part, ascii_local_part = checked["local_part"], checked["ascii_local_part"]
    if ascii_local_part is not None and ascii_local_part.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
        return local_part.lower(), ascii_local_part.lower()
    return local_part, ascii_local_part


@lru_cache(maxsize=REMEMBERED_DOMAINS)
def _domain_forms(domain: str) -> tuple[str, str] | str:
    """email-validator's Unicode and IDNA ASCII forms of a domain, or its complaint."""
    try:
        checked = validate_email_domain_name(
            domain,
            test_environment=_VALIDATION_OPTIONS["test_environment"],
            globally_deliverable=_VALIDATION_OPTIONS["globally_deliverable"],
        )
    except EmailNotValidError as error:
        return str(error)
    return checked["domain"], checked["ascii_domain"]


def _normalise_slow(raw: object) -> str:
    """The normal form by email-validator, for everything the fast path is unsure of.

    The local part is lower-cased *before* validation, so email-validator checks (Unicode NFC,
    unsafe characters, the 254-octet limit) the very string we store: lower-casing can lengthen
    it. The domain is left to email-validator's UTS-46 mapping, which is IDNA's own case fold.
    """
    if not isinstance(raw, str):
        raise InvalidAddress("The email address must be text.")
    stripped = raw.strip()
    if len(stripped) > MAX_ADDRESS_LENGTH:
        # No valid address is longer; also spares email-validator pathological input.
        raise InvalidAddress(
            f"The email address is too long (over {MAX_ADDRESS_LENGTH} characters)."
        )
    local, at, domain = stripped.rpartition("@")
    try:
        validated = validate_email(local.lower() + at + domain, **_VALIDATION_OPTIONS)
    except EmailNotValidError as error:
        # `from None`: the original message may quote the address, and tracebacks are logged.
        raise InvalidAddress(_reason(str(error))) from None
    return validated.local_part + "@" + validated.ascii_domain


def _reason(message: str) -> str:
    """email-validator's message without any part of the address in it."""
    message = _DETAIL_IN_PARENTHESES.sub("", message)
    head, colon, _ = message.rpartition(": ")
    return (head if colon else message).rstrip(".") + "."
