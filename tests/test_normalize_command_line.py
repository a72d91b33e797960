"""process.args splitters against literal ports of the pipelines' own code.

Sources:
* sysmon: elastic/beats x-pack/winlogbeat/module/sysmon/ingest/sysmon.yml, "Implements Windows-like
  SplitCommandLine" (a port of golang/go commit 39c8d2b7 CommandLineToArgv);
* 4688: x-pack/winlogbeat/module/security/ingest/security.yml, "Process Event 4688" script, plus the system
  integration's script_to_drop_null_values (blank strings removed from lists).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shellwatch.normalize.command_line import command_line_to_argv, split_keeping_quotes

# Command lines built from the characters both algorithms treat specially, plus ordinary and odd ones.
_COMMAND_LINES = st.text(
    alphabet=st.sampled_from(list(' \t"\\aZ/.:-\n\r\x0b\x1f\u00a0\u2003\u0085é')), max_size=40
)


def painless_command_line_to_argv(cmd: str) -> list[str]:
    """The sysmon pipeline's Painless readNextArg/commandLineToArgv, transcribed character by character."""

    def read_next_arg(cmd: str) -> tuple[str, str]:
        b: list[str] = []
        inquote = False
        nslash = 0
        while len(cmd) > 0:
            c = cmd[0]
            if c in (" ", "\t"):
                if not inquote:
                    return "".join(b) + "\\" * nslash, cmd[1:]
            elif c == '"':
                b.append("\\" * (nslash // 2))
                if nslash % 2 == 0:
                    if inquote and len(cmd) > 1 and cmd[1] == '"':
                        b.append(c)
                        cmd = cmd[1:]
                    inquote = not inquote
                else:
                    b.append(c)
                nslash = 0
                cmd = cmd[1:]
                continue
            elif c == "\\":
                nslash += 1
                cmd = cmd[1:]
                continue
            b.append("\\" * nslash)
            nslash = 0
            b.append(c)
            cmd = cmd[1:]
        return "".join(b) + "\\" * nslash, ""

    args: list[str] = []
    while len(cmd) > 0:
        if cmd[0] in (" ", "\t"):
            cmd = cmd[1:]
            continue
        arg, cmd = read_next_arg(cmd)
        args.append(arg)
    return args


_JAVA_WHITESPACE_NOT_PYTHON_EXCLUSIONS = {"\u00a0", "\u2007", "\u202f", "\u0085"}


def _java_is_whitespace(c: str) -> bool:
    # java.lang.Character.isWhitespace
    if c in "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f ":
        return True
    return c.isspace() and ord(c) > 0x7F and c not in _JAVA_WHITESPACE_NOT_PYTHON_EXCLUSIONS


def painless_4688_split(command_line: str) -> list[str]:
    """The security pipeline's 4688 split, transcribed, then blank strings dropped (Java trim() == "")."""
    start = 0
    end = 0
    in_quote = False
    al: list[str] = []
    for i in range(len(command_line)):
        end = i
        if command_line[i] == '"':
            in_quote = not in_quote
        if _java_is_whitespace(command_line[i]) and not in_quote:
            al.append(command_line[start:end])
            start = i + 1
        if i == len(command_line) - 1:
            al.append(command_line[start : end + 1])
    return [a for a in al if a.strip("".join(map(chr, range(0x21))))]


@settings(max_examples=400, deadline=None)
@given(_COMMAND_LINES)
def test_command_line_to_argv_equals_the_pipeline_port(command_line: str) -> None:
    assert command_line_to_argv(command_line) == painless_command_line_to_argv(command_line)


@settings(max_examples=400, deadline=None)
@given(_COMMAND_LINES)
def test_split_keeping_quotes_equals_the_pipeline_script(command_line: str) -> None:
    assert split_keeping_quotes(command_line) == painless_4688_split(command_line)


def test_sysmon_golden_examples() -> None:
    """Expected args of beats' sysmon-12-processcreate.golden.json (trailing space, quoted path)."""
    assert command_line_to_argv('"C:\\Windows\\system32\\notepad.exe" ') == [
        "C:\\Windows\\system32\\notepad.exe"
    ]
    assert command_line_to_argv("C:\\Windows\\Explorer.EXE") == ["C:\\Windows\\Explorer.EXE"]


def test_command_line_to_argv_windows_rules() -> None:
    """Backslashes are literal unless they precede a quote; a doubled quote inside quotes is a literal
    quote that also ends the quoted part ("Prior to 2008" rule, daviddeley.com/autohotkey/parameters,
    section 5.2)."""
    assert command_line_to_argv('a\\\\"b c"') == ["a\\b c"]
    assert command_line_to_argv('a\\"b') == ['a"b']
    assert command_line_to_argv('"a""b c') == ['a"b', "c"]
    assert command_line_to_argv('"a""b" c') == ['a"b c']
    assert command_line_to_argv('""') == [""]
    assert command_line_to_argv("cmd.exe  /c\twhoami ") == ["cmd.exe", "/c", "whoami"]


def test_4688_golden_example_keeps_quotes() -> None:
    """Expected args of beats' security-windows2019_4688_Process_Created.golden.json."""
    assert split_keeping_quotes('"C:\\Windows\\system32\\wevtutil.exe" cl Security') == [
        '"C:\\Windows\\system32\\wevtutil.exe"',
        "cl",
        "Security",
    ]


def test_4688_split_quotes_do_not_separate_and_blanks_are_dropped() -> None:
    assert split_keeping_quotes('cmd /c "echo a  b"x  y ') == ["cmd", "/c", '"echo a  b"x', "y"]
    assert split_keeping_quotes("") == []
    assert split_keeping_quotes("   ") == []
