"""Elastic detection-rules TOML files (a ``[metadata]`` table and a ``[rule]`` table) -> rule outcomes.

The format is elastic/detection-rules' (``rules/**/*.toml``): ``[rule]`` holds the Kibana rule fields,
``[metadata]`` bookkeeping such as ``maturity`` (kept as the rule's status). Anything else in the file
(``[transform]``, the investigation-guide templates) does not change what the rule matches and is ignored.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping

from shellwatch.rules.kibana_schema import outcome_from_kibana_fields
from shellwatch.rules.model import RuleSource
from shellwatch.rules.outcome import LoadOutcome

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)")


def load_elastic_toml(text: str, path: str) -> list[LoadOutcome]:
    """The outcome of the one rule a detection-rules TOML file holds; ``path`` names the file in messages."""
    try:
        document = tomllib.loads(text)
    except RecursionError:
        return [LoadOutcome(path=path, status="error", reason="invalid TOML: nested too deeply")]
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.search(str(exc))
        return [
            LoadOutcome(
                path=path,
                status="error",
                reason=f"invalid TOML: {_TOML_POSITION.sub('', str(exc))}",
                line=int(match.group(1)) if match else None,
            )
        ]
    rule = document.get("rule")
    if not isinstance(rule, Mapping):
        return [LoadOutcome(path=path, status="error", reason="no [rule] table")]
    metadata = document.get("metadata")
    maturity = metadata.get("maturity") if isinstance(metadata, Mapping) else None
    return [
        outcome_from_kibana_fields(rule, RuleSource(path=path), status=maturity if isinstance(maturity, str) else None)
    ]
