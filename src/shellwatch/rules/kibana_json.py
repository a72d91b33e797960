"""Kibana rule JSON (one rule object, or an array of them) and saved-objects NDJSON exports -> rule outcomes.

Kibana's rule export (``POST /api/detection_engine/rules/_export``, or Stack Management -> Export) writes one
rule object per line, then exception lists and items the rules refer to, then one export-summary line
(``{"exported_count": ...}``). Rules keep their ``exceptions_list`` references; the exception-list and summary
lines are not rules and are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shellwatch.rules.kibana_schema import outcome_from_kibana_fields
from shellwatch.rules.model import RuleSource
from shellwatch.rules.outcome import LoadOutcome


def load_kibana_json(text: str, path: str) -> list[LoadOutcome]:
    """Outcomes for a ``.json`` file: one rule object, an array of rule objects, or NDJSON named ``.json``."""
    try:
        document = json.loads(text)
    except RecursionError:
        return [LoadOutcome(path=path, status="error", reason="invalid JSON: nested too deeply")]
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            # More than one JSON value: an export saved with a .json name.
            return load_kibana_ndjson(text, path)
        return [_json_error(path, exc)]
    if isinstance(document, list):
        return [_rule_outcome(item, path, index) for index, item in enumerate(document)]
    if _is_rule_like(document) or not _is_skipped_object(document):
        return [_rule_outcome(document, path, 0)]
    return []


def load_kibana_ndjson(text: str, path: str) -> list[LoadOutcome]:
    """Outcomes for a saved-objects export: one JSON object per line."""
    outcomes: list[LoadOutcome] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except RecursionError:
            outcomes.append(
                LoadOutcome(
                    path=path,
                    status="error",
                    reason="invalid JSON: nested too deeply",
                    index=len(outcomes),
                    line=line_number,
                )
            )
            continue
        except json.JSONDecodeError as exc:
            outcomes.append(
                LoadOutcome(
                    path=path,
                    status="error",
                    reason=f"invalid JSON: {exc.msg} (column {exc.colno})",
                    index=len(outcomes),
                    line=line_number,
                )
            )
            continue
        if isinstance(document, Mapping) and _is_skipped_object(document) and not _is_rule_like(document):
            continue
        outcomes.append(_rule_outcome(document, path, len(outcomes), line_number))
    return outcomes


def _is_rule_like(document: Any) -> bool:
    return isinstance(document, Mapping) and "rule_id" in document


def _is_skipped_object(document: Any) -> bool:
    """The export summary line, or an exception list / list item exported beside the rules."""
    if not isinstance(document, Mapping):
        return False
    return "exported_count" in document or "list_id" in document


def _rule_outcome(document: Any, path: str, index: int, line: int | None = None) -> LoadOutcome:
    if not isinstance(document, Mapping):
        return LoadOutcome(path=path, status="error", reason="a rule must be a JSON object", index=index, line=line)
    return outcome_from_kibana_fields(document, RuleSource(path=path, index=index), line=line)


def _json_error(path: str, exc: json.JSONDecodeError) -> LoadOutcome:
    return LoadOutcome(
        path=path, status="error", reason=f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno
    )
