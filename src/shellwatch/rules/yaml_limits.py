"""Bounds on untrusted YAML before it is built into objects: nesting depth and alias expansion.

libyaml's composer (PyYAML's C loader, which pySigma's ``SigmaYAMLLoader`` uses) recurses in C for each nesting
level, so a file of a few hundred kilobytes of ``[[[[...`` crashes the interpreter instead of raising; and YAML
aliases let a small file stand for an exponentially large one ("billion laughs"), which pySigma and the derived
id would then walk in full. :func:`yaml_problem` walks the parser's event stream -- iterative, no objects built --
and reports either before anything is composed. Real rules are nowhere near the limits (SigmaHQ's deepest rule
nests under 10 levels and none uses an alias).
"""

from __future__ import annotations

import yaml

MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences accepted."""

MAX_NODES = 1_000_000
"""Most nodes a document may expand to, counting every alias as a copy of the node it names."""


def yaml_problem(text: str) -> str | None:
    """Why ``text`` must not be composed (too deep, or expanding too far through aliases), or None.

    Syntax errors are left for the loader proper, which reports them with their line.
    """
    sizes: list[int] = []
    anchors_open: list[str | None] = []
    anchored: dict[str, int] = {}
    total = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                sizes.append(1)
                anchors_open.append(event.anchor)
                if len(sizes) > MAX_DEPTH:
                    return f"nested deeper than {MAX_DEPTH} levels"
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                size = sizes.pop()
                anchor = anchors_open.pop()
                if anchor is not None:
                    anchored[anchor] = size
                if sizes:
                    sizes[-1] += size
                continue
            if isinstance(event, yaml.AliasEvent):
                added = anchored.get(event.anchor or "", 1)
            elif isinstance(event, yaml.ScalarEvent):
                added = 1
                if event.anchor is not None:
                    anchored[event.anchor] = 1
            else:
                continue
            total += added
            if sizes:
                sizes[-1] += added
            if total > MAX_NODES:
                return f"expands to more than {MAX_NODES} values through YAML aliases"
    except yaml.YAMLError:
        return None
    return None
