"""Event XML gives exactly the dict evtx's JSON rendering gives for the same event.

Rules: omerbenamram/evtx ``src/binxml/ir_json.rs`` (JsonEmitter). The corpus test renders real records both
ways with the evtx package itself (``records()`` as XML, ``records_json()`` as JSON), reads the XML with our
reader and compares; the only differences allowed are those XML cannot avoid, as it carries no value types.
"""

from __future__ import annotations

import collections
import io
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from evtx import PyEvtxParser

from conftest import shared_path
from shellwatch.sources.event_xml import parse_fragment, read_event_xml
from shellwatch.sources.evtx_json_shape import render_event
from shellwatch.sources.record import ReadProblem


def render(xml: str) -> Any:
    return render_event(parse_fragment(xml.encode()))["Event"]


def test_empty_elements_are_null_and_empty_named_data_is_empty_string() -> None:
    event = render(
        "<Event><System><Correlation/><Security>\n  </Security></System>"
        '<EventData><Data Name="A"/><Data Name="B"></Data></EventData></Event>'
    )
    assert event == {"System": {"Correlation": None, "Security": None}, "EventData": {"A": "", "B": ""}}


def test_element_with_attributes_and_text() -> None:
    event = render(
        '<Event><System><EventID Qualifiers="16384">7036</EventID><Task Empty="">3</Task></System></Event>'
    )
    assert event["System"] == {"EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 7036}, "Task": 3}


def test_positional_data_becomes_a_text_list_and_other_children_stay() -> None:
    """ir_json.rs: without a named <Data>, all <Data> render once as "Data": {"#text": [...]} where the first
    one stood (MSSQL 18456 in MSSQL_multiple_failed_logon_EventID_18456.evtx renders this way)."""
    event = render(
        "<Event><EventData><Data>sa</Data><Data> Reason: bad password</Data><Data>42</Data>"
        "<Binary>1848000E</Binary></EventData></Event>"
    )
    assert event["EventData"] == {
        "Data": {"#text": ["sa", " Reason: bad password", 42]},
        "Binary": "1848000E",
    }
    single = render("<Event><EventData><Data>only</Data></EventData></Event>")
    assert single["EventData"] == {"Data": {"#text": "only"}}


def test_named_data_drops_unnamed_data() -> None:
    event = render('<Event><EventData><Data Name="x">1</Data><Data>lost</Data></EventData></Event>')
    assert event["EventData"] == {"x": 1}


def test_repeated_child_names_get_suffixes() -> None:
    event = render(
        "<Event><RenderingInfo><Keywords><Keyword>A</Keyword><Keyword>B</Keyword></Keywords>"
        "</RenderingInfo></Event>"
    )
    assert event["RenderingInfo"]["Keywords"] == {"Keyword": "A", "Keyword_1": "B"}


def test_user_data_keeps_namespace_declarations_as_attributes() -> None:
    """UserData (e.g. 1102 log cleared) renders its element generically; xmlns declarations are attributes."""
    event = render(
        '<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><UserData>'
        '<LogFileCleared xmlns:auto-ns3="http://schemas.microsoft.com/win/2004/08/events" '
        'xmlns="http://manifests.microsoft.com/win/2004/08/windows/eventlog">'
        "<SubjectUserName>admin01</SubjectUserName><SubjectLogonId>0xaf855</SubjectLogonId>"
        "</LogFileCleared></UserData></Event>"
    )
    assert event["UserData"] == {
        "LogFileCleared": {
            "#attributes": {
                "xmlns:auto-ns3": "http://schemas.microsoft.com/win/2004/08/events",
                "xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog",
            },
            "SubjectUserName": "admin01",
            "SubjectLogonId": "0xaf855",
        }
    }


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("4688", 4688),
        ("-5", -5),
        ("0", 0),
        ("007", "007"),
        ("18446744073709551615", 18446744073709551615),
        ("18446744073709551616", "18446744073709551616"),
        ("0x2bc", "0x2bc"),
        ("1.5", "1.5"),
        ("true", True),
        ("false", False),
        ("True", "True"),
        ("{5770385F-C22A-43E0-BF4C-06F5698FFBD9}", "5770385F-C22A-43E0-BF4C-06F5698FFBD9"),
        ("{5770385f-c22a-43e0-bf4c-06f5698ffbd9}", "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}"),
        ("2015-11-12T02:24:52.377352500Z", "2015-11-12T02:24:52.377352Z"),
        ("2015-11-12T02:24:52.377352Z", "2015-11-12T02:24:52.377352Z"),
        ("2019-05-24 01:33:53.112", "2019-05-24 01:33:53.112"),
    ],
)
def test_value_typing(text: str, value: Any) -> None:
    event = render(f'<Event><EventData><Data Name="v">{text}</Data></EventData></Event>')
    assert event["EventData"]["v"] == value
    assert type(event["EventData"]["v"]) is type(value)


# --- against the evtx package on real logs ---------------------------------------------------------------

_LONG_FRACTION_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7,9}Z")
_BRACED_GUID = re.compile(r"\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}")


def unavoidable(ours: Any, theirs: Any) -> str | None:
    """The class of a value difference XML cannot avoid, or None when the difference is a defect."""
    if isinstance(theirs, str):
        if isinstance(ours, bool) and theirs == str(ours).lower():
            return "string-typed boolean look-alike"
        if isinstance(ours, int) and not isinstance(ours, bool) and theirs == str(ours):
            return "string-typed integer look-alike"
        if _BRACED_GUID.fullmatch(theirs) and ours == theirs[1:-1]:
            return "string-typed braced GUID"
        if _LONG_FRACTION_TIME.fullmatch(theirs) and ours == theirs[:26] + "Z":
            return "string-typed long-fraction time"
        if theirs.isspace() and "\n" in theirs and ours in ("", None):
            return "whitespace-only value taken for layout"
    return None


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}/{key}")
    elif isinstance(value, list):
        yield path, len(value)
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def parsed(records: Any) -> Iterator[dict[str, Any]]:
    """The records an evtx iterator yields, stepping over the damaged chunks it raises for."""
    while True:
        try:
            yield next(records)
        except StopIteration:
            return
        except RuntimeError:
            continue


def records_both_ways(path: str) -> Iterator[tuple[int, str, str]]:
    xml = {r["event_record_id"]: r["data"] for r in parsed(PyEvtxParser(path, number_of_threads=1).records())}
    for record in parsed(PyEvtxParser(path, number_of_threads=1).records_json()):
        yield record["event_record_id"], xml[record["event_record_id"]], record["data"]


@pytest.mark.parametrize(
    ("sample", "channel"),
    [("sysmon.evtx", "Microsoft-Windows-Sysmon/Operational"), ("security.evtx", "Security")],
)
def test_xml_reads_as_evtx_renders_json_over_real_logs(sample: str, channel: str) -> None:
    """Hundreds of records of each log (omerbenamram/evtx samples: 358 Sysmon, 2,261 Security): every record's
    XML parses, every field path is the same, and a value differs only in a class listed by
    :func:`unavoidable`."""
    path = str(shared_path("corpus", "omerbenamram-evtx", "samples", sample))
    compared = 0
    identical = 0
    differences: collections.Counter[str] = collections.Counter()
    for record_id, xml, json_text in records_both_ways(path):
        problems: list[ReadProblem] = []
        (record,) = read_event_xml(io.BytesIO(xml.encode()), sample, problems.append)
        assert problems == []
        theirs = orjson.loads(json_text)
        assert theirs["Event"]["System"]["Channel"] == channel
        ours_leaves, their_leaves = dict(leaves(record.data)), dict(leaves(theirs))
        assert ours_leaves.keys() == their_leaves.keys(), record_id
        compared += 1
        identical += record.data == theirs
        for key, their_value in their_leaves.items():
            if ours_leaves[key] != their_value or type(ours_leaves[key]) is not type(their_value):
                kind = unavoidable(ours_leaves[key], their_value)
                assert kind is not None, (record_id, key, ours_leaves[key], their_value)
                differences[f"{kind} ({key.rsplit('/', 1)[-1]})"] += 1
    print(
        f"\n{sample}: {compared} records, {identical} identical; unavoidable differences: {dict(differences)}"
    )
    assert compared > 300
