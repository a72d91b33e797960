"""Windows event XML: the layouts Windows tools write, encodings, damage, and hostile XML."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from defusedxml import DTDForbidden

from conftest import shared_path
from shellwatch.sources import event_xml
from shellwatch.sources.event_xml import parse_fragment
from shellwatch.sources.reader import read_paths
from shellwatch.sources.record import RawRecord, ReadProblem

NS = "http://schemas.microsoft.com/win/2004/08/events/event"

# A Sysmon process creation as `wevtutil qe Microsoft-Windows-Sysmon/Operational /f:xml` prints it: one line,
# braced GUIDs, a 7-digit FILETIME fraction.
SYSMON_1 = (
    f'<Event xmlns="{NS}"><System><Provider Name="Microsoft-Windows-Sysmon" '
    'Guid="{5770385F-C22A-43E0-BF4C-06F5698FFBD9}"/><EventID>1</EventID><Version>5</Version><Level>4</Level>'
    "<Task>1</Task><Opcode>0</Opcode><Keywords>0x8000000000000000</Keywords>"
    '<TimeCreated SystemTime="2019-05-24T01:33:53.1124863Z"/><EventRecordID>1044</EventRecordID>'
    "<Correlation/>"
    '<Execution ProcessID="2032" ThreadID="2092"/><Channel>Microsoft-Windows-Sysmon/Operational</Channel>'
    '<Computer>IEWIN7</Computer><Security UserID="S-1-5-18"/></System><EventData>'
    '<Data Name="RuleName"></Data><Data Name="ProcessGuid">{365ABB72-4A01-5CE7-0000-0010EE9DAC00}</Data>'
    '<Data Name="ProcessId">2404</Data><Data Name="Image">C:\\Windows\\System32\\cmd.exe</Data>'
    '<Data Name="CommandLine">"c:\\windows\\system32\\cmd.exe" /c net user</Data>'
    '<Data Name="ParentImage">C:\\Windows\\System32\\inetsrv\\w3wp.exe</Data></EventData></Event>'
)

SYSMON_1_EXPECTED: dict[str, Any] = {
    "Event": {
        "#attributes": {"xmlns": NS},
        "System": {
            "Provider": {
                "#attributes": {
                    "Name": "Microsoft-Windows-Sysmon",
                    "Guid": "5770385F-C22A-43E0-BF4C-06F5698FFBD9",
                }
            },
            "EventID": 1,
            "Version": 5,
            "Level": 4,
            "Task": 1,
            "Opcode": 0,
            "Keywords": "0x8000000000000000",
            "TimeCreated": {"#attributes": {"SystemTime": "2019-05-24T01:33:53.112486Z"}},
            "EventRecordID": 1044,
            "Correlation": None,
            "Execution": {"#attributes": {"ProcessID": 2032, "ThreadID": 2092}},
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": "IEWIN7",
            "Security": {"#attributes": {"UserID": "S-1-5-18"}},
        },
        "EventData": {
            "RuleName": "",
            "ProcessGuid": "365ABB72-4A01-5CE7-0000-0010EE9DAC00",
            "ProcessId": 2404,
            "Image": "C:\\Windows\\System32\\cmd.exe",
            "CommandLine": '"c:\\windows\\system32\\cmd.exe" /c net user',
            "ParentImage": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
        },
    }
}


def read(path: Path) -> tuple[list[RawRecord], list[ReadProblem]]:
    problems: list[ReadProblem] = []
    records = list(read_paths([str(path)], on_problem=problems.append))
    return records, problems


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def sysmon_event(record_id: int, command_line: str = "whoami") -> str:
    return SYSMON_1.replace("<EventRecordID>1044<", f"<EventRecordID>{record_id}<").replace(
        "/c net user</Data>", f"/c {command_line}</Data>"
    )


def test_single_event_in_the_shape_evtx_renders() -> None:
    """Windows' rendering (braced GUIDs, 7-digit FILETIME fraction, self-closed empty elements) becomes the
    dict evtx's JSON rendering gives for the same event (evtx writes GUIDs bare and six fractional digits; see
    the record above as evtx renders it from LM_typical_IIS_webshell_sysmon_1_10_traces.evtx)."""
    assert parse_and_render(SYSMON_1) == SYSMON_1_EXPECTED


def parse_and_render(xml: str) -> dict[str, Any]:
    from shellwatch.sources.evtx_json_shape import render_event

    return render_event(parse_fragment(xml.encode()))


def test_concatenated_events_as_wevtutil_prints_them(tmp_path: Path) -> None:
    path = write(tmp_path, "qe.xml", "\n".join(sysmon_event(n) for n in (10, 11, 12)) + "\n")
    records, problems = read(path)
    assert problems == []
    assert [r.data["Event"]["System"]["EventRecordID"] for r in records] == [10, 11, 12]
    assert [r.origin.line for r in records] == [1, 2, 3]
    assert all(r.shape == "windows_event" and r.origin.path == str(path) for r in records)


def test_events_wrapped_in_events_with_declaration(tmp_path: Path) -> None:
    events = "\n".join(sysmon_event(n) for n in (1, 2))
    content = f'<?xml version="1.0" encoding="UTF-8"?>\n<Events>\n{events}\n</Events>\n'
    records, problems = read(write(tmp_path, "wrapped.xml", content))
    assert problems == []
    assert [r.origin.line for r in records] == [3, 4]
    expected = copy.deepcopy(SYSMON_1_EXPECTED)
    expected["Event"]["System"]["EventRecordID"] = 1
    expected["Event"]["EventData"]["CommandLine"] = '"c:\\windows\\system32\\cmd.exe" /c whoami'
    assert records[0].data == expected


EVENT_VIEWER_COPY = """- <Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
- <System>
  <Provider Name="Microsoft-Windows-Security-Auditing" Guid="{54849625-5478-4994-A5BA-3E3B0328C30D}" />
  <EventID>4688</EventID>
  <Version>2</Version>
  <Level>0</Level>
  <Task>13312</Task>
  <Opcode>0</Opcode>
  <Keywords>0x8020000000000000</Keywords>
  <TimeCreated SystemTime="2021-03-02T10:11:12.123456700Z" />
  <EventRecordID>77</EventRecordID>
  <Correlation />
  <Execution ProcessID="4" ThreadID="96" />
  <Channel>Security</Channel>
  <Computer>web01</Computer>
  <Security />
  </System>
- <EventData>
  <Data Name="NewProcessId">0x1a4</Data>
  <Data Name="NewProcessName">C:\\Windows\\System32\\whoami.exe</Data>
  <Data Name="CommandLine" />
  <Data Name="ParentProcessName">C:\\Windows\\System32\\inetsrv\\w3wp.exe</Data>
  </EventData>
  </Event>
"""


def test_event_viewer_xml_view_copy_with_fold_markers(tmp_path: Path) -> None:
    records, problems = read(write(tmp_path, "viewer.txt", EVENT_VIEWER_COPY))
    assert problems == []
    (record,) = records
    system = record.data["Event"]["System"]
    assert system["EventID"] == 4688
    assert system["Provider"]["#attributes"]["Guid"] == "54849625-5478-4994-A5BA-3E3B0328C30D"
    assert system["TimeCreated"] == {"#attributes": {"SystemTime": "2021-03-02T10:11:12.123456Z"}}
    assert system["Correlation"] is None and system["Security"] is None
    assert system["Execution"] == {"#attributes": {"ProcessID": 4, "ThreadID": 96}}
    assert record.data["Event"]["EventData"] == {
        "NewProcessId": "0x1a4",
        "NewProcessName": "C:\\Windows\\System32\\whoami.exe",
        "CommandLine": "",
        "ParentProcessName": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
    }


def test_seed_002_event_viewer_block(tmp_path: Path) -> None:
    """The Security 4688 sample of seed 002 (the block under 测试留痕), as the Event Viewer copies it."""
    seed = shared_path("seeds", "002_34a43a8019901ab4.txt").read_text(encoding="utf-8")
    block = re.search(r"```yml\n(- <Event.*?</Event>)\n```", seed, re.S)
    assert block is not None
    records, problems = read(write(tmp_path, "seed.xml", block.group(1)))
    assert problems == []
    (record,) = records
    event = record.data["Event"]
    assert event["System"]["EventID"] == 4688
    assert event["System"]["EventRecordID"] == 2814
    assert event["System"]["TimeCreated"]["#attributes"]["SystemTime"] == "2015-11-12T02:24:52.377352Z"
    assert event["EventData"]["TokenElevationType"] == "%%1938"
    assert event["EventData"]["NewProcessId"] == "0x2bc"
    assert event["EventData"]["CommandLine"] == ""
    assert event["EventData"]["TargetUserName"] == "dadmin"
    assert len(event["EventData"]) == 15


@pytest.mark.parametrize(
    ("encoding", "bom"), [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-8", b"\xef\xbb\xbf")]
)
def test_encodings_with_byte_order_mark(tmp_path: Path, encoding: str, bom: bytes) -> None:
    content = (
        '<?xml version="1.0" encoding="UTF-16"?>\r\n<Events>'
        + sysmon_event(1, "ipconfig /all é✓")
        + "</Events>"
    )
    records, problems = read(write(tmp_path, "export.xml", bom + content.encode(encoding)))
    assert problems == []
    (record,) = records
    assert record.data["Event"]["EventData"]["CommandLine"].endswith("/c ipconfig /all é✓")


def test_utf16_without_byte_order_mark(tmp_path: Path) -> None:
    records, problems = read(write(tmp_path, "nobom.xml", sysmon_event(5).encode("utf-16-le")))
    assert problems == [] and records[0].data["Event"]["System"]["EventRecordID"] == 5


def test_declared_single_byte_encoding(tmp_path: Path) -> None:
    content = '<?xml version="1.0" encoding="windows-1252"?>\n' + sysmon_event(1, "echo café")
    records, problems = read(write(tmp_path, "cp1252.xml", content.encode("cp1252")))
    assert problems == []
    assert records[0].data["Event"]["EventData"]["CommandLine"].endswith("echo café")


def test_malformed_event_is_reported_and_the_others_read(tmp_path: Path) -> None:
    broken = sysmon_event(2).replace("<Level>4</Level>", "<Level>4</Levl>")
    path = write(tmp_path, "mixed.xml", "\n".join([sysmon_event(1), broken, sysmon_event(3)]))
    records, problems = read(path)
    assert [r.data["Event"]["System"]["EventRecordID"] for r in records] == [1, 3]
    (problem,) = problems
    assert problem.origin.path == str(path) and problem.origin.line == 2
    assert "malformed event XML" in problem.reason and "mismatched tag" in problem.reason


def test_unterminated_event_is_reported(tmp_path: Path) -> None:
    truncated = sysmon_event(2)[:300]
    records, problems = read(
        write(tmp_path, "cut.xml", "\n".join([sysmon_event(1), truncated, sysmon_event(3)]))
    )
    assert [r.data["Event"]["System"]["EventRecordID"] for r in records] == [1, 3]
    assert [(p.origin.line, "unterminated" in p.reason) for p in problems] == [(2, True)]


def test_events_split_across_read_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tags cut by block boundaries, lines counted across blocks (tiny blocks force every boundary case)."""
    monkeypatch.setattr(event_xml, "_READ_BLOCK", 7)
    content = "<Events>\r\n" + "\r\n".join(sysmon_event(n) for n in range(1, 6)) + "\r\n</Events>\r\n"
    records, problems = read(write(tmp_path, "blocks.xml", content))
    assert problems == []
    assert [r.data["Event"]["System"]["EventRecordID"] for r in records] == [1, 2, 3, 4, 5]
    assert [r.origin.line for r in records] == [2, 3, 4, 5, 6]


def test_oversized_event_is_skipped_without_holding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_xml, "MAX_EVENT_BYTES", 4096)
    monkeypatch.setattr(event_xml, "_READ_BLOCK", 1024)
    huge = sysmon_event(2, "x" * 20000)
    records, problems = read(write(tmp_path, "big.xml", "\n".join([sysmon_event(1), huge, sysmon_event(3)])))
    assert [r.data["Event"]["System"]["EventRecordID"] for r in records] == [1, 3]
    assert [(p.origin.line, "larger than" in p.reason) for p in problems] == [(2, True)]


def test_values_keep_carriage_returns_and_control_characters(tmp_path: Path) -> None:
    """evtx keeps CR LF inside values (e.g. Security 4672 PrivilegeList) and control characters; an XML parser
    would normalize the first and reject the second, which would let an attacker hide an event behind a
    \\x02."""
    event = sysmon_event(1).replace(
        '<Data Name="RuleName"></Data>', '<Data Name="RuleName">a\r\n\tb\x02c</Data>'
    )
    records, problems = read(write(tmp_path, "ctl.xml", event.encode()))
    assert problems == []
    assert records[0].data["Event"]["EventData"]["RuleName"] == "a\r\n\tb\x02c"


BILLION_LAUGHS = """<?xml version="1.0"?> <!DOCTYPE Event [ <!ENTITY lol "lol"> <!ENTITY lol2
"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"> <!ENTITY lol3
"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"> <!ENTITY lol4
"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;"> <!ENTITY lol9
"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;"> ]>
<Event><System><EventID>1</EventID></System><EventData><Data
Name="CommandLine">&lol9;</Data></EventData></Event>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?> <!DOCTYPE Event [<!ENTITY xxe SYSTEM "file:///etc/passwd"><!ENTITY
net SYSTEM "http://127.0.0.1:9/x">]> <Event><System><EventID>1</EventID></System><EventData><Data
Name="CommandLine">&xxe;&net;</Data></EventData></Event>
"""


@pytest.mark.parametrize(
    "hostile", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"]
)
def test_entities_are_never_expanded_nor_fetched(tmp_path: Path, hostile: str) -> None:
    """https://github.com/tiran/defusedxml#attack-vectors: the event is reported, nothing expanded or read."""
    records, problems = read(write(tmp_path, "hostile.xml", hostile))
    assert records == []
    (problem,) = problems
    assert "undefined entity" in problem.reason


def test_parser_refuses_a_dtd_inside_the_fragment() -> None:
    with pytest.raises(DTDForbidden):
        parse_fragment(b'<!DOCTYPE Event [<!ENTITY a "b">]><Event>&a;</Event>')


def test_nesting_is_bounded(tmp_path: Path) -> None:
    deep = "<Event>" + "<a>" * 500 + "</a>" * 500 + "</Event>"
    records, problems = read(write(tmp_path, "deep.xml", deep))
    assert records == [] and "nested deeper" in problems[0].reason


def test_xml_without_events(tmp_path: Path) -> None:
    records, problems = read(write(tmp_path, "other.xml", "<html><body>hi</body></html>"))
    assert records == [] and [p.reason for p in problems] == ["XML without any Windows <Event> element"]


def test_invalid_utf8_is_replaced_not_dropped(tmp_path: Path) -> None:
    """A stray byte must not hide an event: it becomes U+FFFD and is reported."""
    content = (sysmon_event(1) + "\n" + sysmon_event(2, "whoami \udcff")).encode("utf-8", "surrogateescape")
    records, problems = read(write(tmp_path, "bad-utf8.xml", content))
    assert [r.data["Event"]["EventData"]["CommandLine"][-8:] for r in records] == [
        "c whoami",
        "whoami \ufffd",
    ]
    assert [(p.origin.line, p.reason) for p in problems] == [(2, "invalid UTF-8 bytes replaced by U+FFFD")]
