import csv
import io
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suppress.csvfiles import (
    OTHER_WHITE_SPACE,
    CsvError,
    CsvFile,
    padded_lines,
    separator_named,
    sniff_separator,
    text_encoding,
    unpadded,
)


def rows_of(path, **options):
    with CsvFile(path, **options) as table:
        return [(row.line, row.values, row.problem) for row in table.rows()]


@pytest.mark.parametrize(
    ("header", "separator"),
    [("email", ","), ("email,name", ","), ("email;name;note", ";"), ("email\tname", "\t")],
)
def test_separator_is_the_one_that_splits_the_header(header, separator):
    assert sniff_separator(header) == separator


def test_excel_unicode_text_is_utf16_with_tabs(write_csv):
    path = write_csv("Email\tNimi\r\nmatti@yritys.fi\tMäkinen\r\n", encoding="utf-16")
    assert rows_of(path) == [(2, {"email": "matti@yritys.fi", "nimi": "Mäkinen"}, None)]


def test_line_numbers_count_physical_lines_across_quoted_newlines(write_csv):
    path = write_csv('email,note\na@b.fi,"two\nlines"\nb@b.fi,x\n')
    assert [line for line, _, _ in rows_of(path)] == [3, 4]


def test_blank_lines_are_skipped_and_trailing_empty_fields_tolerated(write_csv):
    path = write_csv("email;note\n\na@b.fi;x;;\n")
    assert rows_of(path) == [(3, {"email": "a@b.fi", "note": "x"}, None)]


def test_progress_counts_bytes_read(write_csv):
    path = write_csv("email\n" + "a@b.fi\n" * 1000)
    with CsvFile(path) as table:
        assert table.bytes_read <= table.size
        list(table.rows())
        assert table.bytes_read == table.size


def test_a_file_that_ends_inside_a_character_is_refused(write_csv, tmp_path):
    path = tmp_path / "cut.csv"
    path.write_bytes("email\nä".encode("utf-16")[:-1])
    with pytest.raises(CsvError, match="ends in the middle"):
        CsvFile(path)


def read_by_the_csv_module(text, separator):
    """What reading the whole file with the csv module gives: the reference for records()."""
    stream = io.StringIO(text, newline="")
    width = len(next(csv.reader([stream.readline()], delimiter=separator)))
    reader = csv.reader(stream, delimiter=separator)
    records = []
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return records
        except csv.Error as error:
            records.append((reader.line_num + 1, [], f"unreadable CSV: {error}"))
            continue
        line = reader.line_num + 1
        if not fields or fields == [""]:
            continue
        if len(fields) > width and not any(field.strip() for field in fields[width:]):
            fields = fields[:width]
        problem = None
        if len(fields) != width:
            problem = f"{len(fields)} fields where the header has {width}"
        records.append((line, fields, problem))


@settings(deadline=None, max_examples=300)
@given(
    st.sampled_from([",", ";", "\t"]),
    st.text(alphabet='ab ä,;\t"\r\n\xa0', max_size=60),
)
def test_records_are_what_the_csv_module_reads_and_plain_lines_keep_their_text(separator, body):
    text = f"email{separator}name\n{body}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "list.csv"
        path.write_bytes(text.encode())
        with CsvFile(path) as table:
            records = list(table.records())
    assert [record[:3] for record in records] == read_by_the_csv_module(text, separator)
    for record in records:
        if record.text is not None:
            assert [field.strip() for field in record.fields] == record.fields
            written = io.StringIO()
            csv.writer(written, delimiter=separator).writerow(record.fields)
            assert written.getvalue() == record.text + "\r\n"


def test_raw_chunks_leave_a_plain_line_unsplit_and_give_any_other_its_fields(write_csv):
    """Plain: no quote, the header's width, and no field to strip."""
    path = write_csv('email;note\na@b.fi;x\n"b@b.fi";y\n\nc@b.fi\nd@b.fi; z\n')
    with CsvFile(path) as table:
        (chunk,) = table.raw_chunks(10)
    assert chunk.lines == [2, 3, 5, 6]
    assert chunk.texts == ["a@b.fi;x", "", "", ""]
    assert chunk.others == {
        1: (["b@b.fi", "y"], None),
        2: (["c@b.fi"], "1 fields where the header has 2"),
        3: (["d@b.fi", " z"], None),
    }


@settings(deadline=None, max_examples=300)
@given(
    st.sampled_from([",", ";"]),
    st.text(alphabet='ab ,;"\r\n', max_size=60),
    st.integers(1, 4),
)
def test_raw_chunks_of_any_size_hold_the_same_rows(separator, body, size):
    """However few lines are read together, a quoted field may run on past them."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "list.csv"
        path.write_bytes(f"email{separator}name\n{body}".encode())
        assert rows_in_chunks(path, size) == rows_in_chunks(path, 1000)


def rows_in_chunks(path, size):
    with CsvFile(path) as table:
        return [
            (line, text, chunk.others.get(position))
            for chunk in table.raw_chunks(size)
            for position, (line, text) in enumerate(zip(chunk.lines, chunk.texts, strict=True))
        ]


@pytest.mark.parametrize("size", [1, 2, 1000])
def test_a_line_longer_than_the_csv_field_limit_is_a_row_with_its_problem(write_csv, size):
    limit = csv.field_size_limit(40)
    try:
        path = write_csv(f"email,note\na@b.fi,x\nc@b.fi,{'y' * 50}\nd@b.fi,z\n")
        rows = rows_in_chunks(path, size)
    finally:
        csv.field_size_limit(limit)
    assert rows == [
        (2, "a@b.fi,x", None),
        (3, "", ([], "unreadable CSV: field larger than field limit (40)")),
        (4, "d@b.fi,z", None),
    ]


def test_rows_read_together_keep_their_places_when_blank_lines_fall_among_them(write_csv):
    path = write_csv('email,note\n\na@b.fi,x\n\n"b@b.fi",y\r\n\r\nc@b.fi\nd@b.fi,z\n')
    with CsvFile(path) as table:
        (chunk,) = table.raw_chunks(10)
    assert chunk.lines == [3, 5, 7, 8]
    assert chunk.texts == ["a@b.fi,x", "", "", "d@b.fi,z"]
    assert chunk.others == {
        1: (["b@b.fi", "y"], None),
        2: (["c@b.fi"], "1 fields where the header has 2"),
    }


def test_raw_chunks_come_size_rows_at_a_time(write_csv):
    path = write_csv("email\n" + "a@b.fi\n" * 5)
    with CsvFile(path) as table:
        assert [len(chunk.lines) for chunk in table.raw_chunks(2)] == [2, 2, 1]


@settings(deadline=None, max_examples=500)
@given(
    st.sampled_from([",", ";", "\t"]),
    st.text(alphabet="ab ä,;\t\xa0\x1f\x7f\u200b\u3000", min_size=1),
)
def test_a_line_is_unpadded_only_when_no_field_has_white_space_to_strip(separator, text):
    """Exact for a line whose only white space is spaces; a tab or the like anywhere makes the
    line count as padded, which only costs writing it out with the csv module."""
    padded = any(field != field.strip() for field in text.split(separator))
    fields = text.replace(separator, "")
    if padded or any(character.isspace() and character != " " for character in fields):
        assert not unpadded(separator)(text)
    else:
        assert unpadded(separator)(text)


def test_the_white_space_besides_the_space_is_every_character_strip_takes_off():
    every = map(chr, range(sys.maxunicode + 1))
    assert "".join(c for c in every if c.isspace() and c != " ") == OTHER_WHITE_SPACE


@pytest.mark.parametrize(
    ("name", "separator"),
    [
        (",", ","),
        (";", ";"),
        ("\t", "\t"),
        ("|", "|"),
        ("comma", ","),
        ("Semicolon", ";"),
        ("tab", "\t"),
        ("\\t", "\t"),
        ("pipe", "|"),
    ],
)
def test_a_separator_is_named_by_its_character_or_its_name(name, separator):
    assert separator_named(name) == separator


@pytest.mark.parametrize("name", ["x", ":", ",,", ",;", "", "space"])
def test_an_unknown_separator_is_refused_with_the_choices(name):
    with pytest.raises(CsvError, match=r"unknown separator .*comma, semicolon, tab or pipe"):
        separator_named(name)


@pytest.mark.parametrize("name", ["utf-8", "UTF8", "cp1252", "latin-1", "iso-8859-15", "utf-16"])
def test_any_python_text_codec_is_an_encoding(name):
    assert text_encoding(name) == name


@pytest.mark.parametrize("name", ["klingon", "", "base64", "rot13", "undefined"])
def test_an_unknown_or_non_text_codec_is_refused(name):
    with pytest.raises(CsvError, match=r"unknown encoding .*such as utf-8, cp1252 or latin-1"):
        text_encoding(name)


def test_a_named_separator_reads_a_header_the_guess_would_split_wrong(write_csv):
    path = write_csv('"Sukunimi, Etunimi";Email\r\n"Meikäläinen, Matti";matti@yritys.fi\r\n')
    with CsvFile(path) as guessed:
        assert guessed.header != ["Sukunimi, Etunimi", "Email"]
    assert rows_of(path, separator=";") == [
        (2, {"sukunimi, etunimi": "Meikäläinen, Matti", "email": "matti@yritys.fi"}, None)
    ]


def test_finnish_excel_cp1252_with_quoted_separators_newlines_and_crlf(write_csv):
    """Excel in Finland: semicolons, Windows-1252, CRLF, a note with ; and a line break."""
    path = write_csv(
        'Nimi;Email;Huomautus\r\n"Äijälä; Oy";matti@yritys.fi;"Soita\r\nensin"\r\n'
        "Pekka;pekka@yritys.fi;€\r\n",
        encoding="cp1252",
    )
    expected = [
        (
            3,
            {"nimi": "Äijälä; Oy", "email": "matti@yritys.fi", "huomautus": "Soita\r\nensin"},
            None,
        ),
        (4, {"nimi": "Pekka", "email": "pekka@yritys.fi", "huomautus": "€"}, None),
    ]
    assert rows_of(path, separator=";", encoding="cp1252") == expected
    assert rows_of(path) == expected


def test_a_named_encoding_reads_what_detection_cannot(write_csv):
    """UTF-16 without a byte-order mark looks like NUL-ridden bytes to detection."""
    path = write_csv("email\tnimi\r\nmatti@yritys.fi\tMäkinen\r\n", encoding="utf-16-le")
    with pytest.raises(CsvError, match="NUL characters"):
        CsvFile(path)
    assert rows_of(path, encoding="utf-16-le") == [
        (2, {"email": "matti@yritys.fi", "nimi": "Mäkinen"}, None)
    ]


def test_a_named_encoding_wins_over_the_windows_guess(write_csv):
    path = write_csv("email,hinta\na@b.fi,10 €\n", encoding="iso-8859-15")
    assert rows_of(path)[0][1]["hinta"] == "10 ¤"
    assert rows_of(path, encoding="iso-8859-15")[0][1]["hinta"] == "10 €"


def test_a_byte_order_mark_is_no_part_of_the_header_under_a_named_utf8(write_csv):
    path = write_csv("\ufeffEmail\na@b.fi\n")
    with CsvFile(path, encoding="utf-8") as table:
        assert table.header == ["Email"]


def test_a_named_encoding_that_does_not_decode_the_file_names_the_offset(write_csv):
    path = write_csv("email;nimi\r\nmatti@yritys.fi;Mäkinen\r\n", encoding="cp1252")
    with pytest.raises(CsvError, match="not text in utf-8: undecodable byte at offset 29"):
        CsvFile(path, encoding="utf-8")


@given(
    st.sampled_from([",", ";", "\t"]),
    st.lists(st.text(alphabet="ab ,;\t\xa0\u3000\x7f", max_size=8), min_size=1, max_size=6),
)
def test_the_lines_with_a_field_to_strip_are_found_whatever_their_neighbours(separator, texts):
    plain = unpadded(separator)
    expected = [index for index, text in enumerate(texts) if text and not plain(text)]
    assert padded_lines("\n".join(texts), texts, separator) == expected


def test_lines_with_a_field_to_strip_are_tested_one_by_one_when_there_are_many():
    texts = ["a ,b", "a,b", " a,b", "a,b\t"] * 10
    assert padded_lines("\n".join(texts), texts, ",") == [
        index for index in range(40) if index % 4 != 1
    ]
