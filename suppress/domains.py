"""Domain patterns: what a domain suppression is written as, and which addresses it covers.

A pattern is a domain, ``example.fi``, covering addresses at exactly that domain, or a domain
after ``*.``, ``*.example.fi``, covering every subdomain of it at any depth (``x.example.fi``,
``a.b.example.fi``) but not ``example.fi`` itself, as a DNS wildcard does; so the two are told
apart, and a whole company is both. Patterns take the normal form of an address's domain
(lower-case, IDNA-encoded), so that a rule and an address meet as plain strings.

This module is pure: no Flask, no database. Storing and lifting the rules is
``suppressions.domains``'s; this module parses them and matches addresses against them in memory.
"""

import functools
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import idna
from publicsuffixlist import PublicSuffixList

WILDCARD = "*."


class InvalidPattern(ValueError):
    """The text is not a domain pattern; the message says why, never quoting an address."""


class DomainRule(NamedTuple):
    """An active domain suppression, as matching needs it and a reject's detail names it."""

    pattern: str
    scope: str
    reason: str

    def __str__(self) -> str:
        return f"domain {self.pattern} ({self.reason}, {self.scope})"


def normalise_pattern(text: str, *, allow_public_suffix: bool = False) -> str:
    """The normal form of a domain pattern, or InvalidPattern saying what is wrong.

    A pattern that covers a public suffix (``fi``, ``*.fi``, ``co.uk``, ``*.co.uk``: a whole
    country or registry) is refused unless ``allow_public_suffix``: one slip of the keyboard
    would otherwise stop the mail to every company in it. A trailing dot (the DNS root) is
    dropped, as addresses are never written with one.
    """
    pattern = text.strip()
    if "@" in pattern:
        raise InvalidPattern(
            "a domain pattern holds no '@': write example.fi or *.example.fi "
            "(to suppress one address, use 'suppressions add')"
        )
    wildcard = pattern.startswith(WILDCARD)
    domain = _ascii_domain(pattern.removeprefix(WILDCARD) if wildcard else pattern)
    normalised = WILDCARD + domain if wildcard else domain
    if not allow_public_suffix and _is_public_suffix(domain):
        what = (
            f"covers every domain registered under the public suffix {domain}"
            if wildcard
            else "is a public suffix, not an organisation's domain"
        )
        raise InvalidPattern(
            f"{normalised} {what}: allow a public suffix explicitly (--allow-public-suffix) "
            "if that is meant"
        )
    return normalised


def _ascii_domain(text: str) -> str:
    """``text`` as an address's domain is stored: lower-case ASCII, IDNA-encoded."""
    if not text or text == ".":
        raise InvalidPattern("the pattern names no domain: write example.fi or *.example.fi")
    if "*" in text:
        raise InvalidPattern("'*' may only open a pattern, as in *.example.fi")
    text = text.removesuffix(".")
    try:
        domain = idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError as error:
        raise InvalidPattern(f"not a domain name: {error}") from None
    if not domain[-1].isalpha():
        # email-validator's rule too, so no address could ever be at such a domain.
        raise InvalidPattern("not a domain name: it must end in a letter, as top-level ones do")
    return domain


def _is_public_suffix(domain: str) -> bool:
    """Whether ``domain`` is a top-level domain or a registry's suffix (ICANN's part of the
    Public Suffix List; a name the list does not know counts as a top-level domain)."""
    return "." not in domain or _public_suffixes().is_public(domain)


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    """Parsed on first use, not at import: most commands never need it."""
    return PublicSuffixList(only_icann=True)


def parent_domains(domain: str) -> Iterator[str]:
    """Each domain above ``domain``: ``a.b.fi`` gives ``b.fi``, then ``fi``."""
    _, dot, domain = domain.partition(".")
    while dot:
        yield domain
        _, dot, domain = domain.partition(".")


def covering_patterns(domain: str) -> list[str]:
    """Every pattern that covers an address at ``domain``: itself, and a wildcard per parent."""
    return [domain, *(WILDCARD + parent for parent in parent_domains(domain))]


class DomainRules:
    """Active domain rules held in memory, to test a file's addresses without a query each.

    Exact domains and wildcards' domains are two dicts, so an address costs one lookup per
    label of its domain. Where rules in several scopes share a pattern, the first one given is
    kept: give the global ones first, as a reject names the global rule.
    """

    def __init__(self, rules: Iterable[DomainRule]) -> None:
        self._exact: dict[str, DomainRule] = {}
        self._below: dict[str, DomainRule] = {}
        for rule in rules:
            wildcard = rule.pattern.startswith(WILDCARD)
            table = self._below if wildcard else self._exact
            domain = rule.pattern.removeprefix(WILDCARD)
            table.setdefault(domain, rule)

    def __bool__(self) -> bool:
        return bool(self._exact or self._below)

    def covering(self, normalised: str) -> DomainRule | None:
        """The rule that covers the (normalised) address, the most specific one; else None.

        Called once a row of a million-row file: the walk up the labels is written out here
        rather than through ``parent_domains``, whose generator would cost more than the
        lookups themselves.
        """
        domain = normalised.rpartition("@")[2]
        rule = self._exact.get(domain)
        below = self._below
        if rule is None and below:
            _, dot, domain = domain.partition(".")
            while dot and (rule := below.get(domain)) is None:
                _, dot, domain = domain.partition(".")
        return rule
