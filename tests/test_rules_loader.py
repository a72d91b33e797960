"""Walking files and folders into outcomes (shellwatch.rules.loader) and the bundled rule pack."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shellwatch.rules import loader
from shellwatch.rules.loader import bundled_pack_path, iter_rule_files, load_bundled_rules, load_rule_file, load_rules

SIGMA = """title: Shell from w3wp
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        ParentImage|endswith: '\\w3wp.exe'
    condition: selection
level: high
"""


def test_bundled_pack_holds_the_seed_rules_and_the_new_terms_version() -> None:
    result = load_bundled_rules()
    assert [(o.status, o.language, o.rule.type if o.rule else None) for o in result] == [
        ("ok", "eql", "eql"),
        ("ok", "kuery", "new_terms"),
        ("ok", "sigma", "sigma"),
    ]
    assert [r.rule_id for r in result.rules] == [
        "2917d495-59bd-4250-b395-c29409b76086",
        "4203af34-1eac-57d8-b0d4-58a2d525bb80",
        "12a3e00c-780c-5f9c-bd64-246c13be4bc9",
    ]
    new_terms = result.rules[1]
    assert new_terms.name.endswith("(new terms)")
    assert (new_terms.new_terms_fields, new_terms.history_window_start) == (
        ("host.id", "process.command_line"),
        "now-7d",
    )
    names = sorted(p.name for p in bundled_pack_path().iterdir())
    assert {"README.md", "NOTICE"} <= set(names)


def test_bundled_sigma_file_is_seed_002_byte_for_byte() -> None:
    """The pack's Sigma file is exactly the ```yml block under "sigma规则" in seed 002, comments included."""
    from conftest import shared_path

    seed = shared_path("seeds", "002_34a43a8019901ab4.txt").read_text(encoding="utf-8")
    block = seed.split("### sigma规则", 1)[1].split("```yml\n", 1)[1].split("```", 1)[0]
    packed = (bundled_pack_path() / "web_server_suspicious_child_process.yml").read_text(encoding="utf-8")
    assert packed == block
    assert "#测试状态" in packed and "# an old one" in packed


def test_folders_are_walked_sorted_skipping_hidden_and_other_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "rule.yml").write_text(SIGMA, encoding="utf-8")
    (tmp_path / "a.yaml").write_text(SIGMA.replace("Shell from", "Another shell from"), encoding="utf-8")
    (tmp_path / "README.md").write_text("# rules\n", encoding="utf-8")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "workflow.yml").write_text("on: push\n", encoding="utf-8")
    files = [p.relative_to(tmp_path).as_posix() for p in iter_rule_files([tmp_path])]
    assert files == ["a.yaml", "b/rule.yml"]
    result = load_rules([tmp_path])
    assert [o.status for o in result] == ["ok", "ok"]
    assert [r.name for r in result.rules] == ["Another shell from w3wp", "Shell from w3wp"]


def test_explicit_file_with_unknown_extension_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rule.txt"
    path.write_text(SIGMA, encoding="utf-8")
    [outcome] = load_rules([path])
    assert outcome.status == "error"
    assert outcome.reason.startswith("not a rule file")
    assert outcome.path == str(path)


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    [outcome] = load_rules([tmp_path / "nope.yml"])
    assert (outcome.status, outcome.path) == ("error", str(tmp_path / "nope.yml"))
    assert outcome.reason.startswith("cannot read")


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rule.yml"
    path.write_bytes(b"title: \xff\xfe\n")
    [outcome] = load_rule_file(path)
    assert (outcome.status, outcome.reason) == ("error", "not UTF-8 text (byte 7)")


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "rule.yml"
    path.write_bytes(b"\xef\xbb\xbf" + SIGMA.encode())
    assert load_rule_file(path)[0].status == "ok"


def test_oversized_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_RULE_FILE_BYTES", 100)
    path = tmp_path / "rule.yml"
    path.write_text(SIGMA, encoding="utf-8")
    [outcome] = load_rule_file(path)
    assert outcome.status == "error" and outcome.reason.startswith("file too large")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable files")
def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rule.yml"
    path.write_text(SIGMA, encoding="utf-8")
    path.chmod(0)
    assert load_rule_file(path)[0].reason.startswith("cannot read")


def test_mixed_folder_of_formats(tmp_path: Path) -> None:
    pack = bundled_pack_path()
    (tmp_path / "elastic.toml").write_text((pack / "persistence_webshell_detection.toml").read_text("utf-8"), "utf-8")
    (tmp_path / "broken.toml").write_text("[rule\n", encoding="utf-8")
    (tmp_path / "sigma.yml").write_text(SIGMA, encoding="utf-8")
    result = load_rules([tmp_path])
    assert [(Path(o.path).name, o.status) for o in result] == [
        ("broken.toml", "error"),
        ("elastic.toml", "ok"),
        ("sigma.yml", "ok"),
    ]
    assert result.counts() == {"ok": 2, "error": 1}
    assert len(result.rules) == 2 and len(result.errors) == 1 and result.unsupported == ()
