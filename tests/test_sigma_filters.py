"""Sigma filters (meta rules) found among the rule files of a load are applied to the rules they name.

Their meaning is the Sigma Filters specification v2.1 (https://github.com/SigmaHQ/sigma-specification,
``specification/sigma-filters-specification.md``), SigmaHQ's guide (https://sigmahq.io/docs/meta/filters.html:
"append to each referenced Sigma rule's condition": ``condition: selection and (filter)``; references by ``id`` or
``name``; ``rules: any``; the log source must match), and pySigma 1.5's implementation (``sigma/filters.py``,
``SigmaFilter.apply_on_rule`` and ``_should_apply_on_rule``; ``sigma/collection.py``, ``SigmaCollection``).
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule

from conftest import shared_path
from shellwatch.cli import main
from shellwatch.engine.compile_python import compile_predicate
from shellwatch.engine.ruleset import RuleSet
from shellwatch.pipeline import hunt
from shellwatch.query.sigma import sigma_rule_to_ir
from shellwatch.rules import sigma_filters
from shellwatch.rules.loader import bundled_pack_path, load_rule_file, load_rules
from shellwatch.rules.model import Rule, RuleSource
from shellwatch.rules.outcome import LoadOutcome, LoadResult
from shellwatch.rules.sigma_filters import FILTER_LANGUAGE, sigma_filter_report

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sigma_filters"
IIS_FILTER = FIXTURES / "iis" / "mf_whoami_intranet_pool.yml"
SEED_SIGMA_ID = "12a3e00c-780c-5f9c-bd64-246c13be4bc9"
"""The id shellwatch derives for the bundled seed Sigma rule (it has no ``id``); the IIS fixture filter names it."""
RECON_ID = "3b9d1a52-8c47-4f0e-9d6a-0c2e5f7a1b94"
SHELL_ID = "5e2c8f10-4a6b-4d3e-8f1a-9b7c6d5e4f32"


def process_start(parent: str, child: str, *, pool: str = "DefaultAppPool", host: str = "WEB01") -> dict[str, Any]:
    """A Windows process start in flat ECS: ``parent`` (w3wp.exe of IIS application pool ``pool``) starts
    ``child``."""
    parent_path = rf"C:\Windows\System32\inetsrv\{parent}"
    return {
        "@timestamp": "2024-05-02T10:00:00.000Z",
        "host.os.type": "windows",
        "host.name": host,
        "event.category": ["process"],
        "event.type": ["start"],
        "process.parent.executable": parent_path,
        "process.parent.name": parent,
        "process.parent.command_line": f'{parent_path} -ap "{pool}" -v "v4.0"',
        "process.executable": rf"C:\Windows\System32\{child}",
        "process.name": child,
        "process.command_line": child,
    }


def by_id(result: LoadResult, rule_id: str) -> Rule:
    (rule,) = [rule for rule in result.rules if rule.rule_id == rule_id]
    return rule


def matches(rule: Rule) -> Callable[[Mapping[str, Any]], bool]:
    return compile_predicate(rule.ir)


def filter_outcomes(result: LoadResult) -> list[LoadOutcome]:
    return [outcome for outcome in result if outcome.language == FILTER_LANGUAGE]


# ------------------------------------------------------------------------------------------------------------
# The seed rule, tuned for one IIS application pool.


def test_the_fixture_filter_names_the_bundled_seed_rule() -> None:
    """The seed has no ``id``: the filter names it by the id shellwatch derives and shows (``rules list``)."""
    seed = by_id(load_rules([bundled_pack_path()]), SEED_SIGMA_ID)
    assert seed.language == "sigma"


def test_filter_silences_whoami_under_one_application_pool_only() -> None:
    """Exactly the matches the filter describes (whoami.exe under w3wp.exe of pool "Intranet") stop matching; the
    same tool under another pool, another tool under that pool, and a pool whose name only starts alike still
    match. The EQL seed rule (no Sigma rule) is left alone."""
    plain = load_rules([bundled_pack_path()])
    tuned = load_rules([bundled_pack_path(), IIS_FILTER])
    before, after = matches(by_id(plain, SEED_SIGMA_ID)), matches(by_id(tuned, SEED_SIGMA_ID))
    silenced = process_start("w3wp.exe", "whoami.exe", pool="Intranet")
    still = [
        process_start("w3wp.exe", "whoami.exe", pool="Payroll"),
        process_start("w3wp.exe", "cmd.exe", pool="Intranet"),
        process_start("w3wp.exe", "whoami.exe", pool="Intranet2"),
        process_start("httpd.exe", "whoami.exe", pool="Intranet"),
        process_start("w3wp.exe", "WHOAMI.EXE", pool="Payroll"),
    ]
    assert before(silenced) and not after(silenced)
    for event in still:
        assert before(event) and after(event), event
    # Case-insensitive like any Sigma value: the same filter covers WHOAMI.EXE under pool "INTRANET".
    assert not after(process_start("w3wp.exe", "WHOAMI.EXE", pool="INTRANET"))
    eql_rule = next(rule for rule in tuned.rules if rule.language == "eql")
    assert eql_rule == next(rule for rule in plain.rules if rule.language == "eql")

    report = sigma_filter_report(tuned)
    (application,) = report.applications
    assert application.rule_ids == (SEED_SIGMA_ID,)
    assert [f.filter_id for f in report.for_rule(SEED_SIGMA_ID)] == ["7d0c6f3e-2b51-4d8a-9a8e-3f1f0b6e5c21"]
    assert report.warnings == ()
    (outcome,) = filter_outcomes(tuned)
    assert (outcome.status, outcome.rule) == ("ok", None)
    assert outcome.reason == f"Sigma filter applied to 1 rule: {SEED_SIGMA_ID}"


def defend_start(number: int, pool: str, child: str) -> dict[str, Any]:
    """An Elastic Defend process start (nested ECS, as the endpoint writes it)."""
    return {
        "@timestamp": f"2024-05-02T10:0{number}:00.000Z",
        "agent": {"type": "endpoint"},
        "event": {"category": ["process"], "type": ["start"], "kind": "event", "id": f"evt-{number}"},
        "host": {"name": "web01", "os": {"type": "windows"}},
        "process": {
            "pid": 4000 + number,
            "name": child,
            "executable": f"C:\\Windows\\System32\\{child}",
            "command_line": child,
            "parent": {
                "pid": 3000 + number,
                "name": "w3wp.exe",
                "executable": "C:\\Windows\\System32\\inetsrv\\w3wp.exe",
                "command_line": f'c:\\windows\\system32\\inetsrv\\w3wp.exe -ap "{pool}" -v "v4.0"',
            },
        },
    }


def test_hunt_with_the_filter_drops_exactly_the_filtered_alerts(tmp_path: Path) -> None:
    """End to end: the same log hunted with and without the filter; only the Sigma rule's alert for whoami under
    "Intranet" is gone."""
    log = tmp_path / "web01.ndjson"
    docs = [
        defend_start(1, "Intranet", "whoami.exe"),
        defend_start(2, "Payroll", "whoami.exe"),
        defend_start(3, "Intranet", "cmd.exe"),
    ]
    log.write_text("".join(json.dumps(doc) + "\n" for doc in docs), encoding="utf-8")

    def alerts(rule_paths: list[Path]) -> set[tuple[str, str, str]]:
        rules = RuleSet(load_rules(rule_paths).rules)
        return {
            (a["kibana.alert.rule.rule_id"], a["process"]["name"], a["process"]["parent"]["command_line"])
            for a in hunt([str(log)], rules, workers=1)
        }

    plain = alerts([bundled_pack_path()])
    tuned = alerts([bundled_pack_path(), IIS_FILTER])
    gone = plain - tuned
    assert tuned <= plain
    assert {(rule_id, child) for rule_id, child, _ in gone} == {(SEED_SIGMA_ID, "whoami.exe")}
    assert all('-ap "Intranet"' in parent for _, _, parent in gone)
    assert sum(1 for rule_id, _, _ in tuned if rule_id == SEED_SIGMA_ID) == 2


def test_rules_show_lists_the_filters_applied() -> None:
    result = CliRunner().invoke(
        main,
        ["rules", "show", SEED_SIGMA_ID, "--rules", str(bundled_pack_path()), "--rules", str(IIS_FILTER)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "Sigma filters" in result.output
    assert "7d0c6f3e-2b51-4d8a-9a8e-3f1f0b6e5c21" in result.output
    assert "whoami started by the Intranet IIS application pool" in result.output
    assert "condition: not selection" in result.output
    alone = CliRunner().invoke(main, ["rules", "show", SEED_SIGMA_ID, "--rules", str(bundled_pack_path())])
    assert alone.exit_code == 0, alone.output
    assert "Sigma filters" not in alone.output


def test_rules_list_counts_filters_and_warns_about_idle_ones() -> None:
    result = CliRunner().invoke(
        main,
        ["rules", "list", "--rules", str(FIXTURES)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    # Four valid filters: the IIS one (its rule is not in the folder), mf_by_name, mf_invalid's first and
    # mf_wrong_logsource (which covers no rule it names); the two rules of named_rule.yml are filtered.
    assert result.stdout.splitlines()[-2:] == ["2 rules", "4 Sigma filters, applied to 2 rules"]
    assert "mf_whoami_intranet_pool.yml" in result.stderr and "names no loaded rule" in result.stderr
    assert "mf_wrong_logsource.yml" in result.stderr


# ------------------------------------------------------------------------------------------------------------
# References, log sources, errors.


@pytest.fixture(scope="module")
def fixture_load() -> LoadResult:
    return load_rules([FIXTURES / "named_rule.yml", FIXTURES / "mf_by_name.yml", FIXTURES / "mf_wrong_logsource.yml"])


def test_filter_by_name_applies_to_the_rule_with_that_name(fixture_load: LoadResult) -> None:
    """``rules: web_server_recon_tool`` (a single reference, not a list) names the rule whose ``name`` it is,
    not its sibling; the filter's ``logsource: product: windows`` covers the rule's process_creation/windows
    ("you can specify a logsource of a lower specificity in the filter")."""
    recon, shell = by_id(fixture_load, RECON_ID), by_id(fixture_load, SHELL_ID)
    check = matches(recon)
    assert not check(process_start("w3wp.exe", "ipconfig.exe", host="MON01"))
    assert check(process_start("w3wp.exe", "ipconfig.exe", host="WEB01"))
    assert check(process_start("w3wp.exe", "whoami.exe", host="MON01"))
    assert sigma_filter_report(fixture_load).for_rule(SHELL_ID) == ()
    assert shell == by_id(load_rules([FIXTURES / "named_rule.yml"]), SHELL_ID)


def test_logsource_mismatch_does_not_apply_and_is_reported(fixture_load: LoadResult) -> None:
    """A ``product: linux`` filter naming a Windows rule is not applied (pySigma: ``rule.logsource not in
    self.logsource`` -> the rule is returned unchanged) and the load says so."""
    report = sigma_filter_report(fixture_load)
    titles = [f.title for f in report.for_rule(RECON_ID)]
    assert titles == ["ipconfig from the monitoring host's web server"]
    (wrong,) = [a for a in report.applications if a.sigma_filter.title == "A Linux filter naming a Windows rule"]
    assert (wrong.rule_ids, wrong.not_covered) == ((), (RECON_ID,))
    (warning,) = report.warnings
    assert "mf_wrong_logsource.yml" in warning and "product: linux" in warning and RECON_ID in warning


def test_a_title_is_not_a_name(tmp_path: Path) -> None:
    """pySigma resolves a reference that is no UUID against rule ``name`` attributes only; a title names nothing,
    and the filter is reported as naming no loaded rule, with its file."""
    flt = tmp_path / "mf_by_title.yml"
    flt.write_text(
        "title: by title\nlogsource:\n  product: windows\nfilter:\n  rules: Web server starts a shell\n"
        "  sel:\n    host.name: X\n  condition: not sel\n",
        encoding="utf-8",
    )
    result = load_rules([FIXTURES / "named_rule.yml", flt])
    assert by_id(result, SHELL_ID) == by_id(load_rules([FIXTURES / "named_rule.yml"]), SHELL_ID)
    (warning,) = sigma_filter_report(result).warnings
    assert "names no loaded rule" in warning and str(flt) in warning


def test_invalid_filters_are_errors_with_file_and_line_and_the_rest_loads() -> None:
    """``mf_invalid.yml`` holds three filters: the first (``rules: any``) is valid and applies to both rules of
    its log source; the second lacks its condition, the third's condition names no item."""
    result = load_rules([FIXTURES / "named_rule.yml", FIXTURES / "mf_invalid.yml"])
    errors = {(o.where.rsplit("/", 1)[-1], o.reason) for o in result.errors}
    assert errors == {
        ("mf_invalid.yml#1:13", "Sigma filter must contain exactly one condition"),
        ("mf_invalid.yml#2:27", "Sigma filter: Detection 'selektion' not defined in detections"),
    }
    assert len(result.rules) == 2
    for rule in result.rules:
        check = matches(rule)
        assert not check(process_start("w3wp.exe", "cmd.exe", host="LAB01"))
        assert not check(process_start("w3wp.exe", "whoami.exe", host="LAB01"))
    assert matches(by_id(result, SHELL_ID))(process_start("w3wp.exe", "cmd.exe", host="LAB02"))
    assert matches(by_id(result, SHELL_ID))(process_start("w3wp.exe", "cmd.exe", host="LAB03"))


@pytest.mark.parametrize(
    ("section", "reason", "line"),
    [
        ("filter:\n  rules: [42]\n  sel:\n    host.name: X\n  condition: not sel\n", "rule ids or names", 6),
        ("filter:\n  rules: any\n  sel:\n    host.name|nosuchmodifier: X\n  condition: not sel\n", "nosuchmodifier", 5),
        ("filter: [1, 2]\n", "Sigma filter must be a dictionary", 5),
    ],
)
def test_one_invalid_filter_document(tmp_path: Path, section: str, reason: str, line: int) -> None:
    path = tmp_path / "mf_bad.yml"
    path.write_text("title: bad\nid: 1f7a0f43-5c2d-4e1b-9a8c-7d6e5f4a3b21\nlogsource:\n  product: windows\n" + section)
    (outcome,) = load_rule_file(path, cache=False)
    assert (outcome.status, outcome.line, outcome.language) == ("error", line, FILTER_LANGUAGE)
    assert reason in outcome.reason
    assert outcome.rule_id == "1f7a0f43-5c2d-4e1b-9a8c-7d6e5f4a3b21"


def test_a_filter_and_its_rule_in_one_multi_document_file(tmp_path: Path) -> None:
    """pySigma's ``SigmaCollection.from_dicts`` reads a ``filter`` document in a multi-document file (without
    merging the ``action: global`` template into it) and applies it to the collection's rules."""
    path = tmp_path / "tuned.yml"
    rule = (FIXTURES / "named_rule.yml").read_text(encoding="utf-8").split("---\n")[1]
    path.write_text(
        rule + "---\ntitle: not on LAB\nlogsource:\n  product: windows\nfilter:\n  rules: [web_server_shell]\n"
        "  lab:\n    host.name|startswith: LAB\n  condition: not lab\n",
        encoding="utf-8",
    )
    result = load_rules([path])
    check = matches(by_id(result, SHELL_ID))
    assert check(process_start("w3wp.exe", "cmd.exe")) and not check(process_start("w3wp.exe", "cmd.exe", host="LAB7"))
    (outcome,) = filter_outcomes(result)
    assert (outcome.index, outcome.line) == (1, 15)  # 13 lines of rule, then "---"


def test_them_means_the_filters_own_items() -> None:
    """pySigma rewrites the filter's ``them`` to all of the filter's renamed items (``_filt_..._*``), including an
    item whose name starts with ``_`` (which a rule's own ``them`` skips)."""
    detection = {"a": {"host.name": "A"}, "_b": {"host.name": "B"}, "condition": "not 1 of them"}
    renamed = sigma_filters.prefixed_detection(detection)
    assert renamed["condition"] == "not 1 of _filter_*"
    flt = sigma_filters.SigmaFilter(
        filter_id=None,
        title="t",
        logsource={"product": "windows"},
        references=None,
        detection=detection,
        source=RuleSource(path="x.yml"),
    )
    check = compile_predicate(sigma_filters.filter_ir(flt, {"category": "process_creation", "product": "windows"}))
    assert not check(process_start("w3wp.exe", "cmd.exe", host="A"))
    assert not check(process_start("w3wp.exe", "cmd.exe", host="B"))
    assert check(process_start("w3wp.exe", "cmd.exe", host="C"))


def test_filtered_rule_means_what_pysigma_makes_of_it() -> None:
    """The filtered IR equals, event for event, the rule pySigma's ``SigmaCollection`` builds by applying the
    filter (``(rule condition) and (filter condition)``, fields mapped with the rule's log source)."""
    documents = list(yaml.safe_load_all((FIXTURES / "named_rule.yml").read_text(encoding="utf-8")))
    documents.append(yaml.safe_load((FIXTURES / "mf_by_name.yml").read_text(encoding="utf-8")))
    collection = SigmaCollection.from_dicts(copy.deepcopy(documents))
    (recon,) = [r for r in collection.rules if isinstance(r, SigmaRule) and r.name == "web_server_recon_tool"]
    assert len(recon.detection.condition) == 1 and " and (not _filt_" in recon.detection.condition[0]
    theirs = compile_predicate(sigma_rule_to_ir(recon))
    ours = matches(by_id(load_rules([FIXTURES / "named_rule.yml", FIXTURES / "mf_by_name.yml"]), RECON_ID))
    events = [
        process_start(parent, child, host=host)
        for parent in ("w3wp.exe", "httpd.exe", "nginx.exe")
        for child in ("ipconfig.exe", "whoami.exe", "cmd.exe", "IPCONFIG.EXE")
        for host in ("MON01", "mon01", "WEB01")
    ]
    assert [theirs(e) for e in events] == [ours(e) for e in events]
    assert any(theirs(e) for e in events) and not all(theirs(e) for e in events)


# ------------------------------------------------------------------------------------------------------------
# The cache, and the corpus.


def test_the_cache_never_serves_a_rule_without_its_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Filters are applied after the compiled-rule cache: loading the rule alone, then with the filter, then
    alone again (each time served by the cache after the first) gives unfiltered, filtered, unfiltered."""
    monkeypatch.setenv("SHELLWATCH_CACHE_DIR", str(tmp_path / "cache"))
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(FIXTURES / "named_rule.yml", rules / "named_rule.yml")
    event = process_start("w3wp.exe", "ipconfig.exe", host="MON01")
    alone = load_rules([rules])
    assert matches(by_id(alone, RECON_ID))(event)
    tuned = load_rules([rules, FIXTURES / "mf_by_name.yml"])
    assert not matches(by_id(tuned, RECON_ID))(event)
    tuned_again = load_rules([rules, FIXTURES / "mf_by_name.yml"])
    assert not matches(by_id(tuned_again, RECON_ID))(event)
    assert matches(by_id(load_rules([rules]), RECON_ID))(event)
    assert any((tmp_path / "cache" / "rules").iterdir()), "the loads went through the cache"


SIGMAHQ_WEBSHELL_RULES = "proc_creation_win_webshell_*.yml"


def test_sigmahq_corpus_with_filters(tmp_path: Path) -> None:
    """SigmaHQ's rule set (../shared/corpus/sigmahq-rules) ships no filter: no ``filters`` folder and no document
    with a top-level ``filter:`` key. Its web-shell rules load with a filter naming one of them by id and a
    ``rules: any`` filter of their log source: each rule carries exactly the filters that name it."""
    corpus = shared_path("corpus", "sigmahq-rules")
    assert not [p for p in corpus.rglob("*") if p.is_dir() and "filter" in p.name.lower()]
    assert not [p for p in corpus.rglob("*.yml") if "\nfilter:" in "\n" + p.read_text(encoding="utf-8")]

    rule_files = sorted((corpus / "rules" / "windows" / "process_creation").glob(SIGMAHQ_WEBSHELL_RULES))
    assert len(rule_files) >= 5
    loaded = load_rules(rule_files)
    target = loaded.rules[0]
    filters = tmp_path / "filters"
    filters.mkdir()
    (filters / "mf_one.yml").write_text(
        f"title: one rule\nlogsource:\n  category: process_creation\n  product: windows\nfilter:\n"
        f"  rules:\n    - {target.rule_id}\n  lab:\n    host.name: LAB01\n  condition: not lab\n",
        encoding="utf-8",
    )
    (filters / "mf_any.yml").write_text(
        "title: every windows rule\nlogsource:\n  product: windows\nfilter:\n  rules: any\n"
        "  test_hosts:\n    host.name|startswith: TEST-\n  condition: not test_hosts\n",
        encoding="utf-8",
    )
    tuned = load_rules([*rule_files, filters])
    assert [o.status for o in loaded] == [o.status for o in tuned if o.language != FILTER_LANGUAGE]
    report = sigma_filter_report(tuned)
    assert report.warnings == ()
    for rule in tuned.rules:
        expected = ["one rule", "every windows rule"] if rule.rule_id == target.rule_id else ["every windows rule"]
        assert sorted(f.title for f in report.for_rule(rule.rule_id)) == sorted(expected), rule.name
        original = by_id(loaded, rule.rule_id)
        assert rule.ir != original.ir and dataclass_without_ir(rule) == dataclass_without_ir(original)


def dataclass_without_ir(rule: Rule) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in rule.__slots__ if name != "ir"}
