"""Alert documents at big-rule-set scale: the nesting of an event worked out once per key sequence.

With thousands of rules one event in seven raises an alert, and an alert is its event's nested document
(:func:`shellwatch.ecs.unflatten`). Events of one kind have the same keys in the same order, so the nesting is
generated once per key sequence (``_Shape``) and filled in per event. It must give what the path-by-path walk
(:func:`unflatten_sorted`) gives, keys in the same order, for any keys: dotted and undotted, a path that is the
prefix of another (whose value, when None or an object, the walk treats its own way), empty segments, and hostile
key text, which must never become code.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shellwatch import ecs
from shellwatch.alerts.document import build_alert, rule_fields, rule_uuid
from shellwatch.ecs import unflatten, unflatten_sorted
from shellwatch.query.ir import TRUE
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.sources.record import Origin

SEGMENTS = ("a", "b", "event", "kind", "x'y", '"}', "", "__import__('os')", "é")
paths = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4).map(".".join)
values = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.text(max_size=3), max_size=3),
    st.dictionaries(st.sampled_from(("p", "q")), st.integers(), max_size=2),
)
events = st.dictionaries(paths, values, max_size=12)
MOMENT = datetime(2024, 3, 14, 9, 0, tzinfo=UTC)


def _same(left: Any, right: Any) -> bool:
    """Equal, with every object's keys in the same order (what a written alert shows)."""
    if isinstance(left, dict) and isinstance(right, dict):
        return list(left) == list(right) and all(_same(left[key], right[key]) for key in left)
    return bool(type(left) is type(right) and left == right)


@settings(max_examples=800, deadline=None)
@given(events)
def test_unflatten_equals_the_walk_path_by_path(event: dict[str, Any]) -> None:
    """Every event, its shape new or already known (the second call), nests as the reference walk nests it.
    (The walk may write into an object-valued leaf: each side gets its own copy of the event.)"""
    expected = unflatten_sorted(copy.deepcopy(event))
    assert _same(unflatten(copy.deepcopy(event)), expected)
    assert _same(unflatten(copy.deepcopy(event)), expected)


def test_events_sharing_keys_share_one_shape_and_not_their_objects() -> None:
    """Two events with the same keys get their own documents: one alert's document edited leaves the other's."""
    first = {"process.name": "cmd.exe", "process.parent.name": "w3wp.exe", "event.kind": "event"}
    second = {"process.name": "whoami.exe", "process.parent.name": "httpd.exe", "event.kind": "event"}
    one, two = unflatten(first), unflatten(second)
    assert ecs._SHAPES[tuple(first)] is ecs._SHAPES[tuple(second)]
    one["process"]["parent"]["name"] = "edited"
    assert two == {"event": {"kind": "event"}, "process": {"name": "whoami.exe", "parent": {"name": "httpd.exe"}}}
    assert unflatten(second) == two


def test_prefix_leaf_none_or_object_is_nested_as_the_walk_does() -> None:
    """A leaf ``a`` beside ``a.b``: its value kept with ``b.c``-style dotted keys beside it, except when it is
    None (the walk puts an object in its place) or an object (the walk nests into it); the shape is the same
    in the three cases, the documents differ."""
    keys = ("a", "a.b", "a.c.d")
    for leaf in ("text", None, {"z": 1}):
        event = dict(zip(keys, (leaf, 1, 2), strict=True))
        expected = unflatten_sorted(copy.deepcopy(event))
        assert _same(unflatten(event), expected)
    assert unflatten({"a": "text", "a.b": 1}) == {"a": "text", "a.b": 1}
    assert unflatten({"a": None, "a.b": 1}) == {"a": {"b": 1}}


def test_generated_source_holds_no_key_text() -> None:
    """Key text reaches the generated function as arguments only: a key that is Python source stays a key."""
    hostile = "x'); __import__('os').system('echo pwned') #"
    event = {hostile: 1, f"{hostile}.y": 2, "a.b": hostile}
    assert unflatten(event) == unflatten_sorted(event)
    build = ecs._SHAPES[tuple(event)].build
    assert all(hostile not in str(constant) for constant in build.__code__.co_consts)
    assert {cell.cell_contents for cell in build.__closure__ or ()} >= {hostile, f"{hostile}.y"}


def test_alert_of_an_event_with_and_without_id() -> None:
    """The alert leaves ``_id`` out of the document, keeps the ``event.*`` fields under original_event in the
    event's order, and names the rule's uuid as rule_fields does."""
    rule = Rule(
        rule_id="r-1",
        name="Web shell child",
        description="d",
        type="eql",
        language="eql",
        query="process where true",
        ir=TRUE,
        source=RuleSource(path="pack.toml"),
    )
    event = {
        "_id": "doc-1",
        "event.kind": "event",
        "process.name": "cmd.exe",
        "event.category": ["process"],
        "event.type": ["start"],
    }
    for source in (event, {k: v for k, v in event.items() if k != "_id"}):
        alert = build_alert(rule, source, origin=Origin("x.evtx", record_id=7), detected_at=MOMENT)
        assert "_id" not in alert
        assert list(alert["kibana.alert.original_event"].items()) == [
            ("kind", "event"),
            ("category", ["process"]),
            ("type", ["start"]),
        ]
        assert alert["event"] == {"kind": "signal", "category": ["process"], "type": ["start"]}
        assert alert["kibana.alert.rule.uuid"] == rule_fields(rule)["kibana.alert.rule.uuid"] == rule_uuid(rule)
