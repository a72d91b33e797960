"""Sigma values and modifiers, evaluated on flat ECS events through the Python engine.

Reference: the Sigma specification v2, https://github.com/SigmaHQ/sigma-specification --
``specification/sigma-rules-specification.md`` (sections "General", "String Wildcard", "Escaping", "Special Field
Values", "Field Existence", "Placeholders") and ``specification/sigma-appendix-modifiers.md`` (each modifier), as
pySigma 1.5 parses them (``sigma/modifiers.py``, ``sigma/types.py``).
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from sigma.rule import SigmaRule

from shellwatch.engine.compile_python import compile_predicate
from shellwatch.query.errors import UnsupportedQuery
from shellwatch.query.sigma import sigma_rule_to_ir

Predicate = Callable[[Mapping[str, Any]], bool]

PROCESS_START = {"host.os.type": "windows", "event.category": ["process"], "event.type": ["start"]}
NETWORK_START = {"host.os.type": "windows", "event.category": ["network"], "event.type": ["start", "connection"]}


def sigma(
    detection: str,
    *,
    category: str = "process_creation",
    placeholders: Mapping[str, list[str]] | None = None,
) -> Predicate:
    """Compile a Windows rule whose detection is ``detection`` (YAML under ``detection:``)."""
    text = (
        "title: test\n"
        f"logsource:\n    product: windows\n    category: {category}\n"
        "detection:\n" + textwrap.indent(textwrap.dedent(detection).strip("\n"), "    ") + "\n"
    )
    return compile_predicate(sigma_rule_to_ir(SigmaRule.from_yaml(text), placeholders))


def proc(**fields: Any) -> dict[str, Any]:
    """A Windows process-start event; keyword names use ``__`` for the dots of ECS paths."""
    return {**PROCESS_START, **{name.replace("__", "."): value for name, value in fields.items()}}


def net(**fields: Any) -> dict[str, Any]:
    return {**NETWORK_START, **{name.replace("__", "."): value for name, value in fields.items()}}


# -- plain values, lists, maps -----------------------------------------------------------------------------------


def test_plain_value_is_whole_value_and_case_insensitive() -> None:
    """Spec "General": values are case-insensitive strings; a value without wildcards is the whole field."""
    match = sigma(r"""
        sel:
            Image: 'C:\Windows\System32\whoami.exe'
        condition: sel
    """)
    assert match(proc(process__executable=r"C:\Windows\System32\whoami.exe"))
    assert match(proc(process__executable=r"c:\windows\system32\WHOAMI.EXE"))
    assert not match(proc(process__executable=r"C:\Windows\System32\whoami.exe.bak"))
    assert not match(proc(process__executable=r"D:\C:\Windows\System32\whoami.exe"))
    assert not match(proc())


def test_value_list_is_or_and_map_is_and() -> None:
    """Spec "Lists" / "Maps": the values of one field are OR-linked, the fields of a map AND-linked."""
    match = sigma(r"""
        sel:
            Image|endswith:
                - '\cmd.exe'
                - '\powershell.exe'
            CommandLine|contains: 'whoami'
        condition: sel
    """)
    assert match(proc(process__executable=r"C:\x\cmd.exe", process__command_line="cmd /c whoami"))
    assert match(proc(process__executable=r"C:\x\powershell.exe", process__command_line="whoami /all"))
    assert not match(proc(process__executable=r"C:\x\cmd.exe", process__command_line="dir"))
    assert not match(proc(process__executable=r"C:\x\pwsh.exe", process__command_line="whoami"))


def test_list_valued_event_field_matches_when_any_element_does() -> None:
    """ECS multi-valued fields: a test holds when any element satisfies it (Elasticsearch any-of)."""
    match = sigma("""
        sel:
            CommandLine|contains: 'mimikatz'
        condition: sel
    """)
    assert match(proc(process__command_line=["notepad", "run mimikatz.exe"]))
    assert not match(proc(process__command_line=["notepad", "calc"]))


def test_number_matches_number_or_its_string() -> None:
    """Sigma is type-loose (spec "General": values are strings): ``EventID: 4688`` matches ECS's keyword
    ``event.code: "4688"`` and a reader's integer 4688 alike; a quoted '4688' matches the integer too."""
    for detection in ("EventID: 4688", "EventID: '4688'"):
        match = sigma(
            f"""
            sel:
                {detection}
            condition: sel
            """
        )
        assert match(proc(event__code="4688"))
        assert match(proc(event__code=4688))
        assert not match(proc(event__code="46880"))
        assert not match(proc(event__code=4689))


def test_boolean_string_matches_boolean_field() -> None:
    """``Signed: 'false'`` (a string in SigmaHQ rules) matches Elastic's boolean ``file.code_signature.signed``
    and the raw string alike."""
    match = sigma(
        """
        sel:
            Signed: 'false'
        condition: sel
        """,
        category="image_load",
    )
    image_load = {"host.os.type": "windows", "event.category": ["library"], "event.type": ["start"]}
    assert match({**image_load, "file.code_signature.signed": False})
    assert match({**image_load, "file.code_signature.signed": "false"})
    assert not match({**image_load, "file.code_signature.signed": True})


# -- wildcards and escaping ----------------------------------------------------------------------------------------


def test_wildcards_star_and_question_mark() -> None:
    """Spec "String Wildcard": ``*`` any run of characters, ``?`` exactly one."""
    match = sigma("""
        sel:
            Image: '*\\prog?.exe'
        condition: sel
    """)
    assert match(proc(process__executable=r"C:\tools\progA.exe"))
    assert match(proc(process__executable=r"\progZ.exe"))
    assert not match(proc(process__executable=r"C:\tools\prog.exe"))
    assert not match(proc(process__executable=r"C:\tools\progAB.exe"))


def test_endswith_backslash_name_requires_the_backslash() -> None:
    """Spec "Escaping": a backslash before a letter is a plain backslash, so ``'*\\w3wp.exe'`` means "ends with
    \\w3wp.exe": a path separator must precede the name."""
    match = sigma(r"""
        sel:
            ParentImage: '*\w3wp.exe'
        condition: sel
    """)
    assert match(proc(process__parent__executable=r"C:\Windows\System32\inetsrv\w3wp.exe"))
    assert not match(proc(process__parent__executable=r"C:\foo\notw3wp.exe"))
    assert not match(proc(process__parent__executable="w3wp.exe"))
    assert not match(proc(process__parent__executable=r"C:\inetsrv\w3wp.exe.bak"))


@pytest.mark.parametrize(
    ("value", "matching", "not_matching"),
    [
        # \* and \? are a literal star and question mark.
        (r"foo\*bar", ["foo*bar", "FOO*BAR"], ["fooXbar", "foo**bar", r"foo\*bar"]),
        (r"a\?b", ["a?b"], ["axb", r"a\?b"]),
        # \\* is a backslash followed by a wildcard.
        (r"C:\\*", ["C:\\", r"C:\Windows", r"C:\a\b"], ["C:", "C:x", "D:\\"]),
        # \\\* is a backslash followed by a literal star.
        (r"C:\\\*", [r"C:\*"], [r"C:\x", r"C:\\*", "C:*"]),
        # \\\\ (four) is a double backslash.
        (r"\\\\server\share", [r"\\server\share"], [r"\server\share", r"\\\server\share"]),
        # A backslash before any other character is itself: no escaping needed in Windows paths.
        (r"C:\Windows\Temp", [r"C:\Windows\Temp", r"c:\windows\temp"], [r"C:WindowsTemp"]),
        # A trailing backslash is a plain backslash.
        ("C:\\Temp\\", ["C:\\Temp\\"], ["C:\\Temp", "C:\\Temp\\x"]),
    ],
)
def test_escaping(value: str, matching: list[str], not_matching: list[str]) -> None:
    """Spec "Escaping": ``\\`` escapes only ``*``, ``?`` and ``\\`` itself; pySigma's ``SigmaString`` parses
    exactly that, and the IR pattern keeps the literal characters literal."""
    match = sigma(f"""
        sel:
            CommandLine: '{value}'
        condition: sel
    """)
    for text in matching:
        assert match(proc(process__command_line=text)), text
    for text in not_matching:
        assert not match(proc(process__command_line=text)), text


def test_trailing_backslash_with_endswith() -> None:
    """``endswith`` on a value ending in a backslash: the backslash is literal (spec "Escaping")."""
    match = sigma("""
        sel:
            CurrentDirectory|endswith: '\\Temp\\'
        condition: sel
    """)
    assert match(proc(process__working_directory="C:\\Users\\bob\\AppData\\Local\\Temp\\"))
    assert not match(proc(process__working_directory="C:\\Users\\bob\\AppData\\Local\\Temp"))


# -- generic modifiers ---------------------------------------------------------------------------------------------


def test_contains_startswith_endswith() -> None:
    """Modifiers appendix, "Generic Modifiers": contains / startswith / endswith put ``*`` around / after / before
    the value."""
    contains = sigma("sel:\n    CommandLine|contains: 'Invoke-'\ncondition: sel")
    startswith = sigma("sel:\n    CommandLine|startswith: 'cmd'\ncondition: sel")
    endswith = sigma("sel:\n    CommandLine|endswith: '.ps1'\ncondition: sel")
    assert contains(proc(process__command_line="powershell invoke-expression"))
    assert not contains(proc(process__command_line="powershell Invoke"))
    assert startswith(proc(process__command_line="CMD.exe /c dir"))
    assert not startswith(proc(process__command_line="C:\\cmd.exe"))
    assert endswith(proc(process__command_line="powershell -f C:\\x\\run.PS1"))
    assert not endswith(proc(process__command_line="run.ps1 -x"))


def test_all_links_the_values_with_and() -> None:
    """Modifiers appendix, ``all``: the list is AND-linked instead of OR-linked."""
    match = sigma("""
        sel:
            CommandLine|contains|all:
                - '-nop'
                - '-w hidden'
        condition: sel
    """)
    assert match(proc(process__command_line="powershell -w hidden -nop -c x"))
    assert not match(proc(process__command_line="powershell -nop -c x"))


def test_cased_is_case_sensitive() -> None:
    """Modifiers appendix, ``cased``: values are applied case-sensitively (default is case-insensitive)."""
    match = sigma("""
        sel:
            Image|endswith|cased: '\\PsExec.exe'
        condition: sel
    """)
    assert match(proc(process__executable=r"C:\tools\PsExec.exe"))
    assert not match(proc(process__executable=r"C:\tools\psexec.exe"))
    plain = sigma("sel:\n    CommandLine|cased: 'ABC'\ncondition: sel")
    assert plain(proc(process__command_line="ABC"))
    assert not plain(proc(process__command_line="abc"))


def test_null_means_missing_or_null() -> None:
    """Spec "Special Field Values": ``null`` matches an event where the field is missing or null (pySigma's
    Lucene backend: ``NOT _exists_:field``); the empty string is a value, not null."""
    match = sigma("sel:\n    CommandLine: null\ncondition: sel")
    assert match(proc())
    assert match(proc(process__command_line=None))
    assert match(proc(process__command_line=[]))
    assert not match(proc(process__command_line=""))
    assert not match(proc(process__command_line="x"))


def test_empty_string_matches_only_the_empty_string() -> None:
    """Spec "Special Field Values": an empty value is written ``''``; it needs the field, holding ""."""
    match = sigma("sel:\n    CommandLine: ''\ncondition: sel")
    assert match(proc(process__command_line=""))
    assert not match(proc())
    assert not match(proc(process__command_line=" "))


def test_exists_true_and_false() -> None:
    """Spec "Field Existence" and modifiers appendix ``exists``: the field is present / absent."""
    present = sigma("sel:\n    CommandLine|exists: true\ncondition: sel")
    absent = sigma("sel:\n    CommandLine|exists: false\ncondition: sel")
    assert present(proc(process__command_line="x"))
    assert present(proc(process__command_line=""))
    assert not present(proc())
    assert absent(proc())
    assert not absent(proc(process__command_line="x"))


def test_neq_negates_the_values() -> None:
    """Modifiers appendix v2.1 ``neq``: the field differs from the values (pySigma 1.5 negates the item, so a
    missing field also differs)."""
    match = sigma("""
        sel:
            Image|endswith: '\\rundll32.exe'
            CommandLine|contains|neq: '.dll,'
        condition: sel
    """)
    assert match(proc(process__executable=r"C:\w\rundll32.exe", process__command_line="rundll32 javascript:x"))
    assert match(proc(process__executable=r"C:\w\rundll32.exe"))
    assert not match(proc(process__executable=r"C:\w\rundll32.exe", process__command_line="rundll32 a.dll,Main"))


# -- windash --------------------------------------------------------------------------------------------------------


def test_windash_expands_every_dash_variant() -> None:
    """Modifiers appendix ``windash``: ``-`` and ``/`` at the start of a flag also match ``/``, ``-``, en dash,
    em dash and horizontal bar (pySigma ``SigmaWindowsDashModifier``)."""
    match = sigma("""
        sel:
            CommandLine|windash|contains: ' -enc '
        condition: sel
    """)
    for dash in ("-", "/", "\u2013", "\u2014", "\u2015"):
        assert match(proc(process__command_line=f"powershell {dash}enc ZQBjAGgAbwA=")), dash
    assert not match(proc(process__command_line="powershell +enc ZQBjAGgAbwA="))
    assert not match(proc(process__command_line="powershell enc ZQBjAGgAbwA="))


def test_windash_with_all_keeps_each_expansion_or_linked() -> None:
    """pySigma's ``SigmaExpansion``: the variants of one value stay OR-linked inside ``all``'s AND."""
    match = sigma("""
        sel:
            CommandLine|windash|contains|all:
                - ' -a '
                - ' -b '
        condition: sel
    """)
    assert match(proc(process__command_line="tool /a \u2013b x"))
    assert not match(proc(process__command_line="tool /a x"))


# -- regular expressions ---------------------------------------------------------------------------------------------


def test_re_is_an_unanchored_case_sensitive_search() -> None:
    """Modifiers appendix ``re``: a regular expression (PCRE-like; Python syntax here), case-sensitive by default,
    matched anywhere in the value."""
    match = sigma(r"""
        sel:
            CommandLine|re: 'whoami\s+/all'
        condition: sel
    """)
    assert match(proc(process__command_line="cmd /c whoami   /all & exit"))
    assert not match(proc(process__command_line="cmd /c WHOAMI /all"))
    path = sigma(r"""
        sel:
            Image|re: '\\cmd\.exe$'
        condition: sel
    """)
    assert path(proc(process__executable=r"C:\Windows\cmd.exe"))
    assert not path(proc(process__executable=r"C:\Windows\cmdxexe"))


def test_re_sub_modifiers_i_m_s() -> None:
    """Modifiers appendix, ``re`` sub-modifiers: ``i`` ignores case, ``m`` makes ``^``/``$`` match at lines,
    ``s`` lets ``.`` match a newline."""
    insensitive = sigma("sel:\n    CommandLine|re|i: 'whoami'\ncondition: sel")
    assert insensitive(proc(process__command_line="WhoAmI"))
    multiline = sigma("sel:\n    CommandLine|re|m: '^net user'\ncondition: sel")
    plain = sigma("sel:\n    CommandLine|re: '^net user'\ncondition: sel")
    assert multiline(proc(process__command_line="echo x\nnet user bob"))
    assert not plain(proc(process__command_line="echo x\nnet user bob"))
    dotall = sigma("sel:\n    CommandLine|re|s: 'begin.+end'\ncondition: sel")
    plain_dot = sigma("sel:\n    CommandLine|re: 'begin.+end'\ncondition: sel")
    assert dotall(proc(process__command_line="begin\nend"))
    assert not plain_dot(proc(process__command_line="begin\nend"))


# -- encodings ------------------------------------------------------------------------------------------------------


def test_base64() -> None:
    """Modifiers appendix ``base64``: the value encoded with Base64 (then matched as any string value)."""
    match = sigma("sel:\n    CommandLine|base64|contains: 'http://'\ncondition: sel")
    encoded = base64.b64encode(b"http://").decode()
    assert match(proc(process__command_line=f"certutil -decodehex {encoded}"))
    assert not match(proc(process__command_line="certutil http://"))


def test_base64offset_matches_the_value_at_all_three_offsets() -> None:
    """Modifiers appendix ``base64offset``: the value inside a Base64 string, whatever its byte offset (three
    variants, shifts of zero to two bytes)."""
    match = sigma("sel:\n    CommandLine|base64offset|contains: 'http://'\ncondition: sel")
    for prefix in (b"", b"a", b"ab", b"abc", b"abcd"):
        encoded = base64.b64encode(prefix + b"http://evil.example/x.ps1").decode()
        assert match(proc(process__command_line=f"powershell -e {encoded}")), prefix
    assert not match(proc(process__command_line="powershell -e " + base64.b64encode(b"hxxp://evil").decode()))


@pytest.mark.parametrize(
    ("modifier", "encode"),
    [
        ("utf16le", lambda text: text.encode("utf-16-le")),
        ("wide", lambda text: text.encode("utf-16-le")),
        ("utf16be", lambda text: text.encode("utf-16-be")),
    ],
)
def test_utf16_encodings_inside_base64offset(modifier: str, encode: Callable[[str], bytes]) -> None:
    """Modifiers appendix "Encoding": ``utf16le`` (``cmd`` -> ``63 00 6d 00 64 00``), its alias ``wide``, and
    ``utf16be`` (``00 63 00 6d 00 64``), here under base64offset as PowerShell ``-EncodedCommand`` carries them."""
    match = sigma(f"sel:\n    CommandLine|{modifier}|base64offset|contains: 'ping'\ncondition: sel")
    for prefix in ("", "a", "ab", "abc"):
        encoded = base64.b64encode(encode(prefix + "ping -n 1 10.0.0.1")).decode()
        assert match(proc(process__command_line=f"powershell -enc {encoded}")), prefix
    other = "ping".encode("utf-16-be" if modifier != "utf16be" else "utf-16-le")
    assert not match(proc(process__command_line="powershell -enc " + base64.b64encode(other).decode()))
    assert not match(proc(process__command_line="powershell -enc " + base64.b64encode(b"ping -n 1").decode()))


def test_utf16_prepends_a_byte_order_mark() -> None:
    """Modifiers appendix ``utf16``: a byte order mark, then UTF-16 (``cmd`` -> ``FF FE 63 00 6d 00 64 00``)."""
    match = sigma("sel:\n    CommandLine|utf16|base64|contains: 'cmd'\ncondition: sel")
    with_bom = base64.b64encode(b"\xff\xfe" + "cmd".encode("utf-16-le")).decode()
    without_bom = base64.b64encode("cmd".encode("utf-16-le")).decode()
    assert with_bom == "//5jAG0AZAA="
    assert match(proc(process__command_line=f"x {with_bom}"))
    assert not match(proc(process__command_line=f"x {without_bom}"))


def test_utf16le_encodes_non_ascii_text() -> None:
    """The encoding modifiers encode any text, not only ASCII (the appendix defines them on characters)."""
    match = sigma("sel:\n    CommandLine|utf16le|base64|contains: 'Grüße'\ncondition: sel")
    encoded = base64.b64encode("Grüße".encode("utf-16-le")).decode()
    assert match(proc(process__command_line=f"-enc {encoded}"))


# -- IP, numbers, field references, placeholders ------------------------------------------------------------------


def test_cidr_ipv4_and_ipv6() -> None:
    """Modifiers appendix ``cidr``: the value is an IPv4 or IPv6 network; a list is OR-linked."""
    match = sigma(
        """
        sel:
            DestinationIp|cidr:
                - '10.0.0.0/8'
                - '2001:db8::/32'
        condition: sel
        """,
        category="network_connection",
    )
    assert match(net(destination__ip="10.200.3.4"))
    assert match(net(destination__ip="2001:db8:0:1::5"))
    assert not match(net(destination__ip="11.0.0.1"))
    assert not match(net(destination__ip="2001:db9::1"))
    assert not match(net(destination__ip="not an ip"))


def test_lt_lte_gt_gte() -> None:
    """Modifiers appendix "Numeric Modifiers": lt, lte, gt, gte. The field may hold the number or its digits as a
    string (Sysmon raw values are strings); a string that is not a number never compares."""
    lt = sigma("sel:\n    DestinationPort|lt: 1024\ncondition: sel", category="network_connection")
    lte = sigma("sel:\n    DestinationPort|lte: 1024\ncondition: sel", category="network_connection")
    gt = sigma("sel:\n    DestinationPort|gt: 49151\ncondition: sel", category="network_connection")
    gte = sigma("sel:\n    DestinationPort|gte: 49151\ncondition: sel", category="network_connection")
    assert lt(net(destination__port=80))
    assert lt(net(destination__port="80"))
    assert not lt(net(destination__port=1024))
    assert lte(net(destination__port=1024))
    assert not lte(net(destination__port="1025"))
    assert gt(net(destination__port=50000))
    assert not gt(net(destination__port=49151))
    assert gte(net(destination__port="49151"))
    assert not gte(net(destination__port="http"))
    assert not lt(net())


def test_fieldref_compares_two_fields() -> None:
    """Modifiers appendix ``fieldref``: the value names another field of the same event; compared
    case-insensitively like every Sigma value."""
    match = sigma("sel:\n    User|fieldref: ParentUser\ncondition: sel")
    same = proc(winlog__event_data__User="CORP\\bob", winlog__event_data__ParentUser="corp\\BOB")
    assert match(same)
    assert not match(proc(winlog__event_data__User="CORP\\bob", winlog__event_data__ParentUser="CORP\\eve"))
    assert not match(proc(winlog__event_data__User="CORP\\bob"))


def test_fieldref_with_startswith_endswith_contains() -> None:
    """pySigma lets contains/startswith/endswith follow ``fieldref`` (``SigmaFieldReference.starts_with`` and
    ``ends_with``): the field's value starts with / ends with / contains the other field's value."""
    starts = sigma("sel:\n    CommandLine|fieldref|startswith: Image\ncondition: sel")
    ends = sigma("sel:\n    CommandLine|fieldref|endswith: Image\ncondition: sel")
    contains = sigma("sel:\n    CommandLine|fieldref|contains: Image\ncondition: sel")
    event = proc(process__command_line=r"C:\x\A.exe -v", process__executable=r"c:\x\a.exe")
    assert starts(event)
    assert not ends(event)
    assert contains(event)
    assert ends(proc(process__command_line=r"run C:\x\a.exe", process__executable=r"C:\x\a.exe"))


def test_expand_uses_configured_placeholder_values() -> None:
    """Spec "Placeholders" and modifiers appendix ``expand``: ``%name%`` is replaced by the configured values,
    OR-linked; a configured value is a Sigma string (wildcards active, as pySigma's
    ValueListPlaceholderTransformation reads it)."""
    detection = "sel:\n    User|expand: '%Admins%'\ncondition: sel"
    match = sigma(detection, placeholders={"Admins": ["CORP\\admin*", "root"]})
    assert match(proc(winlog__event_data__User="CORP\\Administrator"))
    assert match(proc(user__name="root"))
    assert not match(proc(winlog__event_data__User="CORP\\bob"))


def test_expand_keeps_escaped_percent_literal() -> None:
    """Spec "Placeholders": ``\\%plain%name%`` is the plain text ``%plain`` followed by the placeholder ``name``."""
    match = sigma(
        "sel:\n    CommandLine|expand: '\\%plain%name%'\ncondition: sel",
        placeholders={"name": ["x"]},
    )
    assert match(proc(process__command_line="%plainx"))
    assert not match(proc(process__command_line="%plain%name%"))


def test_expand_without_a_configured_value_is_unsupported() -> None:
    """Spec "Placeholders": a tool that cannot handle a placeholder must reject the rule."""
    with pytest.raises(UnsupportedQuery) as raised:
        sigma("sel:\n    User|expand: '%Admins%'\ncondition: sel")
    assert raised.value.feature == "expand placeholder %Admins%"


def test_placeholder_text_without_expand_is_literal() -> None:
    """Spec "Placeholders": without ``expand``, ``%name%`` is a literal value."""
    match = sigma("sel:\n    CommandLine: '%Admins%'\ncondition: sel")
    assert match(proc(process__command_line="%admins%"))


def test_timestamp_part_modifiers_are_unsupported() -> None:
    """Modifiers appendix "Time Modifiers" (minute, hour...): not run by shellwatch, reported as such."""
    with pytest.raises(UnsupportedQuery) as raised:
        sigma("sel:\n    UtcTime|hour: 3\ncondition: sel")
    assert raised.value.feature == "timestamp part modifier"
