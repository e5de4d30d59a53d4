import pytest

from suppress.csvfiles import CsvError, CsvFile, separator_named, sniff_separator, text_encoding


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
