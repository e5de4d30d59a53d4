import pytest

from suppress.csvfiles import CsvError, CsvFile, sniff_separator


def rows_of(path):
    with CsvFile(path) as table:
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
