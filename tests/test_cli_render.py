"""The readable IR rendering behind ``shellwatch rules show`` (shellwatch.query.render.render_ir)."""

from __future__ import annotations

from shellwatch.query.ir import (
    FALSE,
    TRUE,
    And,
    Call,
    Case,
    Cidr,
    Compare,
    Equals,
    Exists,
    FieldRef,
    Keyword,
    Literal,
    Node,
    Not,
    Or,
    Predicate,
    Regex,
    Wildcard,
)
from shellwatch.query.render import render_ir
from shellwatch.rules.loader import load_bundled_rules

INSENSITIVE = Case.INSENSITIVE


def test_seed_eql_rule_renders_with_eql_operators() -> None:
    eql_rule = load_bundled_rules().rules[0]
    text = render_ir(eql_rule.ir)
    lines = text.splitlines()
    assert lines[0] == 'event.category == "process"'
    assert 'and host.os.type == "windows"' in lines
    assert "and process.parent.name in~ (" in lines
    assert '  "w3wp.exe",' in lines
    assert "and not (" in lines
    assert '  and process.name : "cmd.exe"' in lines
    assert '    "cmd.exe /s /c \\"mode CON\\"",' in lines
    assert lines[-1] == ")"


def test_short_tests_stay_on_one_line() -> None:
    node = And((Equals("a", ("x",)), Or((Equals("b", (1,)), Exists("c")))))
    assert render_ir(node) == 'a == "x" and (b == 1 or c != null)'


def test_long_groups_break_at_and_or_with_parentheses() -> None:
    long = tuple(Equals(f"field{i}", ("value" * 5,)) for i in range(4))
    node = And((Equals("a", ("x",)), Or(long)))
    lines = render_ir(node, width=60).splitlines()
    assert lines[0] == 'a == "x"'
    assert lines[1] == "and ("
    assert lines[2].startswith("  field0 == ")
    assert lines[3].startswith("  or field1 == ")
    assert lines[-1] == ")"


def test_every_node_kind_has_a_notation() -> None:
    cases: dict[Node, str] = {
        Equals("f", ("a", "b"), INSENSITIVE): 'f in~ ("a", "b")',
        Equals("f", (None, True, 1.5)): "f in (null, true, 1.5)",
        Wildcard("f", ("*\\cmd.exe",), INSENSITIVE): 'f like~ "*\\cmd.exe"',
        Wildcard("f", ("a*", "b?")): 'f like ("a*", "b?")',
        Regex("f", "a.*b", INSENSITIVE, anchored=False, dotall=True): 'f regex~ "a.*b" [search, dotall, python]',
        Regex("f", "[0-9]+", dialect="lucene"): 'f regex "[0-9]+" [lucene]',
        Cidr("source.ip", ("10.0.0.0/8", "fe80::/10")): 'cidrMatch(source.ip, "10.0.0.0/8", "fe80::/10")',
        Compare(Call("length", (FieldRef("f"),)), ">", Literal(3)): "length(f) > 3",
        Compare(FieldRef("a"), "==", FieldRef("b"), INSENSITIVE): "a ==~ b",
        Predicate(Call("startswith", (FieldRef("f"), Literal("x")), INSENSITIVE)): 'startswith~(f, "x")',
        Keyword(("*mimikatz*",)): 'any field like~ "*mimikatz*"',
        Not(Exists("f")): "not f != null",
        Not(And((Exists("a"), Exists("b")))): "not (a != null and b != null)",
        TRUE: "true",
        FALSE: "false",
        And(()): "true",
        Or(()): "false",
    }
    for node, expected in cases.items():
        assert render_ir(node) == expected


def test_long_value_list_is_written_one_value_per_line() -> None:
    node = Cidr("source.ip", tuple(f"10.{i}.0.0/16" for i in range(12)))
    lines = render_ir(node, width=50).splitlines()
    assert lines[0] == "cidrMatch(source.ip,"
    assert lines[1] == '  "10.0.0.0/16",'
    assert lines[-1] == ")"
