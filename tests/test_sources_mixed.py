"""One hunt over a folder that mixes every source's fixtures (tests/fixtures/sources/<source>/), with no --source:
each record is attributed to the source it came from, and each positive fixture raises the seed EQL rule once.

The fixtures stand for the seed rule's eight index patterns (each folder's README says which real shapes they
copy); the Elastic Agent integration documents of logs-windows.sysmon_operational-* and logs-system.security* are
counted as ``elastic_agent``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from shellwatch.cli import main
from shellwatch.engine.ruleset import RuleSet
from shellwatch.normalize.dispatch import SOURCES, UNKNOWN
from shellwatch.pipeline import HuntStats, hunt
from shellwatch.rules.loader import load_bundled_rules
from shellwatch.sources.reader import read_paths

FIXTURES = Path(__file__).parent / "fixtures" / "sources"

# Folder -> the source its records are attributed to, and the index pattern the folder stands for.
FOLDERS = {
    "winlogbeat": ("winlogbeat", "winlogbeat-*"),
    "elastic_defend": ("elastic_defend", "logs-endpoint.events.process-*"),
    "sysmon_operational": ("elastic_agent", "logs-windows.sysmon_operational-*"),
    "endgame": ("endgame", "endgame-*"),
    "system_security": ("elastic_agent", "logs-system.security*"),
    "sentinel_one_cloud_funnel": ("sentinel_one_cloud_funnel", "logs-sentinel_one_cloud_funnel.*"),
    "m365_defender": ("m365_defender", "logs-m365_defender.event-*"),
    "crowdstrike_fdr": ("crowdstrike_fdr", "logs-crowdstrike.fdr*"),
}
SEED_EQL_RULE_ID = "2917d495-59bd-4250-b395-c29409b76086"


def fixture_files() -> list[Path]:
    return sorted(path for path in FIXTURES.rglob("*") if path.is_file() and path.suffix != ".md")


def seed_eql_rules() -> RuleSet:
    rules = [rule for rule in load_bundled_rules().rules if rule.rule_id == SEED_EQL_RULE_ID]
    assert len(rules) == 1
    return RuleSet(rules)


def test_every_index_pattern_has_a_positive_and_a_benign_fixture() -> None:
    assert sorted(path.name for path in FIXTURES.iterdir() if path.is_dir()) == sorted(FOLDERS)
    patterns = {pattern for _, pattern in FOLDERS.values()}
    assert len(patterns) == 8
    for folder in FOLDERS:
        names = [path.name for path in (FIXTURES / folder).iterdir()]
        assert any("positive" in name for name in names), folder
        assert any("benign" in name for name in names), folder
        assert "README.md" in names, folder


def test_one_hunt_over_every_source_attributes_each_record_and_finds_every_positive() -> None:
    expected_sources: Counter[str] = Counter()
    for path in fixture_files():
        records = sum(1 for _ in read_paths([str(path)], on_problem=lambda problem: None))
        assert records > 0, path
        expected_sources[FOLDERS[path.parent.name][0]] += records

    stats = HuntStats()
    alerts = list(hunt([str(FIXTURES)], seed_eql_rules(), stats=stats, workers=1))

    # The folders' README.md files are the only inputs that are not logs.
    assert {Path(problem.origin.path).name for problem in stats.problems} == {"README.md"}
    assert stats.by_source == expected_sources
    assert UNKNOWN not in stats.by_source
    alerted = Counter(Path(alert["shellwatch.origin"]["path"]).name for alert in alerts)
    positives = [path.name for path in fixture_files() if "positive" in path.name]
    assert alerted == Counter({name: 1 for name in positives})
    for alert in alerts:
        assert alert["kibana.alert.rule.rule_id"] == SEED_EQL_RULE_ID
        assert alert["process"]["name"].lower() in SHELLS
        assert alert["process"]["parent"]["name"].lower() in WEB_SERVERS


# The seed EQL rule's own lists (src/shellwatch/rules/pack/, version 416).
SHELLS = {"cmd.exe", "cscript.exe", "powershell.exe", "pwsh.exe", "powershell_ise.exe", "wmic.exe", "wscript.exe"}
WEB_SERVERS = {"w3wp.exe", "httpd.exe", "nginx.exe", "php.exe", "php-cgi.exe", "tomcat.exe"}


def test_the_same_alerts_with_more_workers() -> None:
    rules = seed_eql_rules()
    one = list(hunt([str(FIXTURES)], rules, workers=1))
    two = list(hunt([str(FIXTURES)], rules, workers=2))
    assert [a["kibana.alert.uuid"] for a in one] == [a["kibana.alert.uuid"] for a in two]


@pytest.mark.parametrize("folder", sorted(set(FOLDERS) - {"sysmon_operational", "system_security", "winlogbeat"}))
def test_naming_the_source_gives_the_same_alerts(folder: str) -> None:
    rules = seed_eql_rules()
    source = FOLDERS[folder][0]
    recognized = list(hunt([str(FIXTURES / folder)], rules, workers=1))
    stats = HuntStats()
    named = list(hunt([str(FIXTURES / folder)], rules, workers=1, source=source, stats=stats))
    assert [a["kibana.alert.uuid"] for a in named] == [a["kibana.alert.uuid"] for a in recognized]
    assert set(stats.by_source) == {source}


def test_naming_the_wrong_source_finds_nothing() -> None:
    """CrowdStrike rows read as SentinelOne Cloud Funnel have none of its fields: no process, no alert."""
    stats = HuntStats()
    alerts = list(
        hunt(
            [str(FIXTURES / "crowdstrike_fdr")],
            seed_eql_rules(),
            workers=1,
            source="sentinel_one_cloud_funnel",
            stats=stats,
        )
    )
    assert alerts == []
    assert set(stats.by_source) == {"sentinel_one_cloud_funnel"}


def test_records_of_no_known_source_are_counted_and_reported(tmp_path: Path) -> None:
    log = tmp_path / "mystery.ndjson"
    log.write_text('{"alpha": 1}\n{"beta": {"gamma": "w3wp.exe"}}\n', encoding="utf-8")
    stats = HuntStats()
    assert list(hunt([str(log)], seed_eql_rules(), stats=stats, workers=1)) == []
    assert stats.by_source == Counter({UNKNOWN: 2})
    assert stats.unrecognized_at == [f"{log}:1"]
    result = CliRunner().invoke(main, ["hunt", "--format", "ndjson", str(log)])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert f"2 records of no known source (first at {log}:1)" in result.stderr


def test_source_option_lists_every_source() -> None:
    result = CliRunner().invoke(main, ["hunt", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in SOURCES:
        assert name in result.stdout
    bad = CliRunner().invoke(main, ["hunt", "--source", "nonesuch", str(FIXTURES)])
    assert bad.exit_code == 2


def test_linux_process_events_stay_out_of_windows_rules_and_reach_linux_rules() -> None:
    """The benign fixtures of CrowdStrike (event_platform Lin), Endgame (POSIX paths), Microsoft 365 Defender
    (DeviceInfo OSPlatform / path shape) and SentinelOne (endpoint.os linux) hold a Linux web server starting a
    shell: the Windows seed rule stays quiet on them, and a Linux rule written the same way fires on each."""
    from shellwatch.query.eql import parse_eql
    from shellwatch.rules.model import Rule, RuleSource

    query = (
        'process where host.os.type == "linux" and event.type == "start" and '
        'process.parent.name in ("nginx", "httpd", "php-fpm8.1") and process.name in ("bash", "sh", "dash")'
    )
    linux_rule = Rule(
        rule_id="linux-web-shell-probe",
        name="Linux web server spawns a shell",
        description=query,
        type="eql",
        language="eql",
        query=query,
        ir=parse_eql(query),
        source=RuleSource(path="tests/test_sources_mixed.py"),
    )
    alerts = list(hunt([str(FIXTURES)], RuleSet([linux_rule]), workers=1))
    alerted = sorted(Path(alert["shellwatch.origin"]["path"]).parent.name for alert in alerts)
    assert alerted == ["crowdstrike_fdr", "endgame", "m365_defender", "sentinel_one_cloud_funnel"]
    windows = list(hunt([str(FIXTURES)], seed_eql_rules(), workers=1))
    assert all(alert["host"]["os"]["type"] == "windows" for alert in windows)
