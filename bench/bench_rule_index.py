"""RuleSet.matching with the rule index against every predicate run one by one, side by side, in one run.

Events: every process-start event of the EVTX corpora (../shared/corpus/evtx-attack-samples, hayabusa-sample-evtx,
omerbenamram-evtx), normalized in full. Rule sets: the bundled pack, and the bundled pack with every SigmaHQ
process_creation rule (../shared/corpus/sigmahq-rules). For each set: events/s of the index path
(``RuleIndex.candidates`` then the candidates' predicates) and of every predicate run, the median of --repeat
runs, the two interleaved so that load from other processes hits them alike; the index's build time, and the
candidates and matches per event. Both paths' matches are compared and must agree.

Usage: python bench/bench_rule_index.py [--shared ../shared] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from evtx import PyEvtxParser

from shellwatch.engine.rule_index import RuleIndex
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.windows_event import normalize_windows_event
from shellwatch.rules.loader import load_bundled_rules, load_rules
from shellwatch.rules.model import Rule

CORPORA = ("evtx-attack-samples", "hayabusa-sample-evtx", "omerbenamram-evtx")


def process_starts(shared: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for name in CORPORA:
        for path in sorted((shared / "corpus" / name).rglob("*.evtx")):
            try:
                records: Any = PyEvtxParser(str(path), number_of_threads=1).records_json()
            except Exception:
                continue
            while True:
                try:
                    for item in records:
                        try:
                            event = normalize_windows_event(orjson.loads(item["data"]))[1]
                        except orjson.JSONDecodeError:
                            continue
                        categories, types = event.get("event.category") or [], event.get("event.type") or []
                        if "process" in categories and "start" in types:
                            events.append(event)
                    break
                except RuntimeError:
                    continue
    return events


def rate(match: Callable[[Mapping[str, Any]], list[Rule]], events: list[dict[str, Any]]) -> float:
    start = time.process_time()
    for event in events:
        match(event)
    return len(events) / max(time.process_time() - start, 1e-9)


def index_path(index: RuleIndex, rule_set: RuleSet) -> Callable[[Mapping[str, Any]], list[Rule]]:
    """What RuleSet.matching does from INDEX_FROM_RULES rules up: the candidates' predicates only."""
    rules = rule_set.rules
    predicates = [compiled.predicate for compiled in rule_set.compiled]

    def through_index(event: Mapping[str, Any]) -> list[Rule]:
        return [rules[p] for p in index.candidates(event) if predicates[p](event)]

    return through_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not (args.shared / "corpus").is_dir():
        sys.exit(f"{args.shared / 'corpus'} is not there: this benchmark needs the corpus beside the project")
    events = process_starts(args.shared)
    bundled = list(load_bundled_rules().rules)
    folders = sorted(p for p in (args.shared / "corpus" / "sigmahq-rules").rglob("process_creation") if p.is_dir())
    sigma = list(load_rules(folders, jobs=2).rules)
    print(f"{len(events):,} process-start events; CPU time of this process, median of {args.repeat} runs")
    print(
        f"{'rule set':<28}{'rules':>7}{'build s':>9}{'cand/ev':>9}{'match/ev':>9}"
        f"{'index ev/s':>12}{'each ev/s':>12}{'ratio':>8}"
    )
    for label, rules in (("bundled pack", bundled), ("bundled + SigmaHQ proc_creat", bundled + sigma)):
        rule_set = RuleSet(rules)
        start = time.perf_counter()
        index = RuleIndex([rule.ir for rule in rules])
        build = time.perf_counter() - start
        through_index = index_path(index, rule_set)

        mismatches = sum(1 for event in events if through_index(event) != rule_set.matching_each(event))
        candidates = sum(len(index.candidates(event)) for event in events) / len(events)
        matches = sum(len(rule_set.matching_each(event)) for event in events) / len(events)
        indexed: list[float] = []
        each: list[float] = []
        for _ in range(args.repeat):
            indexed.append(rate(through_index, events))
            each.append(rate(rule_set.matching_each, events))
        fast, slow = statistics.median(indexed), statistics.median(each)
        print(
            f"{label:<28}{len(rules):>7}{build:>9.2f}{candidates:>9.2f}{matches:>9.3f}"
            f"{fast:>12,.0f}{slow:>12,.0f}{fast / slow:>8.1f}"
        )
        if mismatches:
            print(f"  WARNING: {mismatches} events matched differently")
    print("RuleSet.matching uses the index from", "shellwatch.engine.ruleset.INDEX_FROM_RULES", "rules up")


if __name__ == "__main__":
    main()
