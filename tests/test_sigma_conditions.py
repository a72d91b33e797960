"""Sigma conditions, keyword searches and invalid or unsupported rules.

Reference: the Sigma specification v2, https://github.com/SigmaHQ/sigma-specification --
``specification/sigma-rules-specification.md`` sections "Condition" (and/or/not, ``1 of``/``all of``, ``them``,
brackets, operator precedence, condition lists) and "Keywords search"; pySigma 1.5 resolves selectors in
``sigma/conditions.py`` (``ConditionSelector``) and its Elasticsearch Lucene backend searches keywords as
``*value*`` (pysigma-backend-elasticsearch ``elasticsearch_lucene.py``, ``unbound_value_str_expression``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule

from shellwatch.engine.compile_python import compile_predicate
from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.ir import And, Keyword
from shellwatch.query.sigma import sigma_rule_to_ir

Predicate = Callable[[Mapping[str, Any]], bool]
PROCESS_START = {"host.os.type": "windows", "event.category": ["process"], "event.type": ["start"]}


def rule(detection: str, logsource: str = "product: windows\n    category: process_creation") -> SigmaRule:
    text = (
        f"title: test\nlogsource:\n    {logsource}\n"
        "detection:\n" + textwrap.indent(textwrap.dedent(detection).strip("\n"), "    ") + "\n"
    )
    return SigmaRule.from_yaml(text)


def sigma(detection: str, logsource: str = "product: windows\n    category: process_creation") -> Predicate:
    return compile_predicate(sigma_rule_to_ir(rule(detection, logsource)))


def proc(command_line: str | None = None, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {**PROCESS_START, **{k.replace("__", "."): v for k, v in fields.items()}}
    if command_line is not None:
        event["process.command_line"] = command_line
    return event


SELECTIONS = """
    selection_a:
        CommandLine|contains: 'alpha'
    selection_b:
        CommandLine|contains: 'beta'
    filter_x:
        CommandLine|contains: 'xray'
    filter_y:
        CommandLine|contains: 'yankee'
"""


def with_condition(condition: str) -> Predicate:
    return sigma(SELECTIONS + f"    condition: {condition}\n")


def test_one_of_pattern() -> None:
    """Spec "Condition", ``1 of search-identifier-pattern``: OR over the matching identifiers."""
    match = with_condition("1 of selection_*")
    assert match(proc("alpha"))
    assert match(proc("beta"))
    assert not match(proc("xray"))


def test_all_of_pattern() -> None:
    """Spec "Condition", ``all of search-identifier-pattern``: AND over the matching identifiers."""
    match = with_condition("all of selection_*")
    assert match(proc("alpha beta"))
    assert not match(proc("alpha"))


def test_all_of_them_and_one_of_them() -> None:
    """Spec "Condition", ``1/all of them``: every search identifier."""
    every = with_condition("all of them")
    anyone = with_condition("1 of them")
    assert every(proc("alpha beta xray yankee"))
    assert not every(proc("alpha beta xray"))
    assert anyone(proc("yankee"))
    assert not anyone(proc("zulu"))


def test_them_skips_identifiers_starting_with_underscore() -> None:
    """Spec "Condition": ``1 of them`` covers identifiers "not starting with an underscore"."""
    match = sigma("""
        selection:
            CommandLine|contains: 'alpha'
        _helper:
            CommandLine|contains: 'beta'
        condition: all of them
    """)
    assert match(proc("alpha"))


def test_not_one_of_filters() -> None:
    """Spec "Condition": ``1 of selection* and not 1 of filter*``."""
    match = with_condition("1 of selection_* and not 1 of filter_*")
    assert match(proc("alpha"))
    assert not match(proc("alpha xray"))
    assert not match(proc("beta yankee"))
    assert not match(proc("zulu"))


def test_operator_precedence_and_brackets() -> None:
    """Spec "Condition", operator precedence (least to most binding): or, and, not, x of, brackets."""
    and_binds_tighter = with_condition("selection_a or selection_b and filter_x")
    assert and_binds_tighter(proc("alpha"))
    assert not and_binds_tighter(proc("beta"))
    assert and_binds_tighter(proc("beta xray"))
    brackets = with_condition("(selection_a or selection_b) and filter_x")
    assert not brackets(proc("alpha"))
    assert brackets(proc("alpha xray"))
    not_binds_tighter = with_condition("not selection_a and selection_b")
    assert not_binds_tighter(proc("beta"))
    assert not not_binds_tighter(proc("alpha beta"))
    nested = with_condition("not (selection_a or selection_b)")
    assert nested(proc("xray"))
    assert not nested(proc("beta"))


def test_list_of_maps_is_or() -> None:
    """Spec "Lists": a list of maps is OR-linked; each map AND-links its fields."""
    match = sigma(r"""
        selection:
            - Image|endswith: '\example.exe'
            - Description|contains: 'Test executable'
        condition: selection
    """)
    assert match(proc(process__executable=r"C:\x\example.exe"))
    assert match(proc(process__pe__description="A test executable"))
    assert not match(proc(process__executable=r"C:\x\other.exe"))


def test_condition_list_is_or() -> None:
    """Spec "Condition": "The condition can be a list ... They are logically linked with OR"."""
    match = sigma(
        SELECTIONS
        + """
    condition:
        - selection_a and filter_x
        - selection_b
"""
    )
    assert match(proc("alpha xray"))
    assert match(proc("beta"))
    assert not match(proc("alpha"))


# -- keywords ---------------------------------------------------------------------------------------------------------


def test_keywords_search_every_string_value_as_substrings() -> None:
    """Spec "Keywords search": a list of values without field names, OR-linked, searched across the whole event,
    as substrings and case-insensitively (Lucene backend ``*value*``)."""
    match = sigma("""
        keywords:
            - 'sekurlsa::logonpasswords'
            - 'mimikatz'
        condition: keywords
    """)
    assert match(proc("C:\\t\\MimiKatz.exe privilege::debug"))
    assert match(proc(winlog__event_data__ParentCommandLine="x sekurlsa::LogonPasswords exit"))
    assert match(proc(tags=["a", "run mimikatz now"]))
    assert not match(proc("notepad.exe"))


def test_keywords_all_is_and() -> None:
    """Spec "Keywords search": ``'|all':`` AND-links the keywords; they may sit in different fields."""
    match = sigma("""
        keywords:
            '|all':
                - 'OabVirtualDirectory'
                - ' -ExternalUrl '
        condition: keywords
    """)
    assert match(proc("Set-OabVirtualDirectory -ExternalUrl 'http://x'"))
    assert match(proc("Set-OabVirtualDirectory", process__parent__command_line="x -ExternalUrl y"))
    assert not match(proc("Set-OabVirtualDirectory -InternalUrl x"))


def test_keyword_with_wildcard_and_number() -> None:
    """A keyword keeps its own wildcards inside the implicit ``*...*``; a number is searched as its digits."""
    match = sigma("""
        keywords:
            - 'evil*tool'
        condition: keywords
    """)
    assert match(proc("x EVIL-super-TOOL y"))
    assert not match(proc("tool evil"))
    number = rule("keywords:\n    - 4625\ncondition: keywords")
    node = sigma_rule_to_ir(number)
    assert isinstance(node, And)
    assert [child for child in node.children if isinstance(child, Keyword)] == [Keyword(("*4625*",))]
    assert compile_predicate(node)(proc("event 4625 logged"))


def test_keyword_and_field_selection_combined() -> None:
    """Keywords and field selections combine like any search identifiers."""
    match = sigma(r"""
        selection:
            Image|endswith: '\powershell.exe'
        keywords:
            - 'DownloadString'
        condition: selection and keywords
    """)
    assert match(proc("iex (New-Object Net.WebClient).downloadstring('x')", process__executable=r"C:\p\powershell.exe"))
    assert not match(proc("iex (New-Object Net.WebClient).downloadstring('x')", process__executable=r"C:\p\cmd.exe"))


def test_keyword_regular_expression_is_unsupported() -> None:
    """A regular expression without a field has no defined meaning across an event here: rejected."""
    with pytest.raises(UnsupportedQuery) as raised:
        sigma("keywords:\n    '|re': 'mimi.*katz'\ncondition: keywords")
    assert raised.value.feature == "keyword regular expression"


# -- invalid and unsupported rules ------------------------------------------------------------------------------------


def test_undefined_identifier_is_a_query_error() -> None:
    """A condition naming a search identifier that is not defined: pySigma's SigmaConditionError, raised while the
    condition is parsed, becomes a QueryError."""
    with pytest.raises(QueryError, match="not defined"):
        sigma("selection:\n    CommandLine: x\ncondition: selection and missing")


def test_condition_syntax_error_is_a_query_error() -> None:
    with pytest.raises(QueryError):
        sigma("selection:\n    CommandLine: x\ncondition: selection and and")


def test_old_aggregation_syntax_is_unsupported() -> None:
    """Sigma v1 ``| count() by ...`` aggregations were replaced by correlation rules (spec v2)."""
    with pytest.raises(UnsupportedQuery) as raised:
        sigma("selection:\n    CommandLine: x\ncondition: selection | count() by User > 5")
    assert raised.value.feature == "aggregation condition"


def test_correlation_rule_is_unsupported() -> None:
    """``specification/sigma-correlation-rules-specification.md``: correlation rules aggregate several events."""
    documents = textwrap.dedent("""
        title: base
        name: base_rule
        logsource:
            product: windows
            category: process_creation
        detection:
            selection:
                CommandLine: x
            condition: selection
        ---
        title: many
        correlation:
            type: event_count
            rules:
                - base_rule
            group-by:
                - User
            timespan: 5m
            condition:
                gte: 10
    """)
    collection = SigmaCollection.from_yaml(documents)
    correlation = collection.rules[-1]
    with pytest.raises(UnsupportedQuery) as raised:
        sigma_rule_to_ir(correlation)  # type: ignore[arg-type]
    assert raised.value.feature == "correlation rule"


def test_boolean_keyword_is_a_query_error() -> None:
    """pySigma's backends reject a boolean without a field (``convert_condition_val``)."""
    with pytest.raises(QueryError):
        sigma("keywords:\n    - true\ncondition: keywords")
