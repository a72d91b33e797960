"""The Sigma front end: a rule parsed by pySigma -> one IR tree, its detection AND its log source.

Semantics are the Sigma specification v2 (https://github.com/SigmaHQ/sigma-specification,
``specification/sigma-rules-specification.md`` and ``specification/sigma-appendix-modifiers.md``) as pySigma
parses it: pySigma applies the modifiers and resolves ``1 of x*`` / ``all of them``; this module walks the
condition tree pySigma's backends walk (``rule.detection.parsed_condition`` -> ``ConditionAND/OR/NOT``,
``ConditionFieldEqualsValueExpression``, ``ConditionValueExpression``; ``sigma/conversion/base.py``) and
decides each leaf's meaning on an ECS event:

* Strings compare case-insensitively unless ``cased``. A value without wildcards is an ``Equals``; with ``*``
  or ``?`` it is an anchored ``Wildcard`` whose backslashes escape the next character, so pySigma's parsed
  string (where ``\\`` escapes only ``*``, ``?`` and ``\\``) is re-escaped for the IR.
* Sigma is type-loose ("all values are treated as case-insensitive strings"): a number matches the field
  whether the event holds it as a number or as its decimal string (ECS ``event.code`` is the string
  ``"4688"``), a plain string that spells an integer or a boolean also matches that number or boolean, and
  ``lt``/``gt``... compare the field as a number or, when it holds a string, as the number EQL's ``number()``
  reads from it.
* ``null`` means the field is missing or null; ``exists`` tests presence; ``re`` is an unanchored search in
  Python syntax, case-sensitive unless ``i``; ``cidr`` an IP range; ``fieldref`` a comparison with another
  field.
* Keywords (values without a field) are searched in every string of the event as substrings, as pySigma's
  Elasticsearch Lucene backend does (``unbound_value_str_expression = "*{value}*"``).
* ``expand`` placeholders take their values from the caller's configuration; the values of one placeholder are
  OR-linked, as the specification describes ("a single, multiple or-linked values or patterns").
* Field names and log sources map to ECS as :mod:`shellwatch.query.sigma_fields` describes; a field read from
  several ECS fields holds when any of them holds.
* The character-set modifiers (``utf16le``/``wide``, ``utf16be``, ``utf16``) are registered with pySigma when
  this module is imported (:func:`register_encoding_modifiers`): pySigma 1.5 lacks ``utf16le`` and writes a
  wrong byte order mark for ``utf16``. Import this module before parsing rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaValueError
from sigma.modifiers import SigmaValueModifier, modifier_mapping, reverse_modifier_mapping
from sigma.rule import SigmaLogSource, SigmaRule
from sigma.rule.detection import EmptySigmaDetections
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaQueryExpression,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaStringPartType,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from shellwatch.query.errors import QueryError, UnsupportedQuery
from shellwatch.query.ir import (
    FALSE,
    TRUE,
    And,
    Call,
    Case,
    Cidr,
    Compare,
    CompareOp,
    Const,
    Equals,
    Exists,
    FieldRef,
    Keyword,
    Literal,
    Node,
    Not,
    Or,
    Predicate,
    Regex,
    Scalar,
    Wildcard,
)
from shellwatch.query.sigma_fields import (
    HASH_LENGTHS,
    FieldTarget,
    HashTarget,
    Target,
    field_targets,
    logsource_condition,
)

Placeholders = Mapping[str, Sequence[str]]
"""Values of ``|expand`` placeholders, by placeholder name (without the ``%``)."""

__all__ = ["Placeholders", "logsource_support", "register_encoding_modifiers", "sigma_rule_to_ir"]


def sigma_rule_to_ir(rule: SigmaRule, placeholders: Placeholders | None = None) -> Node:
    """The rule's detection AND its log source condition, as one IR tree.

    Raises :class:`UnsupportedQuery` for what shellwatch cannot run (correlation rules, the pre-v2 aggregation
    syntax, timestamp-part modifiers, keyword regular expressions, an ``expand`` placeholder without a
    configured value) and :class:`QueryError` for an invalid detection. Every pySigma error raised while
    walking the rule becomes one of the two.
    """
    if isinstance(rule, SigmaCorrelationRule):
        raise UnsupportedQuery("correlation rule", "Sigma correlation rules aggregate several events")
    if rule.errors:
        raise _query_error(rule.errors[0])
    if isinstance(rule.detection, EmptySigmaDetections):
        raise QueryError("the rule has no detection")
    translator = _Translator(rule.logsource, placeholders or {})
    try:
        detection = _or(translator.condition(_parsed(text)) for text in rule.detection.parsed_condition)
    except SigmaError as error:
        raise _query_error(error) from error
    except RecursionError as error:
        raise QueryError("the detection is nested too deeply") from error
    return _and((logsource_condition(rule.logsource).node, detection))


def logsource_support(rule: SigmaRule) -> str | None:
    """Why the rule's log source is only partly understood (``None`` when shellwatch maps it fully).

    A partly understood log source keeps its detection with the conditions that are known (the product's, at
    least), so the rule still runs; the loader reports this reason.
    """
    return logsource_condition(rule.logsource).unsupported


# ------------------------------------------------------------------------------------------------------------
# The specification's character-set modifiers, registered with pySigma.


class EncodedSigmaString(SigmaString):
    """A Sigma string encoded to bytes by a character-set modifier, each byte held as one character (Latin-1).

    pySigma's ``base64`` and ``base64offset`` modifiers read ``bytes(value)`` and ``len(value)``; with one character
    per byte both are the encoded bytes, whatever the text was.
    """

    def __bytes__(self) -> bytes:
        return "".join(part for part in self.s if isinstance(part, str)).encode("latin-1")


class _EncodingModifier(SigmaValueModifier[SigmaString, SigmaString]):
    codec: str = ""
    prefix: bytes = b""

    def modify(self, val: SigmaString) -> SigmaString:
        parts: list[SigmaStringPartType] = [self.prefix.decode("latin-1")] if self.prefix else []
        for part in val.s:
            if isinstance(part, str):
                try:
                    parts.append(part.encode(self.codec).decode("latin-1"))
                except UnicodeEncodeError as error:
                    raise SigmaValueError(f"cannot encode '{val}' as {self.codec}", source=self.source) from error
            else:
                parts.append(part)
        encoded = EncodedSigmaString()
        encoded.s = [part for part in parts if part != ""]
        return encoded


class Utf16LeModifier(_EncodingModifier):
    """``utf16le`` and its alias ``wide``: ``cmd`` -> ``63 00 6d 00 64 00``."""

    codec = "utf-16-le"


class Utf16BeModifier(_EncodingModifier):
    """``utf16be``: ``cmd`` -> ``00 63 00 6d 00 64``."""

    codec = "utf-16-be"


class Utf16BomModifier(_EncodingModifier):
    """``utf16``: a byte order mark, then UTF-16LE: ``cmd`` -> ``FF FE 63 00 6d 00 64 00``."""

    codec = "utf-16-le"
    prefix = b"\xff\xfe"


_ENCODING_MODIFIERS: Mapping[str, type[_EncodingModifier]] = {
    "utf16le": Utf16LeModifier,
    "wide": Utf16LeModifier,
    "utf16be": Utf16BeModifier,
    "utf16": Utf16BomModifier,
}


def register_encoding_modifiers() -> None:
    """Make pySigma parse the specification's character-set modifiers as the specification defines them.

    pySigma 1.5 has no ``utf16le`` (the specification's name, ``wide`` being its alias), encodes its output as
    UTF-8 text (so its ``utf16`` writes the byte order mark as ``EF BB BF`` instead of ``FF FE``) and refuses
    non-ASCII text. The modifiers registered here produce the encoded bytes themselves
    (``specification/sigma-appendix-modifiers.md``, "Encoding"). Idempotent; runs when this module is imported,
    so this module must be imported before rules are parsed.
    """
    for name, modifier in _ENCODING_MODIFIERS.items():
        modifier_mapping[name] = modifier
    reverse_modifier_mapping[Utf16LeModifier.__name__] = "wide"
    reverse_modifier_mapping[Utf16BeModifier.__name__] = "utf16be"
    reverse_modifier_mapping[Utf16BomModifier.__name__] = "utf16"


register_encoding_modifiers()


# ------------------------------------------------------------------------------------------------------------
# pySigma errors and condition parsing.


def _query_error(error: SigmaError) -> QueryError:
    message = str(error.args[0]) if error.args else type(error).__name__
    source = error.source
    position = (source.line, (source.char or 0) + 1) if source is not None and source.line is not None else None
    return QueryError(message, position)


def _parsed(
    condition: object,
) -> ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression:
    """Parse one condition with pySigma, telling the retired aggregation syntax apart from a plain error."""
    text = getattr(condition, "condition", "")
    if isinstance(text, str) and "|" in text:
        raise UnsupportedQuery("aggregation condition", f"'{text}' uses the pre-v2 '| count()' syntax")
    tree = getattr(condition, "parsed", None)
    if tree is None:
        raise QueryError(f"condition '{text}' selects no detection")
    if not isinstance(tree, ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression):
        raise QueryError(f"condition '{text}' did not parse into a condition tree")
    return tree


# ------------------------------------------------------------------------------------------------------------
# Building IR with the simplifications every rule benefits from.


def _and(children: Iterable[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        if isinstance(child, And):
            nested = _and(child.children)
            flat.extend(nested.children if isinstance(nested, And) else (nested,))
        elif child == TRUE:
            continue
        elif child == FALSE:
            return FALSE
        else:
            flat.append(child)
    if len(flat) == 1:
        return flat[0]
    return And(tuple(flat)) if flat else TRUE


def _or(children: Iterable[Node]) -> Node:
    """An Or whose equality and wildcard tests on the same field and case are merged into one node each."""
    flat: list[Node] = []
    for child in children:
        if isinstance(child, Or):
            flat.extend(child.children)
        elif child == FALSE:
            continue
        elif child == TRUE:
            return TRUE
        else:
            flat.append(child)
    # Merged tests keep the place of the first test of their group; values keep their order, without repeats.
    order: list[Node | tuple[type, str, Case]] = []
    groups: dict[tuple[type, str, Case], dict[tuple[type, Scalar], Scalar]] = {}
    for child in flat:
        if isinstance(child, Equals | Wildcard):
            key = (type(child), child.field, child.case)
            if key not in groups:
                groups[key] = {}
                order.append(key)
            values: tuple[Scalar, ...] = child.values if isinstance(child, Equals) else child.patterns
            for value in values:
                # ``1 == True`` in Python: the type is part of the key so a number and a boolean stay apart.
                groups[key].setdefault((type(value), value), value)
        else:
            order.append(child)
    merged: list[Node] = []
    for item in order:
        if isinstance(item, tuple):
            kind, field, case = item
            collected = tuple(groups[item].values())
            if kind is Equals:
                merged.append(Equals(field, collected, case))
            else:
                merged.append(Wildcard(field, tuple(str(pattern) for pattern in collected), case))
        else:
            merged.append(item)
    if len(merged) == 1:
        return merged[0]
    return Or(tuple(merged)) if merged else FALSE


def _not(child: Node) -> Node:
    if isinstance(child, Const):
        return Const(not child.value)
    if isinstance(child, Not):
        return child.child
    return Not(child)


# ------------------------------------------------------------------------------------------------------------
# Values.

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
_BOOLEANS: Mapping[str, bool] = {"true": True, "false": False}
_COMPARE_OPS: Mapping[CompareOperators, CompareOp] = {
    CompareOperators.LT: "<",
    CompareOperators.LTE: "<=",
    CompareOperators.GT: ">",
    CompareOperators.GTE: ">=",
}
_HASH_VALUE = re.compile(r"([A-Za-z0-9]+)=([0-9A-Fa-f]*)")


def _plain(value: SigmaString) -> str | None:
    """The literal text of a string without wildcards or placeholders, else None."""
    if all(isinstance(part, str) for part in value.s):
        return "".join(part for part in value.s if isinstance(part, str))
    return None


def _pattern(value: SigmaString) -> str:
    """The IR wildcard pattern of a parsed Sigma string: literal ``*``, ``?`` and ``\\`` escaped with
    ``\\``."""
    out: list[str] = []
    for part in value.s:
        if isinstance(part, str):
            out.append(re.sub(r"([\\*?])", r"\\\1", part))
        elif part is SpecialChars.WILDCARD_MULTI:
            out.append("*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append("?")
        else:
            raise UnsupportedQuery(f"expand placeholder %{part.name}%", "no value is configured for it")
    return "".join(out)


def _loose_values(text: str) -> tuple[Scalar, ...]:
    """A plain Sigma string and the number or boolean it spells (Sigma compares values as strings)."""
    values: list[Scalar] = [text]
    if _INTEGER.fullmatch(text):
        values.append(int(text))
    elif text.lower() in _BOOLEANS:
        values.append(_BOOLEANS[text.lower()])
    return tuple(values)


def _number_values(number: int | float) -> tuple[Scalar, ...]:
    return (number, str(number))


class _Translator:
    """Turns one rule's condition tree into IR, with its log source (for field names) and placeholder
    values."""

    def __init__(self, logsource: SigmaLogSource, placeholders: Placeholders) -> None:
        self.logsource = logsource
        self.placeholders = placeholders

    def condition(
        self, node: ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression | None
    ) -> Node:
        if isinstance(node, ConditionAND):
            return _and(self.condition(arg) for arg in self._args(node))
        if isinstance(node, ConditionOR):
            return _or(self.condition(arg) for arg in self._args(node))
        if isinstance(node, ConditionNOT):
            (child,) = self._args(node)
            return _not(self.condition(child))
        if isinstance(node, ConditionFieldEqualsValueExpression):
            return self.field_test(node.field, node.value)
        if isinstance(node, ConditionValueExpression):
            return self.keyword(node.value)
        raise QueryError(f"unexpected element in the condition tree: {type(node).__name__}")

    @staticmethod
    def _args(
        node: ConditionItem,
    ) -> list[ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression]:
        args = []
        for arg in node.args:
            if not isinstance(arg, ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression):
                raise QueryError(f"unexpected element in the condition tree: {type(arg).__name__}")
            args.append(arg)
        if not args:
            raise QueryError(f"empty {type(node).__name__} in the condition tree")
        return args

    # -- placeholders ---------------------------------------------------------------------------------------

    def _replacements(self, placeholder: Placeholder) -> Iterator[SigmaString]:
        try:
            values = self.placeholders[placeholder.name]
        except KeyError:
            raise UnsupportedQuery(
                f"expand placeholder %{placeholder.name}%", "no value is configured for it"
            ) from None
        # As in pySigma's ValueListPlaceholderTransformation: a value is a Sigma string, wildcards active.
        for value in values:
            yield SigmaString(str(value))

    def _expanded(self, value: SigmaString) -> list[SigmaString]:
        if not value.contains_placeholder():
            return [value]
        return value.replace_placeholders(self._replacements)

    def _expanded_regex(self, value: SigmaRegularExpression) -> list[SigmaRegularExpression]:
        if not value.contains_placeholder():
            return [value]
        return value.replace_placeholders(self._replacements)

    # -- field tests ----------------------------------------------------------------------------------------

    def field_test(self, field: str, value: SigmaType) -> Node:
        if isinstance(value, SigmaExpansion):
            return _or(self.field_test(field, item) for item in value.values)
        targets = field_targets(field, self.logsource)
        if isinstance(value, SigmaNull):
            return _not(self._exists(targets))
        if isinstance(value, SigmaExists):
            present = self._exists(targets)
            return present if value.exists else _not(present)
        if isinstance(value, SigmaFieldReference):
            return self._field_reference(targets, value)
        return _or(self._target_test(target, value) for target in targets)

    @staticmethod
    def _exists(targets: tuple[Target, ...]) -> Node:
        paths: list[str] = []
        for target in targets:
            paths.extend(target.paths if isinstance(target, HashTarget) else (target.path,))
        return _or(Exists(path) for path in paths)

    def _field_reference(self, targets: tuple[Target, ...], reference: SigmaFieldReference) -> Node:
        others = field_targets(reference.field, self.logsource)
        left = [target.path for target in targets if isinstance(target, FieldTarget)]
        right = [target.path for target in others if isinstance(target, FieldTarget)]
        if reference.starts_with and reference.ends_with:
            function: str | None = "stringcontains"
        elif reference.starts_with:
            function = "startswith"
        elif reference.ends_with:
            function = "endswith"
        else:
            function = None
        tests: list[Node] = []
        for a in left:
            for b in right:
                if function is None:
                    tests.append(Compare(FieldRef(a), "==", FieldRef(b), Case.INSENSITIVE))
                else:
                    tests.append(Predicate(Call(function, (FieldRef(a), FieldRef(b)), Case.INSENSITIVE)))
        return _or(tests)

    def _target_test(self, target: Target, value: SigmaType) -> Node:
        if isinstance(target, HashTarget):
            if isinstance(value, SigmaString):
                return _or(self._hash_test(target, text) for text in self._expanded(value))
            return FALSE
        if target.value_map is not None:
            return self._mapped_value_test(target, value)
        return self._value_test(target.path, value)

    def _mapped_value_test(self, target: FieldTarget, value: SigmaType) -> Node:
        assert target.value_map is not None
        texts: list[str | None]
        if isinstance(value, SigmaBool):
            texts = ["true" if value.boolean else "false"]
        elif isinstance(value, SigmaString):
            texts = [_plain(text) for text in self._expanded(value)]
        else:
            return FALSE
        mapped = [target.value_map.get(text.lower()) for text in texts if text is not None]
        return _or(Equals(target.path, (found,), Case.INSENSITIVE) for found in mapped if found is not None)

    def _value_test(self, path: str, value: SigmaType) -> Node:
        if isinstance(value, SigmaString):
            case = Case.SENSITIVE if isinstance(value, SigmaCasedString) else Case.INSENSITIVE
            return _or(self._string_test(path, text, case) for text in self._expanded(value))
        if isinstance(value, SigmaTimestampPart):
            raise UnsupportedQuery("timestamp part modifier", f"{value.timestamp_part.name.lower()} of {path}")
        if isinstance(value, SigmaNumber):
            return Equals(path, _number_values(value.number), Case.INSENSITIVE)
        if isinstance(value, SigmaBool):
            return Equals(path, (value.boolean, "true" if value.boolean else "false"), Case.INSENSITIVE)
        if isinstance(value, SigmaRegularExpression):
            return _or(self._regex_test(path, regex) for regex in self._expanded_regex(value))
        if isinstance(value, SigmaCIDRExpression):
            return Cidr(path, (str(value.network),))
        if isinstance(value, SigmaCompareExpression):
            return self._compare_test(path, value)
        if isinstance(value, SigmaQueryExpression):
            raise UnsupportedQuery("query expression", "a placeholder replaced by a backend query expression")
        raise UnsupportedQuery(f"value type {type(value).__name__}", f"on field {path}")

    @staticmethod
    def _string_test(path: str, value: SigmaString, case: Case) -> Node:
        text = _plain(value)
        if text is not None:
            return Equals(path, _loose_values(text), case)
        return Wildcard(path, (_pattern(value),), case)

    @staticmethod
    def _regex_test(path: str, regex: SigmaRegularExpression) -> Node:
        flags = regex.flags
        return Regex(
            path,
            str(regex.regexp),
            Case.INSENSITIVE if SigmaRegularExpressionFlag.IGNORECASE in flags else Case.SENSITIVE,
            anchored=False,
            multiline=SigmaRegularExpressionFlag.MULTILINE in flags,
            dotall=SigmaRegularExpressionFlag.DOTALL in flags,
            dialect="python",
        )

    @staticmethod
    def _compare_test(path: str, value: SigmaCompareExpression) -> Node:
        if isinstance(value.number, SigmaTimestampPart):
            raise UnsupportedQuery("timestamp part modifier", f"comparison on {path}")
        number = value.number.number
        if value.op is CompareOperators.NEQ:
            return _not(Equals(path, _number_values(number), Case.INSENSITIVE))
        op = _COMPARE_OPS[value.op]
        field = FieldRef(path)
        return _or(
            (
                Compare(field, op, Literal(number)),
                # The field as a number when the event holds its digits as a string (EQL's ``number()``).
                Compare(Call("number", (field,)), op, Literal(number)),
            )
        )

    @staticmethod
    def _hash_test(target: HashTarget, value: SigmaString) -> Node:
        """A Sysmon ``Hashes`` value (``ALGO=hex`` under contains/startswith/endswith) on the parsed ECS
        fields.

        Only the ``ALGO=hex`` shape (optionally with ``*`` around it) and an exact, comma-separated list of
        them translate; anything else is tested on the raw string alone. Elastic lower-cases the parsed hashes
        and drops all-zero ones, so hex compares case-insensitively and an all-zero hash never matches here.
        """
        parts = list(value.s)
        text = _plain(value)
        if text is not None and "," in text:
            items = [_HASH_VALUE.fullmatch(item) for item in text.split(",")]
            if all(item is not None for item in items):
                return _and(
                    _hash_equals(target, item.group(1), item.group(2), False) for item in items if item is not None
                )
            return FALSE
        trailing = bool(parts) and parts[-1] is SpecialChars.WILDCARD_MULTI
        core = parts[1 if parts and parts[0] is SpecialChars.WILDCARD_MULTI else 0 : -1 if trailing else None]
        if len(core) != 1 or not isinstance(core[0], str):
            return FALSE
        match = _HASH_VALUE.fullmatch(core[0])
        if match is None:
            return FALSE
        return _hash_equals(target, match.group(1), match.group(2), trailing)

    # -- keywords -------------------------------------------------------------------------------------------

    def keyword(self, value: SigmaType) -> Node:
        if isinstance(value, SigmaExpansion):
            return _or(self.keyword(item) for item in value.values)
        if isinstance(value, SigmaString):
            case = Case.SENSITIVE if isinstance(value, SigmaCasedString) else Case.INSENSITIVE
            patterns = tuple(_substring_pattern(text) for text in self._expanded(value))
            return Keyword(patterns, case) if patterns else FALSE
        if isinstance(value, SigmaNumber) and not isinstance(value, SigmaTimestampPart):
            return Keyword((f"*{value.number}*",), Case.INSENSITIVE)
        if isinstance(value, SigmaRegularExpression):
            raise UnsupportedQuery("keyword regular expression", "a regular expression without a field")
        raise QueryError(f"a {type(value).__name__} value needs a field")


def _substring_pattern(value: SigmaString) -> str:
    """A keyword as the Lucene backend searches it: ``*value*`` (a wildcard already at either end is kept)."""
    pattern = _pattern(value)
    if not value.startswith(SpecialChars.WILDCARD_MULTI):
        pattern = "*" + pattern
    if not value.endswith(SpecialChars.WILDCARD_MULTI):
        pattern = pattern + "*"
    return pattern


def _hash_equals(target: HashTarget, algorithm_name: str, digits: str, open_ended: bool) -> Node:
    algorithm = algorithm_name.lower()
    length = HASH_LENGTHS.get(algorithm)
    if length is None or len(digits) > length:
        return FALSE
    path = target.path(algorithm)
    digits = digits.lower()
    if digits and set(digits) == {"0"}:
        return FALSE
    if open_ended and len(digits) < length:
        return Wildcard(path, (digits + "*",), Case.INSENSITIVE) if digits else Exists(path)
    return Equals(path, (digits,), Case.INSENSITIVE) if digits else FALSE
