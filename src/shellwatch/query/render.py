"""The IR shown to people: an indented, EQL-like rendering of a compiled query (``shellwatch rules show``).

The notation borrows EQL's operators so that a reader of either rule language recognises it; a trailing ``~``
marks a case-insensitive test, as in EQL:

* ``Equals``: ``f == "v"`` / ``f in ("a", "b")``; case-insensitive ``f : "v"`` / ``f in~ ("a", "b")``.
* ``Wildcard``: ``f like "p*"`` / ``f like~ ("p*", "q?")``; patterns are shown as the IR holds them (a
  backslash escapes the next character).
* ``Regex``: ``f regex "p"`` / ``regex~``, with the pattern's dialect and non-default flags in brackets
  (``[search, python]`` for an unanchored Python pattern).
* ``Exists``: ``f != null``; ``Const``: ``true`` / ``false``; ``Cidr``: ``cidrMatch(f, "10.0.0.0/8")``;
  ``Keyword``: ``any field like~ (...)``; calls as ``name(args)`` or ``name~(args)``.

Strings are double-quoted with ``"`` escaped as ``\\"`` and backslashes shown as they are: the result is meant
to be read, not parsed back. ``and`` binds tighter than ``or``; nested groups are parenthesised anyway. A test
that fits in ``width`` columns stays on one line; longer ones are broken at ``and`` / ``or`` and long value
lists are written one value per line.
"""

from __future__ import annotations

from collections.abc import Sequence

from shellwatch.query.ir import (
    And,
    Case,
    Cidr,
    Compare,
    Const,
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
    Scalar,
    Value,
    Wildcard,
)

INDENT = "  "
DEFAULT_WIDTH = 100


def render_ir(node: Node, width: int = DEFAULT_WIDTH) -> str:
    """The query as indented, readable text (see the module docstring for the notation)."""
    return "\n".join(_block(node, width))


def render_value(value: Value) -> str:
    """A value expression: a field name, a literal or a call."""
    if isinstance(value, FieldRef):
        return value.name
    if isinstance(value, Literal):
        return _scalar(value.value)
    tilde = "~" if value.case is Case.INSENSITIVE else ""
    return f"{value.name}{tilde}({', '.join(render_value(arg) for arg in value.args)})"


def _scalar(value: Scalar) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    return repr(value)


def _tilde(case: Case) -> str:
    return "~" if case is Case.INSENSITIVE else ""


def _leaf_parts(node: Node) -> tuple[str, Sequence[str], str] | None:
    """A leaf as (head, values, tail) when it tests a list of values, so the list can be broken over lines."""
    if isinstance(node, Equals):
        if len(node.values) == 1:
            op = ":" if node.case is Case.INSENSITIVE else "=="
            return f"{node.field} {op} ", [_scalar(node.values[0])], ""
        return f"{node.field} in{_tilde(node.case)} ", [_scalar(v) for v in node.values], ""
    if isinstance(node, Wildcard):
        return f"{node.field} like{_tilde(node.case)} ", [_scalar(p) for p in node.patterns], ""
    if isinstance(node, Cidr):
        return f"cidrMatch({node.field}, ", [_scalar(n) for n in node.networks], ")"
    if isinstance(node, Keyword):
        return f"any field like{_tilde(node.case)} ", [_scalar(p) for p in node.patterns], ""
    return None


def _inline(node: Node) -> str:
    parts = _leaf_parts(node)
    if parts is not None:
        head, values, tail = parts
        if isinstance(node, Cidr):
            return head + ", ".join(values) + tail
        listed = values[0] if len(values) == 1 else "(" + ", ".join(values) + ")"
        return head + listed + tail
    if isinstance(node, And | Or):
        if not node.children:
            return "true" if isinstance(node, And) else "false"
        op = " and " if isinstance(node, And) else " or "
        return op.join(_inline_child(child, node) for child in node.children)
    if isinstance(node, Not):
        inner = _inline(node.child)
        return f"not ({inner})" if isinstance(node.child, And | Or) else f"not {inner}"
    if isinstance(node, Const):
        return "true" if node.value else "false"
    if isinstance(node, Exists):
        return f"{node.field} != null"
    if isinstance(node, Regex):
        return f"{node.field} regex{_tilde(node.case)} {_scalar(node.pattern)}{_regex_flags(node)}"
    if isinstance(node, Compare):
        return f"{render_value(node.left)} {node.op}{_tilde(node.case)} {render_value(node.right)}"
    if isinstance(node, Predicate):
        return render_value(node.call)
    raise TypeError(f"not an IR node: {node!r}")


def _regex_flags(node: Regex) -> str:
    flags = [] if node.anchored else ["search"]
    flags += [name for name, on in (("multiline", node.multiline), ("dotall", node.dotall)) if on]
    flags.append(node.dialect)
    return f" [{', '.join(flags)}]"


def _needs_parentheses(child: Node, parent: Node) -> bool:
    # Any group inside a group of the other kind is parenthesised, even where precedence would not require it.
    return isinstance(child, And | Or) and type(child) is not type(parent) and len(child.children) > 1


def _inline_child(child: Node, parent: Node) -> str:
    text = _inline(child)
    return f"({text})" if _needs_parentheses(child, parent) else text


def _indented(lines: list[str]) -> list[str]:
    return [INDENT + line for line in lines]


def _block(node: Node, width: int) -> list[str]:
    text = _inline(node)
    if len(text) <= width:
        return [text]
    parts = _leaf_parts(node)
    if parts is not None:
        head, values, tail = parts
        if len(values) == 1:
            return [text]
        items = [value + ("," if i < len(values) - 1 else "") for i, value in enumerate(values)]
        if isinstance(node, Cidr):
            return [head.rstrip(", ") + ",", *_indented(items), tail]
        return [head + "(", *_indented(items), ")" + tail]
    if isinstance(node, Not):
        if isinstance(node.child, And | Or):
            return ["not (", *_indented(_block(node.child, width - len(INDENT))), ")"]
        inner = _block(node.child, width - len("not "))
        return ["not " + inner[0], *inner[1:]]
    if isinstance(node, And | Or):
        op = "and" if isinstance(node, And) else "or"
        lines: list[str] = []
        for position, child in enumerate(node.children):
            sub = _block(child, width - len(INDENT))
            if _needs_parentheses(child, node):
                sub = ["(" + sub[0] + ")"] if len(sub) == 1 else ["(", *_indented(sub), ")"]
            if position:
                sub = [f"{op} {sub[0]}", *sub[1:]]
            lines.extend(sub)
        return lines
    return [text]
