"""MITRE ATT&CK® lookups, offline: tactic and technique names and reference URLs, and Sigma tags -> Kibana
threat.

Names come from the bundled table in :mod:`shellwatch.rules.attack_data` (never from the network); an id the
table does not know keeps its id as its name.

Sigma tags are flat (``attack.persistence``, ``attack.t1505.003``): nothing says which technique serves which
tactic, while Kibana's ``threat`` groups techniques under tactics. :func:`threat_from_sigma_tags` places each
technique this way, in order:

1. under the tactics the rule names that the technique serves according to the bundled technique -> tactics
   table (so ``attack.t1505.003`` lands under Persistence, not under every tactic of the rule);
2. otherwise, when the rule names tactics, under every one of them (the table does not know the technique, or
   the author filed it under a tactic the table does not pair it with: the author's tactics win);
3. otherwise (no tactic tag at all) under the tactics the table gives it;
4. otherwise it is left out of ``threat`` -- a Kibana threat entry needs a tactic -- and stays visible in the
   tags.

Tactics named by the rule keep the rule's order, each appears once, and a named tactic with no technique is
kept (Kibana allows a tactic without techniques); tactics added by step 3 follow in table order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from shellwatch.rules.attack_data import TACTICS, TECHNIQUE_NAMES, TECHNIQUE_TACTICS
from shellwatch.rules.model import AttackEntry, Technique, Threat

FRAMEWORK = "MITRE ATT&CK"
"""The ``framework`` value Kibana writes in every threat entry."""

_TACTIC_BY_SHORTNAME = {short: (tid, name) for tid, name, short in TACTICS}
_TACTIC_ORDER = {short: i for i, (_, _, short) in enumerate(TACTICS)}
_TECHNIQUE_TAG = re.compile(r"^t(\d{4})(?:\.(\d{3}))?$")

# ATT&CK v19 split Defense Evasion into Stealth and Defense Impairment; a technique the (older) table files
# under defense_evasion serves whichever of the successors a newer rule names.
_SUCCESSORS = {"defense_evasion": ("defense_evasion", "stealth", "defense_impairment")}


def tactic_entry(shortname: str) -> AttackEntry | None:
    """The tactic with this shortname (``privilege_escalation``), or None if not an Enterprise tactic."""
    found = _TACTIC_BY_SHORTNAME.get(shortname)
    if found is None:
        return None
    tid, name = found
    return AttackEntry(id=tid, name=name, reference=f"https://attack.mitre.org/tactics/{tid}/")


def technique_name(technique_id: str) -> str:
    """The name of a technique or sub-technique id, or the id itself when the bundled table lacks it."""
    return TECHNIQUE_NAMES.get(technique_id, technique_id)


def technique_reference(technique_id: str) -> str:
    """MITRE's page for a technique (``.../techniques/T1505/``) or sub-technique (``.../T1505/003/``)."""
    return "https://attack.mitre.org/techniques/" + technique_id.replace(".", "/") + "/"


def _tactic_shortname(tag_name: str) -> str:
    # Sigma wrote tactics with underscores before its v2 specification and with hyphens since.
    return tag_name.lower().replace("-", "_")


def _technique_id(tag_name: str) -> str | None:
    match = _TECHNIQUE_TAG.match(tag_name.lower())
    if match is None:
        return None
    number, sub = match.groups()
    return f"T{number}" + (f".{sub}" if sub else "")


def _served_by(technique_id: str) -> tuple[str, ...]:
    served: list[str] = []
    for short in TECHNIQUE_TACTICS.get(technique_id, ()):
        served.extend(_SUCCESSORS.get(short, (short,)))
    return tuple(served)


def threat_from_sigma_tags(tags: Iterable[str]) -> tuple[Threat, ...]:
    """Kibana ``threat`` entries for a Sigma rule's tags (the module docstring says how they are placed).

    ``tags`` are full tag strings (``attack.persistence``); tags outside the ``attack`` namespace and ATT&CK
    group/software tags (``attack.g0032``, ``attack.s0002``) are ignored here.
    """
    named_tactics: list[str] = []
    subtechniques: dict[str, list[str]] = {}
    for tag in tags:
        namespace, _, name = tag.partition(".")
        if namespace.lower() != "attack" or not name:
            continue
        technique_id = _technique_id(name)
        if technique_id is not None:
            parent, _, _ = technique_id.partition(".")
            subs = subtechniques.setdefault(parent, [])
            if technique_id != parent and technique_id not in subs:
                subs.append(technique_id)
            continue
        short = _tactic_shortname(name)
        if short in _TACTIC_BY_SHORTNAME and short not in named_tactics:
            named_tactics.append(short)

    placed: dict[str, list[str]] = {short: [] for short in named_tactics}
    extra: dict[str, list[str]] = {}
    for parent in subtechniques:
        served = _served_by(parent)
        targets = [short for short in named_tactics if short in served]
        if targets:
            for short in targets:
                placed[short].append(parent)
        elif named_tactics:
            for short in named_tactics:
                placed[short].append(parent)
        else:
            for short in TECHNIQUE_TACTICS.get(parent, ()):
                extra.setdefault(short, []).append(parent)

    ordered = list(placed.items()) + sorted(extra.items(), key=lambda item: _TACTIC_ORDER[item[0]])
    threats: list[Threat] = []
    for short, technique_ids in ordered:
        tactic = tactic_entry(short)
        if tactic is None:
            continue
        threats.append(
            Threat(
                framework=FRAMEWORK,
                tactic=tactic,
                techniques=tuple(_technique(tid, subtechniques[tid]) for tid in technique_ids),
            )
        )
    return tuple(threats)


def _technique(technique_id: str, subtechnique_ids: Iterable[str]) -> Technique:
    return Technique(
        id=technique_id,
        name=technique_name(technique_id),
        reference=technique_reference(technique_id),
        subtechniques=tuple(
            AttackEntry(id=sid, name=technique_name(sid), reference=technique_reference(sid))
            for sid in subtechnique_ids
        ),
    )
