"""The scale benchmark's "big set" (bench/big_rule_set.py) holds the rules the issue names, and only those.

The Elastic selection follows the rules' own metadata: ``type`` and the query (EQL grammar:
https://www.elastic.co/guide/en/elasticsearch/reference/current/eql-syntax.html, where ``sequence`` and ``sample``
are the forms that join events), the ``OS: Windows`` tag (elastic/detection-rules, detection_rules/schemas and
rules/windows/*.toml), and ``metadata.maturity`` (``deprecated`` for rules/_deprecated).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import shared_path
from shellwatch.rules.loader import load_rules


def _big_rule_set() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "big_rule_set.py"
    spec = importlib.util.spec_from_file_location("big_rule_set", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("big_rule_set", module)
    spec.loader.exec_module(module)
    return module


big_rule_set = _big_rule_set()


@pytest.fixture(scope="module")
def big_set() -> Any:
    """The big set's files (the Elastic TOMLs are read once for the module's tests)."""
    return big_rule_set.big_set_files(shared_path())


def _elastic(rule_type: str = "eql", query: str = 'process where process.name == "cmd.exe"', **rule: Any) -> Any:
    document = {
        "metadata": {"maturity": rule.pop("maturity", "production")},
        "rule": {"type": rule_type, "query": query, "tags": rule.pop("tags", ["OS: Windows"]), **rule},
    }
    return big_rule_set.elastic_selection_reason(document)


def test_a_single_event_windows_eql_rule_is_in() -> None:
    assert _elastic() is None


def test_rules_of_other_types_are_out() -> None:
    assert _elastic("query", query="process.name:cmd.exe") == "type 'query'"
    assert _elastic("new_terms") == "type 'new_terms'"


def test_queries_that_join_events_are_out_even_after_a_comment() -> None:
    joined = "joins events (sequence or sample)"
    assert _elastic(query="sequence by host.id [process where true] [file where true]") == joined
    assert _elastic(query="sample by host.id [process where true] [network where true]") == joined
    assert _elastic(query="/* a note\n   over two lines */\n\nsequence by host.id [process where true]") == joined
    assert _elastic(query="// a note\nsequence by host.id [process where true]") == joined
    # The keyword inside a field value or later in the query does not make a join.
    assert _elastic(query='process where process.name == "sequence.exe"') is None


def test_rules_without_the_windows_tag_or_deprecated_are_out() -> None:
    assert _elastic(tags=["OS: Linux"]) == "no 'OS: Windows' tag"
    assert _elastic(tags=["OS: Linux", "OS: Windows", "OS: macOS"]) is None
    assert _elastic(maturity="deprecated") == "deprecated"


def test_the_big_set_counts_are_those_of_the_corpus(big_set: Any) -> None:
    files = big_set
    # 1,434 process_creation rules at the SigmaHQ commit of corpus/MANIFEST.md.
    assert len(files.sigma) == 1434
    assert all(path.suffix == ".yml" and "process_creation" in path.parts for path in files.sigma)
    # 1,081 eql rules in the Elastic corpus; about 400 of them single-event and tagged Windows.
    assert 350 <= len(files.eql) <= 450
    assert all(path.suffix == ".toml" and "_deprecated" not in path.parts for path in files.eql)


def test_known_rules_are_in_or_out(big_set: Any) -> None:
    shared = shared_path()
    files = big_set
    names = {path.relative_to(shared / "corpus").as_posix() for path in files.all}
    elastic = "elastic-detection-rules/rules"
    sigma = "sigmahq-rules/rules"
    assert f"{elastic}/windows/credential_access_iis_apppoolsa_pwd_appcmd.toml" in names
    assert f"{elastic}/cross-platform/execution_sap_netweaver_webshell_exec.toml" in names  # Linux and Windows
    assert f"{sigma}/windows/process_creation/proc_creation_win_webshell_recon_commands_and_processes.yml" in names
    assert f"{sigma}/linux/process_creation/proc_creation_lnx_base64_decode.yml" in names
    # A sequence behind a leading comment, a Linux EQL rule, a deprecated rule, the web shell rule (new_terms at
    # the corpus' commit), Sigma outside process_creation.
    assert f"{elastic}/windows/defense_evasion_parent_process_pid_spoofing.toml" not in names
    assert f"{elastic}/linux/command_and_control_cat_network_activity.toml" not in names
    assert f"{elastic}/_deprecated/apm_null_user_agent.toml" not in names
    assert f"{elastic}/windows/persistence_webshell_detection.toml" not in names
    assert not any("/image_load/" in name for name in names)


def test_a_sample_of_the_chosen_eql_rules_loads_as_single_event_eql(big_set: Any) -> None:
    files = big_set
    sample = files.eql[::25]
    result = load_rules(sample)
    assert len(result.rules) == len(sample)
    assert {rule.language for rule in result.rules} == {"eql"}
