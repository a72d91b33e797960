"""How Elastic's Windows pipelines split a command line into ``process.args``.

Two splitters are in use and they disagree, so each source keeps its own:

* :func:`command_line_to_argv` -- the sysmon_operational pipeline's port of Go's ``CommandLineToArgv``
  (golang/go commit 39c8d2b7, "Prior to 2008" rule for doubled quotes): quotes are removed, backslashes
  before a quote are halved. Used for Sysmon (and by Elastic for SentinelOne and CrowdStrike).
* :func:`split_keeping_quotes` -- the system/security pipeline's 4688 script: a quote-aware whitespace split
  that keeps the quote characters in the arguments (``"\\"C:\\Windows\\system32\\wevtutil.exe\\""``).

Both are written around ``str`` operations (split, regex tokens) instead of a per-character Python loop; the
tests check them against literal per-character ports of the pipelines' code.
"""

from __future__ import annotations

import re

# Whitespace runs, backslash runs, single quotes, and runs of anything else: the only distinctions
# CommandLineToArgv makes.
_ARGV_TOKENS = re.compile(r'[ \t]+|\\+|"|[^ \t\\"]+')

# java.lang.Character.isWhitespace for the ASCII range; the 4688 script splits on it.
_JAVA_ASCII_WHITESPACE = frozenset(" \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f")
_JAVA_OTHER_ASCII_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"
# Unicode space separators that Java does not count as whitespace (non-breaking spaces) or that Python
# counts and Java does not (NEL).
_NOT_JAVA_WHITESPACE = frozenset("\u00a0\u2007\u202f\u0085")
# java.lang.String.trim removes every character up to and including the space.
_JAVA_TRIMMED = "".join(map(chr, range(0x21)))


def command_line_to_argv(command_line: str) -> list[str]:
    """Split like the sysmon_operational pipeline's ``commandLineToArgv`` (Windows rules, quotes stripped)."""
    if "\t" in command_line:
        # Tabs separate arguments like spaces outside quotes; inside quotes they are kept, so only the
        # quote-free case may translate them.
        if '"' not in command_line:
            command_line = command_line.replace("\t", " ")
        else:
            return _argv_with_tabs(command_line)
    if '"' not in command_line:
        # Without quotes, backslashes are literal and only spaces separate arguments.
        return [arg for arg in command_line.split(" ") if arg]
    # Backslashes matter only right before a quote, so the line is taken quote by quote: segments[i] is the
    # text before quote i (the last segment has no quote after it).
    args: list[str] = []
    current: list[str] = []
    in_arg = False
    in_quote = False
    skip_quote = False
    segments = command_line.split('"')
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if skip_quote:
            # The second quote of a doubled quote, already consumed (segment is empty).
            skip_quote = False
            continue
        slashes = 0
        if index < last and segment[-1:] == "\\":
            text = segment.rstrip("\\")
            slashes = len(segment) - len(text)
        else:
            text = segment
        if text:
            if in_quote:
                current.append(text)
                in_arg = True
            else:
                pieces = text.split(" ")
                if pieces[0]:
                    current.append(pieces[0])
                    in_arg = True
                for piece in pieces[1:]:
                    if in_arg:
                        args.append("".join(current))
                        current = []
                        in_arg = False
                    if piece:
                        current.append(piece)
                        in_arg = True
        if index == last:
            break
        in_arg = True
        if slashes:
            current.append("\\" * (slashes // 2))
        if slashes % 2:
            current.append('"')
            continue
        # A doubled quote inside quotes is a literal quote ("Prior to 2008" rule) and still toggles.
        if in_quote and index + 1 < last and not segments[index + 1]:
            current.append('"')
            skip_quote = True
        in_quote = not in_quote
    if in_arg:
        args.append("".join(current))
    return args


def _argv_with_tabs(command_line: str) -> list[str]:
    # Rare: tabs together with quotes. The token walk handles any separator.
    args: list[str] = []
    current: list[str] = []
    in_arg = False
    in_quote = False
    slashes = 0
    tokens = _ARGV_TOKENS.findall(command_line)
    count = len(tokens)
    i = 0
    while i < count:
        token = tokens[i]
        i += 1
        first = token[0]
        if first == " " or first == "\t":
            if in_quote:
                current.append("\\" * slashes)
                slashes = 0
                current.append(token)
            elif in_arg:
                current.append("\\" * slashes)
                slashes = 0
                args.append("".join(current))
                current = []
                in_arg = False
            continue
        in_arg = True
        if first == "\\":
            slashes += len(token)
        elif first == '"':
            current.append("\\" * (slashes // 2))
            if slashes % 2 == 0:
                if in_quote and i < count and tokens[i] == '"':
                    current.append('"')
                    i += 1
                in_quote = not in_quote
            else:
                current.append('"')
            slashes = 0
        else:
            current.append("\\" * slashes)
            slashes = 0
            current.append(token)
    if in_arg:
        current.append("\\" * slashes)
        args.append("".join(current))
    return args


def split_keeping_quotes(command_line: str) -> list[str]:
    """Split like the system/security pipeline's 4688 script, dropping the blank arguments.

    The script splits at every whitespace character outside double quotes (so two spaces give an empty
    argument) and keeps the quotes. The current system integration then drops blank strings from every list
    of the document (its ``script_to_drop_null_values`` step), so the empty arguments are left out here too.
    """
    if not command_line:
        return []
    if command_line.isascii() and not any(c in command_line for c in _JAVA_OTHER_ASCII_WHITESPACE):
        if '"' not in command_line:
            return [arg for arg in command_line.split(" ") if arg.strip(_JAVA_TRIMMED)]
        return _split_ascii_spaces_keeping_quotes(command_line)
    return _split_keeping_quotes_per_character(command_line)


def _split_ascii_spaces_keeping_quotes(command_line: str) -> list[str]:
    # Segments between quotes alternate outside/inside; only outside segments split, at single spaces.
    args: list[str] = []
    current: list[str] = []
    for index, segment in enumerate(command_line.split('"')):
        if index:
            current.append('"')
        if index % 2:
            current.append(segment)
            continue
        pieces = segment.split(" ")
        current.append(pieces[0])
        for piece in pieces[1:]:
            args.append("".join(current))
            current = [piece]
    args.append("".join(current))
    return [arg for arg in args if arg.strip(_JAVA_TRIMMED)]


def _is_java_whitespace(char: str) -> bool:
    if char in _JAVA_ASCII_WHITESPACE:
        return True
    return char > "\x7f" and char.isspace() and char not in _NOT_JAVA_WHITESPACE


def _split_keeping_quotes_per_character(command_line: str) -> list[str]:
    args: list[str] = []
    start = 0
    in_quote = False
    for index, char in enumerate(command_line):
        if char == '"':
            in_quote = not in_quote
        elif not in_quote and _is_java_whitespace(char):
            args.append(command_line[start:index])
            start = index + 1
    args.append(command_line[start:])
    return [arg for arg in args if arg.strip(_JAVA_TRIMMED)]
