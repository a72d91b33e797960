"""Every EQL rule of elastic/detection-rules (../shared/corpus/elastic-detection-rules) through the front end.

Each rule must either compile to a predicate or be refused as a sequence, sample or piped query; an invalid
query (QueryError) or any other refusal is a gap in the front end. The predicates run once over one event, so
every compiled rule has been exercised.
"""

from __future__ import annotations

import tomllib
from collections import Counter

from conftest import shared_path
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.query.eql import parse_eql
from shellwatch.query.errors import QueryError, UnsupportedQuery

MULTI_EVENT = {"sequence", "sample", "pipes"}


def test_every_elastic_eql_rule_compiles_or_is_multi_event() -> None:
    root = shared_path("corpus", "elastic-detection-rules")
    outcomes: Counter[str] = Counter()
    problems: list[str] = []
    probe = {"event.category": ["process"], "process.name": "cmd.exe", "host.os.type": "windows"}
    for path in sorted(root.rglob("*.toml")):
        rule = tomllib.loads(path.read_text(encoding="utf-8")).get("rule", {})
        if rule.get("language") != "eql":
            continue
        try:
            predicate = compile_predicate(parse_eql(rule["query"]))
        except UnsupportedQuery as exc:
            outcomes[exc.feature] += 1
            if exc.feature not in MULTI_EVENT:
                problems.append(f"{path.name}: unsupported {exc}")
            continue
        except QueryError as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        outcomes["compiled"] += 1
        assert predicate(probe) in (True, False)
    assert not problems, "\n".join(problems)
    assert outcomes["compiled"] > 800
    assert sum(outcomes.values()) > 1000
