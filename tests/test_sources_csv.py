"""CSV inputs (shellwatch.sources.csv_records) and their recognition by content (shellwatch.sources.sniff).

CSV dialect: Python's csv module, Excel dialect (https://docs.python.org/3/library/csv.html#csv.excel), which is
what Microsoft Defender's Advanced Hunting "Export" and Sentinel write: comma separator, fields with a comma, a
quote or a line break enclosed in ``"``, a quote inside written as ``""`` (RFC 4180 §2).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from conftest import shared_path
from shellwatch.sources import csv_records
from shellwatch.sources.csv_records import MAX_ROW_BYTES, read_csv
from shellwatch.sources.record import RawRecord, ReadProblem
from shellwatch.sources.sniff import sniff
from shellwatch.sources.streams import PEEK_SIZE, as_utf8


def read(content: bytes | str) -> tuple[list[RawRecord], list[ReadProblem]]:
    data = content.encode("utf-8") if isinstance(content, str) else content
    problems: list[ReadProblem] = []
    records = list(read_csv(io.BytesIO(data), "export.csv", problems.append))
    return records, problems


def rows(records: list[RawRecord]) -> list[tuple[int | None, dict[str, object]]]:
    return [(r.origin.line, r.data) for r in records]


def test_header_then_rows_with_quoting_and_line_breaks() -> None:
    content = (
        "Timestamp,DeviceName,ProcessCommandLine,ProcessId\r\n"
        '2024-05-14T09:26:17Z,web-iis01,"cmd.exe /c ""whoami /all""",7344\r\n'
        '2024-05-14T09:26:18Z,web-iis01,"powershell -c ""a,b""\r\n-enc AAAA",7345\r\n'
        "2024-05-14T09:26:19Z,web-iis01,whoami.exe,7346\r\n"
    )
    records, problems = read(content)
    assert problems == []
    assert rows(records) == [
        (
            2,
            {
                "Timestamp": "2024-05-14T09:26:17Z",
                "DeviceName": "web-iis01",
                "ProcessCommandLine": 'cmd.exe /c "whoami /all"',
                "ProcessId": "7344",
            },
        ),
        (
            3,
            {
                "Timestamp": "2024-05-14T09:26:18Z",
                "DeviceName": "web-iis01",
                "ProcessCommandLine": 'powershell -c "a,b"\r\n-enc AAAA',
                "ProcessId": "7345",
            },
        ),
        # The row after a two-line row starts on line 5.
        (
            5,
            {
                "Timestamp": "2024-05-14T09:26:19Z",
                "DeviceName": "web-iis01",
                "ProcessCommandLine": "whoami.exe",
                "ProcessId": "7346",
            },
        ),
    ]
    assert {r.shape for r in records} == {"json"}
    assert str(records[0].origin) == "export.csv:2"


def test_empty_cells_are_left_out_and_blank_lines_skipped() -> None:
    records, problems = read("\n\nA,B,C\n1,,3\n\n,,\n,2,\n")
    assert problems == []
    assert rows(records) == [(4, {"A": "1", "C": "3"}), (7, {"B": "2"})]


def test_byte_order_mark_and_padded_header_names() -> None:
    records, problems = read("\ufeff Timestamp , DeviceName\n2024-01-01T00:00:00Z,host1\n".encode())
    assert problems == []
    assert [r.data for r in records] == [{"Timestamp": "2024-01-01T00:00:00Z", "DeviceName": "host1"}]


def test_utf16_export_through_the_readers_transcoding() -> None:
    """Exports saved as "Unicode" by spreadsheet tools are UTF-16 with a byte order mark: the sniffer names the
    encoding and read_csv reads the stream as_utf8 makes of it, as the reader hands it over."""
    data = "DeviceName,FileName\nweb-iis01,cmd.exe\nwébhôte,powershell.exe\n".encode("utf-16")
    sniffed = sniff(data[:PEEK_SIZE])
    assert (sniffed.format, sniffed.encoding, sniffed.bom_length) == ("csv", "utf-16-le", 2)
    problems: list[ReadProblem] = []
    stream = as_utf8(io.BytesIO(data), sniffed.encoding, sniffed.bom_length)
    records = list(read_csv(stream, "u16.csv", problems.append))
    assert problems == []
    assert [r.data for r in records] == [
        {"DeviceName": "web-iis01", "FileName": "cmd.exe"},
        {"DeviceName": "wébhôte", "FileName": "powershell.exe"},
    ]


def test_a_row_with_another_column_count_is_reported_and_skipped() -> None:
    records, problems = read("A,B\n1,2\n3\n4,5,6\n7,8\n")
    assert rows(records) == [(2, {"A": "1", "B": "2"}), (5, {"A": "7", "B": "8"})]
    assert [(p.origin.line, p.reason) for p in problems] == [
        (3, "row has 1 fields, the header 2; skipped"),
        (4, "row has 3 fields, the header 2; skipped"),
    ]
    assert str(problems[0]).startswith("export.csv:3: ")


def test_malformed_quoting_and_an_unterminated_quote_are_reported() -> None:
    records, problems = read('A,B\n"x"y,1\n2,a\x00b\n3,4\n5,"never closed\n')
    assert rows(records) == [(3, {"A": "2", "B": "a\x00b"}), (4, {"A": "3", "B": "4"})]
    assert [p.origin.line for p in problems] == [2, 5]
    assert all(p.reason.startswith("invalid CSV row: ") for p in problems)


def test_invalid_utf8_is_replaced_and_reported_with_its_line() -> None:
    records, problems = read(b"A,B\n1,ok\n2,caf\xe9\n")
    assert [r.data["B"] for r in records] == ["ok", "caf\ufffd"]
    assert [(p.origin.line, p.reason) for p in problems] == [(3, "invalid UTF-8 bytes replaced by U+FFFD")]


def test_a_row_over_the_size_bound_is_skipped_and_the_rest_read() -> None:
    big = "x" * (MAX_ROW_BYTES + 10)
    records, problems = read(f"A,B\n1,{big}\n2,small\n")
    assert rows(records) == [(3, {"A": "2", "B": "small"})]
    assert [(p.origin.line, p.reason) for p in problems] == [(2, "row larger than 1 MiB; skipped")]


def test_a_quoted_row_spanning_lines_past_the_bound_is_skipped_whole() -> None:
    """The bound holds for a row's physical lines together: quoted cells of many short lines cannot grow a row
    without limit. Reading resumes after the line that closes the row's last cell (a doubled quote inside does
    not close it). Each cell stays under the csv module's own field limit."""
    columns = 10
    cell_lines = MAX_ROW_BYTES // columns // 1000 + 10
    cell = '"' + "\n".join(['say ""hi"" ' + "y" * 988] * cell_lines) + '"'
    header = ",".join(f"C{i}" for i in range(columns))
    records, problems = read(f"{header}\n" + ",".join([cell] * columns) + "\n" + ",".join("v" * columns) + "\n")
    assert rows(records) == [(columns * (cell_lines - 1) + 3, {f"C{i}": "v" for i in range(columns)})]
    assert [(p.origin.line, p.reason) for p in problems] == [(2, "row larger than 1 MiB; skipped")]


def test_a_cell_over_the_csv_modules_field_limit_is_skipped_to_its_closing_quote() -> None:
    """csv.field_size_limit() (131,072 characters by default) stops a cell in the middle of its quoted lines;
    reading resumes after the line that closes it."""
    lines = 2 * csv.field_size_limit() // 100
    cell = "\n".join(["z" * 99] * lines)
    records, problems = read(f'A,B\n1,"{cell}"\n2,ok\n')
    assert rows(records) == [(lines + 2, {"A": "2", "B": "ok"})]
    assert [
        (p.origin.line, p.reason.startswith("invalid CSV row: field larger than field limit")) for p in problems
    ] == [(2, True)]


def test_text_that_is_not_csv_after_all_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_records, "GIVE_UP_AFTER", 5)
    records, problems = read("Hello,world\n" + "one two three\n" * 20)
    assert records == []
    assert len(problems) == 6
    assert problems[-1].reason == "no CSV row read; rest skipped"


_CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_CELL, min_size=3, max_size=3), max_size=8), st.sampled_from(["\r\n", "\n"]))
def test_whatever_the_csv_module_writes_reads_back(data: list[list[str]], terminator: str) -> None:
    """Round trip through csv.writer (Excel dialect): every row back, cells as written, empty cells left out."""
    # The writer quotes a cell for the characters of its own line terminator only: with "\n" a lone "\r" is
    # written unquoted, which is not CSV any reader can take back.
    assume(terminator == "\r\n" or not any("\r" in cell for row in data for cell in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=terminator)
    header = ["Col A", "ColB", "col.c"]
    writer.writerow(header)
    writer.writerows(data)
    records, problems = read(buffer.getvalue())
    assert problems == []
    expected = [{k: v for k, v in zip(header, row, strict=True) if v} for row in data]
    # A row of only empty cells (or one empty cell written as nothing) carries nothing and is not a record.
    assert [r.data for r in records] == [row for row in expected if row]


# --- recognition by content -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"Timestamp,DeviceId,DeviceName,ActionType,FileName\r\n2024-01-01T00:00:00Z,a,b,c,d\r\n",
        b'"Timestamp","DeviceName","InitiatingProcessFileName"\n',
        b"\xef\xbb\xbfTimestamp,Device Name\n",
        b"process.name,process.parent.name\ncmd.exe,w3wp.exe\n",
        b"\n\n  TimeGenerated,Computer\n",
        "Zeitstempel,Gerätename\n".encode(),
    ],
)
def test_csv_headers_are_recognized(head: bytes) -> None:
    assert sniff(head).format == "csv"


@pytest.mark.parametrize(
    "head",
    [
        b"2019-05-24 01:33:53 GET /shell.aspx cmd=whoami 200\n",  # an IIS log line
        b"#Software: Microsoft Internet Information Services 10.0\n#Fields: date time s-ip\n",
        b"Hello, world!\n",
        b"just one column\n1\n",
        b"a,,b\n",  # an unnamed column
        b'[metadata]\ncreation_date = "2020/01/01"\n',  # TOML
        b"title: a rule\nlogsource: {product: windows}\n",  # YAML
        b'127.0.0.1 - - [24/May/2019:01:33:53 +0000] "GET / HTTP/1.1" 200\n',
    ],
)
def test_other_text_is_not_taken_for_csv(head: bytes) -> None:
    assert sniff(head).format != "csv"


def test_json_and_xml_still_win() -> None:
    assert sniff(b'{"a": 1, "b": 2}\n').format == "json"
    assert sniff(b"<Events><Event/></Events>").format == "xml"
    assert sniff(b'[{"Timestamp": "x", "DeviceName": "y"}]').format == "json"


def test_no_file_of_the_shared_corpus_is_taken_for_csv() -> None:
    """The corpus has no CSV: wiring the CSV reader must not change how any of its files is read."""
    root = shared_path()
    taken = [
        path
        for path in sorted(Path(root).rglob("*"))
        if path.is_file() and sniff(path.open("rb").read(PEEK_SIZE)).format == "csv"
    ]
    assert taken == []
