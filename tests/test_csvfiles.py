import csv
import io
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suppress.csvfiles import CsvError, CsvFile, sniff_separator, unpadded


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
            written = io.StringIO()
            csv.writer(written, delimiter=separator).writerow(record.fields)
            assert written.getvalue() == record.text + "\r\n"


def test_raw_chunks_leave_a_plain_line_unsplit_and_give_any_other_its_fields(write_csv):
    path = write_csv('email;note\na@b.fi;x\n"b@b.fi";y\n\nc@b.fi\n')
    with CsvFile(path) as table:
        (chunk,) = table.raw_chunks(10)
    assert chunk.lines == [2, 3, 5]
    assert chunk.texts == ["a@b.fi;x", "", ""]
    assert chunk.others == {
        1: (["b@b.fi", "y"], None),
        2: (["c@b.fi"], "1 fields where the header has 2"),
    }


def test_raw_chunks_come_size_rows_at_a_time(write_csv):
    path = write_csv("email\n" + "a@b.fi\n" * 5)
    with CsvFile(path) as table:
        assert [len(chunk.lines) for chunk in table.raw_chunks(2)] == [2, 2, 1]


@settings(deadline=None, max_examples=500)
@given(st.sampled_from([",", ";", "\t"]), st.text(alphabet="ab ä,;\t\xa0\x1f", min_size=1))
def test_a_line_is_unpadded_only_when_no_field_has_white_space_to_strip(separator, text):
    """Exact for a line whose only white space is spaces; a tab or the like anywhere makes the
    line count as padded, which only costs writing it out with the csv module."""
    padded = any(field != field.strip() for field in text.split(separator))
    if padded or not text.replace(separator, "").isprintable():
        assert not unpadded(separator)(text)
    else:
        assert unpadded(separator)(text)
