"""The Elasticsearch type of an ECS field, as Elastic's index templates map it: what KQL and Kibana filters need.

A KQL rule means what Elasticsearch makes of it, and that depends on the mapping of each field: a ``match``
query is an exact term on a ``keyword`` or ``wildcard`` field, a word search on ``text`` / ``match_only_text``,
a number on ``long``, a CIDR block on ``ip``. shellwatch's events carry no mapping, so this table stands in for
the one Elastic's integrations install (ECS field definitions; generated/csv/fields.csv and the component
templates of https://github.com/elastic/ecs).

What the table holds, and where each part comes from:

* ``wildcard`` fields, from ECS RFC 0001 "Wildcard Field Migration"
  (https://github.com/elastic/ecs/blob/main/rfcs/text/0001-wildcard-data-type.md): ``process.command_line``
  (in every reuse of the process field set: ``process.parent.command_line``...), ``registry.data.strings``,
  ``url.full``, ``url.original``, ``url.path`` (in every reuse of url), ``error.stack_trace``,
  ``http.request.body.content`` and ``http.response.body.content``. ``file.path`` stays ``keyword``.
* ``match_only_text``: ``message``, ``error.message`` and every ``.text`` multi-field (ECS RFC 0000
  "match_only_text"); these are analyzed with the standard analyzer.
* Numbers, dates, IPs and booleans: the ECS leaves of those types (``*.port``, ``*.bytes``, ``*.pid``,
  ``*.ip``, ``@timestamp``...), by leaf name, since ECS reuses its field sets under many prefixes; checked
  against ECS 8.12 ``generated/csv/fields.csv``, including the leaves whose name misleads
  (``registry.data.bytes`` is the base64 text of the value: ``keyword``; ``x509.version_number`` and
  ``elf.sections.physical_offset`` are ``keyword``).
* ``.caseless``: Elastic Defend's multi-field (``process.name.caseless``...) is a ``keyword`` with a lowercase
  normalizer (elastic/endpoint-package custom_schemas); it reads the same value as its parent field.
* Everything else is ``keyword`` when it is an ECS name, and ``unknown`` otherwise (an integration field such
  as ``o365.audit.OperationCount``): a front end then accepts the value in each form the field could be mapped
  to (a numeric literal as a number and as its text).

Not modelled: ``ignore_above`` (ECS keyword fields ignore values longer than 1,024 characters when indexing, so
Elasticsearch cannot find those; shellwatch can), and ``flattened`` / ``nested`` mappings of integrations.
"""

from __future__ import annotations

from typing import Literal

FieldType = Literal["keyword", "wildcard", "text", "long", "float", "date", "ip", "boolean", "unknown"]
"""The types whose query semantics differ: ``text`` stands for ``text`` and ``match_only_text``; ``long`` for
every integer type; ``float`` for ``float``, ``double`` and ``scaled_float``."""

CASELESS_SUFFIX = ".caseless"
TEXT_SUFFIX = ".text"

_WILDCARD_LEAVES = (
    "command_line",
    "registry.data.strings",
    "url.full",
    "url.original",
    "url.path",
    "error.stack_trace",
    "http.request.body.content",
    "http.response.body.content",
)

_TEXT_FIELDS = frozenset({"message", "error.message"})

_LONG_LEAVES = frozenset(
    {
        "port",
        "bytes",
        "packets",
        "pid",
        "ppid",
        "pgid",
        "vpid",
        "uptime",
        "duration",
        "sequence",
        "severity",
        "status_code",
        "ttl",
        "size",
        "args_count",
        "exit_code",
        "number",
        "priority",
        "facility.code",
        "severity.code",
        "line",
        "total_bytes_captured",
        "total_bytes_skipped",
        "major",
        "minor",
        "thread.id",
        "body.bytes",
        "columns",
        "rows",
        "entropy",
        "var_entropy",
        "chi2",
        "physical_size",
        "virtual_size",
        "virtual_address",
        "entrypoint",
        "public_key_size",
        "public_key_exponent",
        "imports_names_entropy",
        "imports_names_var_entropy",
        "go_imports_names_entropy",
        "go_imports_names_var_entropy",
        "sightings",
        "scanner_stats",
        "bytes_skipped.offset",
        "bytes_skipped.length",
    }
)

_FLOAT_LEAVES = frozenset(
    {
        "risk_score",
        "risk_score_norm",
        "calculated_score",
        "calculated_score_norm",
        "static_score",
        "static_score_norm",
        "base",
        "environmental",
        "temporal",
        "usage",
    }
)

_DATE_LEAVES = frozenset(
    {
        "@timestamp",
        "created",
        "ingested",
        "start",
        "end",
        "accessed",
        "ctime",
        "mtime",
        "not_after",
        "not_before",
        "first_seen",
        "last_seen",
        "modified_at",
        "provided_at",
        "timestamp",
        "creation_date",
        "delivery_timestamp",
        "origination_timestamp",
        "installed",
        "occurred",
    }
)

_IP_LEAVES = frozenset({"ip", "resolved_ip", "forwarded_ip"})

_BOOLEAN_LEAVES = frozenset(
    {
        "trusted",
        "exists",
        "valid",
        "interactive",
        "same_as_process",
        "privileged",
        "established",
        "resumed",
        "go_stripped",
        "coldstart",
        "removable",
        "writable",
        "max_bytes_per_process_exceeded",
    }
)

_KEYWORD_LEAVES = ("vulnerability.severity", "registry.data.bytes")
"""ECS keyword fields whose leaf name is numeric elsewhere (``registry.data.bytes`` is reused under
``threat.indicator.`` and ``threat.enrichments.indicator.``)."""

_ECS_ROOTS = frozenset(
    {
        "agent", "as", "client", "cloud", "code_signature", "container", "data_stream", "destination", "device",
        "dll", "dns", "ecs", "elf", "email", "error", "event", "faas", "file", "geo", "group", "hash", "host",
        "http", "interface", "labels", "log", "macho", "network", "observer", "orchestrator", "organization",
        "os", "package", "pe", "process", "registry", "related", "risk", "rule", "server", "service", "source",
        "span", "threat", "tls", "trace", "transaction", "url", "user", "user_agent", "vlan", "volume",
        "vulnerability", "x509",
    }
)  # fmt: skip


def base_field(name: str) -> str:
    """The field whose value a multi-field reads (``process.name.caseless`` -> ``process.name``)."""
    for suffix in (CASELESS_SUFFIX, TEXT_SUFFIX):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def is_caseless(name: str) -> bool:
    """Whether ``name`` is Elastic Defend's lowercase-normalized keyword multi-field."""
    return name.endswith(CASELESS_SUFFIX) and len(name) > len(CASELESS_SUFFIX)


def _ends_with_leaf(name: str, leaf: str) -> bool:
    return name == leaf or name.endswith("." + leaf)


def field_type(name: str) -> FieldType:
    """The Elasticsearch type an ECS-mapped index gives ``name`` (see the module docstring)."""
    if is_caseless(name):
        return "keyword"
    if name in _TEXT_FIELDS or (name.endswith(TEXT_SUFFIX) and name != "process.io.text"):
        return "text"
    if name == "process.io.text":
        return "wildcard"
    root = name.split(".", 1)[0]
    ecs = root in _ECS_ROOTS or name == "@timestamp"
    if not ecs:
        return "unknown"
    if any(_ends_with_leaf(name, leaf) for leaf in _KEYWORD_LEAVES):
        return "keyword"
    for leaf in _WILDCARD_LEAVES:
        if _ends_with_leaf(name, leaf) and (leaf != "command_line" or root == "process"):
            return "wildcard"
    parts = name.split(".")
    last = parts[-1]
    last_two = ".".join(parts[-2:])
    if last in _IP_LEAVES:
        return "ip"
    if last in _DATE_LEAVES:
        return "date"
    if last in _BOOLEAN_LEAVES:
        return "boolean"
    if last in _FLOAT_LEAVES:
        return "float"
    if last in _LONG_LEAVES or last_two in _LONG_LEAVES:
        return "long"
    return "keyword"
