"""clean_rows(): one verdict per row, in order, by the first rule that applies."""

import csv
import hashlib
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from suppress import clean, lists, suppressions, tokens
from suppress.addresses import normalise
from suppress.clean import clean_rows, email_column, verdicts
from suppress.csvfiles import CsvError, CsvFile
from suppress.models import Address, Subscription, db
from suppress.suppressions import packed


def cleaned(path, mailing_list=None, links=False, column=None, chunk_rows=20_000):
    with CsvFile(path) as table:
        verdicts = clean_rows(
            table.records(),
            width=len(table.header),
            email_index=email_column(table.header, column),
            mailing_list=mailing_list,
            links=links,
            chunk_rows=chunk_rows,
        )
        return [(line, fields, reason, detail) for line, fields, reason, detail in verdicts]


def md5(address):
    return hashlib.md5(address.encode()).hexdigest()


def reasons(path, **options):
    return [(fields[0], reason) for _, fields, reason, _ in cleaned(path, **options)]


def subscribe(email, mailing_list, basis, **details):
    address = lists.ensure_address(email)
    for name, value in details.items():
        setattr(address, name, value)
    db.session.flush()
    now = datetime.now(UTC)
    db.session.add(
        Subscription(
            address_id=address.id,
            list_id=mailing_list.id,
            status="subscribed",
            basis=basis,
            source="test",
            subscribed_at=now,
            updated_at=now,
        )
    )
    db.session.flush()


def test_rows_keep_their_order_columns_and_values(app, write_csv):
    path = write_csv("Name,Email,Note\nAnna, a@b.fi ,x\nBo,b@b.fi,y\n")
    assert cleaned(path) == [
        (2, ["Anna", "a@b.fi", "x"], None, ""),
        (3, ["Bo", "b@b.fi", "y"], None, ""),
    ]


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("n,email\nx,not-an-address\n", "An email address must have an @-sign."),
        ("n,email\nx,\n", "no address"),
        ("n,email\nx\n", "1 fields where the header has 2"),
        ("n,email\nx,a@b.fi,extra\n", "3 fields where the header has 2; cut off: extra"),
    ],
)
def test_a_row_without_a_usable_address_is_invalid_and_kept_at_the_header_width(
    app, write_csv, text, detail
):
    ((_, fields, reason, got),) = cleaned(write_csv(text))
    assert (len(fields), reason, got) == (2, "invalid", detail)


def test_a_repeat_in_another_case_is_a_duplicate_naming_the_first_line(app, write_csv):
    path = write_csv("email\nA@B.fi\n\nx@y.fi\na@b.FI\n")
    assert cleaned(path)[-1] == (5, ["a@b.FI"], "duplicate", "same address as line 2")


def test_blank_rows_are_skipped_not_counted(app, write_csv):
    assert reasons(write_csv("n;email\n;\n\na;a@b.fi\n")) == [("a", None)]


def test_suppressed_addresses_name_the_suppression_global_first(app, write_csv):
    lists.create_list("news", "News")
    suppressions.suppress("a@b.fi", reason="unsubscribed", source="test", scope="news")
    suppressions.suppress("a@b.fi", reason="complained", source="test")
    suppressions.suppress("c@b.fi", reason="unsubscribed", source="test", scope="news")
    path = write_csv("email\na@b.fi\nc@b.fi\n")
    assert [row[2:] for row in cleaned(path)] == [
        ("suppressed", "global: complained"),
        (None, ""),
    ]
    news = lists.find_list("news")
    assert [row[2:] for row in cleaned(path, mailing_list=news)] == [
        ("suppressed", "global: complained"),
        ("suppressed", "news: unsubscribed"),
    ]


def test_idn_and_mixed_case_match_the_stored_suppression(app, write_csv):
    suppressions.suppress("x@bücher.de", reason="bounced", source="test")
    assert reasons(write_csv("email\n X@BÜCHER.DE \n")) == [("X@BÜCHER.DE", "suppressed")]


def test_a_restricted_address_is_rejected(app, write_csv):
    """R-GDPR-8: a restricted address is not processed for marketing."""
    lists.ensure_address("r@b.fi").restricted = True
    db.session.flush()
    assert reasons(write_csv("email\nr@b.fi\n")) == [("r@b.fi", "restricted")]


def test_list_rules_basis_consent_and_audience(app, write_csv):
    """R-GDPR-1, R-FI-1, R-FI-5: basis on consumer lists, consent for consumers, b2b lists."""
    shop = lists.create_list("shop", "Shop", audience="consumer")
    b2b = lists.create_list("trade", "Trade", audience="b2b")
    similar = lists.create_list("club", "Club", audience="consumer", similar_products=True)
    consented = {"consent_at": datetime(2025, 1, 1, tzinfo=UTC), "kind": "consumer"}
    subscribe("ok@gmail.com", shop, "consent", **consented)
    subscribe("nocons@gmail.com", shop, "customer_relationship")
    subscribe("nocons@gmail.com", club := similar, "customer_relationship")
    path = write_csv("email\nok@gmail.com\nnocons@gmail.com\nnew@gmail.com\nsales@firm.fi\n")
    assert [reason for _, reason in reasons(path, mailing_list=shop)] == [
        None,
        "no_consent",
        "no_basis",
        "no_basis",
    ]
    assert [reason for _, reason in reasons(path, mailing_list=club)][:3] == [
        "no_basis",
        None,
        "no_basis",
    ]
    assert [reason for _, reason in reasons(path, mailing_list=b2b)] == [
        "wrong_audience",
        "no_consent",
        "no_consent",
        None,
    ]


def test_without_a_list_only_suppression_and_restriction_apply(app, write_csv):
    assert reasons(write_csv("email\nnew@gmail.com\n")) == [("new@gmail.com", None)]


def test_every_row_gets_one_verdict_across_chunks_in_order(app, write_csv):
    suppressions.suppress("u7@b.fi", reason="manual", source="test")
    rows = [f"u{n % 40}@b.fi" for n in range(100)] + ["bad"]
    verdicts = cleaned(write_csv("email\n" + "\n".join(rows) + "\n"), chunk_rows=7)
    assert [fields[0] for _, fields, _, _ in verdicts] == rows
    assert [reason for _, _, reason, _ in verdicts].count(None) == 39
    assert verdicts[7][2] == "suppressed"
    assert verdicts[47][2] == "duplicate"


def test_clean_writes_nothing_without_links(app, write_csv):
    lists.create_list("shop", "Shop", audience="consumer")
    before = db.session.scalar(select(func.count()).select_from(Address))
    cleaned(write_csv("email\na@b.fi\n"), mailing_list=lists.find_list("shop"))
    assert db.session.scalar(select(func.count()).select_from(Address)) == before


def test_links_are_added_to_kept_rows_only(app, write_csv):
    suppressions.suppress("s@b.fi", reason="manual", source="test")
    kept, rejected = cleaned(write_csv("email\nk@b.fi\ns@b.fi\n"), links=True)
    url, header, post = kept[1][1:]
    assert "/u/" in url
    assert header.startswith(f"<{url}>")
    assert post == "List-Unsubscribe=One-Click"
    assert rejected[1] == ["s@b.fi"]


def test_the_email_column_is_found_by_name_in_any_case_or_named(app):
    assert email_column(["Name", "E-Mail", "EMAIL"]) == 2
    assert email_column(["Name", "E-Mail"], "e-mail") == 1
    with pytest.raises(
        CsvError, match="no 'email' column in the header \\(found 'Name', 'Mail'\\)"
    ):
        email_column(["Name", "Mail"])


def test_an_address_on_a_partners_hashed_list_is_suppressed_naming_the_list(app, write_csv):
    digest = hashlib.sha256(normalise("x@bücher.de").encode()).hexdigest()  # the punycode form
    suppressions.import_hashed_suppressions([digest], "sha256", "affiliates.csv", print)
    path = write_csv("email\n X@BÜCHER.DE \nb@b.fi\n")
    assert [row[2:] for row in cleaned(path)] == [
        ("suppressed", "hashed list: affiliates.csv"),
        (None, ""),
    ]


def test_a_stored_suppression_is_named_before_a_hashed_list(app, write_csv):
    suppressions.suppress("a@b.fi", reason="complained", source="test")
    suppressions.import_hashed_suppressions([md5("a@b.fi")], "md5", "partner", print)
    assert [row[2:] for row in cleaned(write_csv("email\na@b.fi\n"))] == [
        ("suppressed", "global: complained")
    ]


def test_hashed_suppressions_are_looked_up_once_per_chunk(app, write_csv, monkeypatch):
    suppressions.import_hashed_suppressions([md5("c@b.fi")], "md5", "partner", print)
    calls = []
    real = verdicts.hashed_matches
    monkeypatch.setattr(verdicts, "hashed_matches", lambda found: calls.append(1) or real(found))
    path = write_csv("email\na@b.fi\nb@b.fi\nc@b.fi\nd@b.fi\n")
    assert [reason for _, _, reason, _ in cleaned(path, chunk_rows=2)] == [
        None,
        None,
        "suppressed",
        None,
    ]
    assert len(calls) == 2


# Every kind of row, in a file as Finnish Excel saves it: plain lines, padded fields (spaces, a
# tab, a no-break space), quoted fields with the separator and with quotes, a repeat in another
# case, no address, blank rows plain, quoted and padded, a malformed row, and one whose detail
# holds the separator.
EVERY_KIND = (
    "Name;Email;Company;Note\r\n"
    "Anna;a@b.fi;Oy Ab;x\r\n"
    "Bo; b@b.fi ;Oy;y\r\n"
    "Cid;A@B.fi;Oy;z\r\n"
    'Dan;s@b.fi;"Kone; Oy";w\r\n'
    "Eve;not-an-address;Oy;v\r\n"
    "Fay;;Oy;u\r\n"
    ";;;\r\n"
    '"";;;\r\n'
    '"Kay";;Oy;p\r\n'
    "Gus;g@b.fi;Oy\r\n"
    "Hal;r@b.fi;Oy\t;t\r\n"
    'Ida;h@b.fi;"Oy ""X""";s\r\n'
    "Jan;n@b.fi;Oy\xa0;q\r\n"
    "Kim;k@b.fi;Oy;o\r\n"
    "Lea;l@b.fi;Oy Ab;m\r\n"
    "Mia;m@rival.fi;Oy;n\r\n"
    " ; ;\t; \r\n"
    "Ole; ;Oy;r\r\n"
)


def written_as_rows(path):
    """The reference: clean_rows() of the file, written by the csv module."""
    with CsvFile(path) as table:
        index = email_column(table.header)
        verdicts = clean_rows(table.records(), width=len(table.header), email_index=index)
        kept, rejected = io.StringIO(), io.StringIO()
        keep = csv.writer(kept, delimiter=table.separator)
        reject = csv.writer(rejected, delimiter=table.separator)
        keep.writerow(table.header)
        reject.writerow([*table.header, *clean.REJECT_COLUMNS])
        for row in verdicts:
            if row.reason is None:
                keep.writerow(row.fields)
            else:
                reject.writerow([*row.fields, row.reason, row.detail])
    return kept.getvalue(), rejected.getvalue()


def written_in_chunks(path, size, padded_unsplit=False):
    with CsvFile(path) as table:
        chunks = clean.cleaned_chunks(
            table.raw_chunks(size, padded_unsplit=padded_unsplit),
            width=len(table.header),
            email_index=email_column(table.header),
            separator=table.separator,
        )
        kept, rejected = io.StringIO(), io.StringIO()
        counts = clean.write_cleaned(
            chunks, kept, rejected, table.header, table.separator, links=False
        )
    return kept.getvalue(), rejected.getvalue(), counts


def every_kind(write_csv):
    suppressions.suppress("s@b.fi", reason="complained", source="test")
    suppressions.suppress_domain("rival.fi", reason="manual", source="test")
    lists.ensure_address("r@b.fi").restricted = True
    db.session.flush()
    digest = md5("k@b.fi")
    suppressions.import_hashed_suppressions([digest], "md5", "partner; 2026", print)
    return write_csv(EVERY_KIND)


@pytest.mark.parametrize("padded_unsplit", [False, True])
@pytest.mark.parametrize("size", [3, 1_000])
def test_a_file_written_a_chunk_at_a_time_is_its_rows_as_the_csv_module_writes_them(
    app, write_csv, size, padded_unsplit
):
    """In one chunk or in many (the worker, the register in memory), a row copied as it was
    read or written out again: the same bytes as writing clean_rows() with the csv module,
    whether the lines with a field to strip are split when read or told apart by the first
    look."""
    path = every_kind(write_csv)
    kept, rejected, counts = written_in_chunks(path, size, padded_unsplit)
    assert (kept, rejected) == written_as_rows(path)
    assert kept.splitlines()[1:] == [
        "Anna;a@b.fi;Oy Ab;x",
        "Bo;b@b.fi;Oy;y",
        'Ida;h@b.fi;"Oy ""X""";s',
        "Jan;n@b.fi;Oy;q",
        "Lea;l@b.fi;Oy Ab;m",
    ]
    assert counts == {
        None: 5,
        "invalid": 5,
        "duplicate": 1,
        "suppressed": 3,
        "restricted": 1,
    }
    assert 'Kim;k@b.fi;Oy;o;suppressed;"hashed list: partner; 2026"' in rejected


def test_a_long_file_past_the_in_memory_limit_is_looked_up_chunk_by_chunk(
    app, write_csv, monkeypatch
):
    path = every_kind(write_csv)
    expected = written_in_chunks(path, 1_000)
    monkeypatch.setattr(packed, "IN_MEMORY_LIMIT", 0)
    assert written_in_chunks(path, 3) == expected


def test_a_long_file_gets_the_list_rules_of_a_short_one(app, write_csv):
    """R-GDPR-1, R-FI-1, R-FI-5 whether the file takes one chunk or many."""
    shop = lists.create_list("shop", "Shop", audience="consumer")
    subscribe("ok@gmail.com", shop, "consent", consent_at=datetime(2025, 1, 1, tzinfo=UTC))
    suppressions.suppress("gone@b.fi", reason="unsubscribed", source="test", scope="shop")
    rows = ["ok@gmail.com", "new@gmail.com", "gone@b.fi", "sales@firm.fi", "OK@gmail.com"]
    path = write_csv("email\n" + "\n".join(rows) + "\n")
    assert cleaned(path, mailing_list=shop, chunk_rows=2) == cleaned(path, mailing_list=shop)


# A file cleaned in one chunk (in place), and in chunks of one row: on the forked worker, with
# the suppressions in memory or, past the in-memory limit, looked up chunk by chunk.
@pytest.fixture(
    params=[(20_000, None), (1, None), (1, 0)],
    ids=["one chunk", "worker", "worker, looked up"],
)
def chunk_rows(request, monkeypatch):
    rows, in_memory_limit = request.param
    if in_memory_limit is not None:
        monkeypatch.setattr(packed, "IN_MEMORY_LIMIT", in_memory_limit)
    return rows


def test_an_address_in_a_suppressed_domain_is_suppressed_naming_the_rule(
    app, write_csv, chunk_rows
):
    suppressions.suppress_domain("*.rival.fi", reason="manual", source="test")
    suppressions.suppress_domain("Bücher.de", reason="objected", source="test")
    path = write_csv("email\nm@sales.rival.fi\nm@rival.fi\nX@BÜCHER.DE\nm@b.fi\n")
    assert [row[2:] for row in cleaned(path, chunk_rows=chunk_rows)] == [
        ("suppressed", "domain *.rival.fi (manual, global)"),
        (None, ""),
        ("suppressed", "domain xn--bcher-kva.de (objected, global)"),
        (None, ""),
    ]


def test_a_domain_suppression_on_a_list_applies_only_when_cleaning_for_that_list(
    app, write_csv, chunk_rows
):
    news = lists.create_list("news", "News")
    suppressions.suppress_domain("rival.fi", reason="manual", source="test", scope="news")
    path = write_csv("email\nm@rival.fi\nn@rival.fi\n")
    assert [row[2:] for row in cleaned(path, chunk_rows=chunk_rows)] == [(None, "")] * 2
    assert [row[2:] for row in cleaned(path, mailing_list=news, chunk_rows=chunk_rows)] == [
        ("suppressed", "domain rival.fi (manual, news)")
    ] * 2


def test_an_addresss_own_suppression_is_named_before_its_domains(app, write_csv, chunk_rows):
    suppressions.suppress("m@rival.fi", reason="complained", source="test")
    suppressions.suppress_domain("rival.fi", reason="manual", source="test")
    path = write_csv("email\nm@rival.fi\nn@rival.fi\n")
    assert [row[2:] for row in cleaned(path, chunk_rows=chunk_rows)] == [
        ("suppressed", "global: complained"),
        ("suppressed", "domain rival.fi (manual, global)"),
    ]


def test_a_restricted_address_is_named_by_its_suppression_first(app, write_csv, chunk_rows):
    """R-GDPR-8 comes after suppression, whichever the order the register is matched in."""
    for address in ("own@b.fi", "x@rival.fi", "hashed@b.fi", "r@b.fi"):
        lists.ensure_address(address).restricted = True
    db.session.flush()
    suppressions.suppress("own@b.fi", reason="complained", source="test")
    suppressions.suppress_domain("rival.fi", reason="manual", source="test")
    suppressions.import_hashed_suppressions([md5("hashed@b.fi")], "md5", "partner", print)
    path = write_csv("email\nown@b.fi\nx@rival.fi\nhashed@b.fi\nr@b.fi\n")
    assert [row[2:] for row in cleaned(path, chunk_rows=chunk_rows)] == [
        ("suppressed", "global: complained"),
        ("suppressed", "domain rival.fi (manual, global)"),
        ("suppressed", "hashed list: partner"),
        ("restricted", "processing of the address is restricted (GDPR Art. 18)"),
    ]


def test_domain_rules_are_read_once_per_file(app, write_csv, monkeypatch):
    suppressions.suppress_domain("rival.fi", reason="manual", source="test")
    calls = []
    real = clean.domain_rules
    monkeypatch.setattr(clean, "domain_rules", lambda slug: calls.append(slug) or real(slug))
    path = write_csv("email\na@rival.fi\nb@b.fi\nc@rival.fi\nd@b.fi\n")
    assert [reason for _, _, reason, _ in cleaned(path, chunk_rows=1)] == [
        "suppressed",
        None,
        "suppressed",
        None,
    ]
    assert calls == [None]


def test_links_on_an_http_base_url_are_refused_before_a_long_file_is_started(make_app):
    """R-OC-1: refused at once, not after the worker forked and the register was read."""
    production = make_app(TESTING=False, BASE_URL="http://u.example.fi")
    with (
        production.app_context(),
        pytest.raises(tokens.InsecureBaseURL, match="https"),
        clean.ahead_of(clean.LONG_FILE_BYTES + 1, links=True),
    ):
        pytest.fail("the clean was started")
