"""Specification of `suppress.domains`: the normal form of a domain pattern and what it covers."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suppress.addresses import domain_of, normalise
from suppress.domains import (
    DomainRule,
    DomainRules,
    InvalidPattern,
    covering_patterns,
    normalise_pattern,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.fi", "example.fi"),
        ("  Example.FI ", "example.fi"),
        ("*.Example.FI", "*.example.fi"),
        ("example.fi.", "example.fi"),
        ("Bücher.de", "xn--bcher-kva.de"),
        ("*.SÄHKÖ.fi", "*.xn--shk-qla6g.fi"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("firma\u3002fi", "firma.fi"),
        ("mail.example.co.uk", "mail.example.co.uk"),
    ],
)
def test_a_pattern_is_lower_cased_and_idna_encoded(text, expected):
    assert normalise_pattern(text) == expected


@pytest.mark.parametrize("domain", ["Bücher.DE", "Sähkö.fi", "firma\u3002fi", "ÄIJÄ.fi", "ß.de"])
def test_a_pattern_takes_the_form_of_an_addresss_domain(domain):
    """A rule and an address meet as plain strings, so both normalise a domain alike."""
    assert normalise_pattern(domain) == domain_of(normalise(f"matti@{domain}"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("matti@example.fi", "holds no '@'"),
        ("@example.fi", "holds no '@'"),
        ("", "names no domain"),
        ("*.", "names no domain"),
        ("example..fi", "Empty Label"),
        (".example.fi", "Empty Label"),
        ("*", "'*' may only open a pattern"),
        ("*example.fi", "'*' may only open a pattern"),
        ("mail.*.example.fi", "'*' may only open a pattern"),
        ("**.example.fi", "'*' may only open a pattern"),
        ("exa_mple.fi", "not a domain name"),
        ("ex ample.fi", "not a domain name"),
        ("-example.fi", "not a domain name"),
        ("x" * 64 + ".fi", "not a domain name"),
        (("x" * 62 + ".") * 4 + "fi", "Domain too long"),
        ("192.168.1.1", "must end in a letter"),
        ("example.123", "must end in a letter"),
    ],
)
def test_garbage_is_refused_with_the_reason(text, message):
    with pytest.raises(InvalidPattern, match=message):
        normalise_pattern(text)


def test_an_address_given_as_a_pattern_is_not_quoted_in_the_refusal():
    with pytest.raises(InvalidPattern) as refused:
        normalise_pattern("matti.meikalainen@yritys.fi")
    assert "matti" not in str(refused.value)


@pytest.mark.parametrize("text", ["fi", "*.fi", "FI", "co.uk", "*.co.uk", "com", "corp", "*.corp"])
def test_a_public_suffix_is_refused_unless_explicitly_allowed(text):
    """A bare TLD (or a registry's suffix) would suppress a whole country by one slip."""
    with pytest.raises(InvalidPattern, match=r"public suffix.*--allow-public-suffix"):
        normalise_pattern(text)
    assert normalise_pattern(text, allow_public_suffix=True) == text.lower()


@pytest.mark.parametrize(
    ("domain", "patterns"),
    [
        ("example.fi", ["example.fi", "*.fi"]),
        ("a.b.example.fi", ["a.b.example.fi", "*.b.example.fi", "*.example.fi", "*.fi"]),
    ],
)
def test_an_address_is_covered_by_its_domain_and_by_a_wildcard_on_any_parent(domain, patterns):
    assert covering_patterns(domain) == patterns


def rules(*patterns, scope="global"):
    return DomainRules(DomainRule(pattern, scope, "manual") for pattern in patterns)


@pytest.mark.parametrize(
    ("address", "exact", "wildcard"),
    [
        ("m@example.fi", True, False),
        ("m@mail.example.fi", False, True),
        ("m@a.b.example.fi", False, True),
        ("m@notexample.fi", False, False),
        ("m@example.fi.evil.com", False, False),
        ("m@example.com", False, False),
    ],
)
def test_a_domain_covers_only_itself_and_a_wildcard_only_its_subdomains(address, exact, wildcard):
    """`example.fi` and `*.example.fi` are told apart: a whole company needs both."""
    assert (rules("example.fi").covering(address) is not None) == exact
    assert (rules("*.example.fi").covering(address) is not None) == wildcard


def test_the_most_specific_rule_and_the_first_scope_given_are_named():
    held = DomainRules(
        [
            DomainRule("*.example.fi", "global", "manual"),
            DomainRule("*.mail.example.fi", "news", "objected"),
            DomainRule("*.mail.example.fi", "global", "complained"),
            DomainRule("x.mail.example.fi", "news", "manual"),
        ]
    )
    assert str(held.covering("m@x.mail.example.fi")) == "domain x.mail.example.fi (manual, news)"
    assert str(held.covering("m@y.mail.example.fi")) == "domain *.mail.example.fi (objected, news)"
    assert str(held.covering("m@mail.example.fi")) == "domain *.example.fi (manual, global)"


def test_no_rules_is_false_and_covers_nothing():
    assert not rules()
    assert rules().covering("m@example.fi") is None


_LABELS = st.sampled_from(["a", "b", "fi", "xn--bcher-kva"])
_DOMAINS = st.lists(_LABELS, min_size=1, max_size=4).map(".".join)


@given(_DOMAINS, st.lists(st.tuples(st.booleans(), _DOMAINS), max_size=6))
def test_rules_in_memory_cover_what_the_covering_patterns_name(domain, written):
    """The in-memory test (clean, imports) and the indexed query (check) agree."""
    patterns = {("*." if wildcard else "") + apex for wildcard, apex in written}
    expected = patterns & set(covering_patterns(domain))
    found = rules(*patterns).covering(f"m@{domain}")
    assert (found is not None) == bool(expected)
    assert found is None or found.pattern in expected
