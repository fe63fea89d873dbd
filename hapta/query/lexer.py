"""Turns filter text into tokens, enforcing the per-token abuse limits.

Hand-written rather than regex-driven so every error can name the exact offset, and so that only
ASCII is ever treated as syntax: look-alike characters (fullwidth quotes, Unicode spaces, bidi
overrides) outside string literals are rejected instead of being silently accepted or ignored.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .ast import VAR_KINDS
from .errors import FilterError
from .kinds import INT64
from .operators import SYMBOLS

MAX_TEXT = 4096
MAX_STRING = 4096

WHITESPACE = " \t\r\n"
KEYWORD_VALUES = {"true": True, "false": False, "null": None}
# Both quotes may be escaped in both kinds of string, so one set of rules serves `"..."` and `'...'`.
SIMPLE_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t"}
QUOTES = "\"'"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
# After the comparison operators (operators.SYMBOLS, longest first, so `!=` is not `!` then `=`): the rest.
_PUNCTUATION = ("&&", "||", "!", "(", ")", "[", "]", ",")


@dataclass(frozen=True)
class Token:
    type: str      # "field", "var", "value", "op" (comparison operators and `in`), "end", or the punctuation itself
    value: Any     # path tuple for fields/vars, the Python value for literals, else the source text
    pos: int       # 0-based offset of the token's first character


def describe_char(char: str) -> str:
    """Show a character in an error message without letting odd Unicode garble the message."""
    if char.isascii() and char.isprintable():
        return f"'{char}'"
    return f"U+{ord(char):04X}"


def tokenize(text: str) -> list[Token]:
    """Split `text` into tokens ending with an "end" token, or raise FilterError."""
    if len(text) > MAX_TEXT:
        raise FilterError(f"filter is too long (more than {MAX_TEXT} characters)")
    tokens: list[Token] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in WHITESPACE:
            pos += 1
        if pos == len(text):
            tokens.append(Token("end", None, pos))
            return tokens
        token, pos = _next_token(text, pos)
        tokens.append(token)


def _next_token(text: str, pos: int) -> tuple[Token, int]:
    char = text[pos]
    if char in QUOTES:
        return _string(text, pos)
    if _is_digit(char) or (char == "-" and _is_digit(text[pos + 1 : pos + 2])):
        return _number(text, pos)
    for symbol in SYMBOLS:   # `@@` (full-text search) before `@` takes it for a variable
        if text.startswith(symbol, pos):
            return Token("op", symbol, pos), pos + len(symbol)
    if char == "@":
        return _var(text, pos)
    if _NAME.match(text, pos):
        return _word(text, pos)
    for punct in _PUNCTUATION:
        if text.startswith(punct, pos):
            return Token(punct, punct, pos), pos + len(punct)
    raise FilterError(f"unexpected character {describe_char(char)} at {pos}")


def _is_digit(char: str) -> bool:
    """ASCII digits only: str.isdigit() would also accept e.g. Arabic-Indic digits."""
    return len(char) == 1 and "0" <= char <= "9"


def _path(text: str, pos: int) -> tuple[tuple[str, ...], int]:
    """Read `name(.name)*`; the parser decides how many parts are allowed where."""
    parts = []
    while True:
        match = _NAME.match(text, pos)
        if not match:
            raise FilterError(f"expected a name at {pos}")
        parts.append(match.group())
        pos = match.end()
        if not text.startswith(".", pos):
            return tuple(parts), pos
        pos += 1


def _word(text: str, start: int) -> tuple[Token, int]:
    path, end = _path(text, start)
    name = ".".join(path)
    if name in KEYWORD_VALUES:
        return Token("value", KEYWORD_VALUES[name], start), end
    if name == "in":
        return Token("op", "in", start), end
    if len(path) > 2:
        raise FilterError(f"field '{name}' at {start} goes through more than one relation; use at most one dot")
    return Token("field", path, start), end


def _var(text: str, start: int) -> tuple[Token, int]:
    path, end = _path(text, start + 1)
    name = ".".join(path)
    if name not in VAR_KINDS:
        known = ", ".join("@" + var for var in VAR_KINDS)
        raise FilterError(f"unknown variable '@{name}' at {start} (known: {known})")
    return Token("var", name, start), end


def _number(text: str, start: int) -> tuple[Token, int]:
    match = _NUMBER.match(text, start)
    end = match.end()
    if end < len(text) and (text[end] == "." or _NAME.match(text, end)):
        raise FilterError(f"invalid number at {start}")
    source = match.group()
    if match.group(1) is None and match.group(2) is None:
        # Checking the digit count first keeps int() away from enormous inputs.
        digits = source.lstrip("-").lstrip("0")
        value = int(source) if len(digits) <= 19 else None
        if value is None or not INT64[0] <= value <= INT64[1]:
            raise FilterError(f"integer out of range at {start} (must fit in 64 bits)")
        return Token("value", value, start), end
    value = float(source)
    if not math.isfinite(value):
        raise FilterError(f"number out of range at {start}")
    return Token("value", value, start), end


def _string(text: str, start: int) -> tuple[Token, int]:
    """Read a string in double or single quotes with JSON-like escapes (plus `\\'`); reject what PostgreSQL text
    cannot hold. Single quotes are there because PocketBase and SQL users write them; the value is a parameter
    either way, so neither quote ever reaches SQL text."""
    quote = text[start]
    chars: list[str] = []
    pos = start + 1
    while True:
        if pos >= len(text):
            raise FilterError(f"unterminated string starting at {start}")
        char, char_start = text[pos], pos
        if char == quote:
            break
        if char == "\\":
            char, pos = _escape(text, pos)
        else:
            pos += 1
        if char == "\x00":
            raise FilterError(f"NUL character in string at {char_start}")
        if "\ud800" <= char <= "\udfff":
            raise FilterError(f"unpaired surrogate in string at {char_start}")
        chars.append(char)
    if len(chars) > MAX_STRING:
        raise FilterError(f"string at {start} is too long (more than {MAX_STRING} characters)")
    return Token("value", "".join(chars), start), pos + 1


def _escape(text: str, pos: int) -> tuple[str, int]:
    """Decode the escape starting at the backslash at `pos`; returns the character and the next offset."""
    code = text[pos + 1 : pos + 2]
    if code in SIMPLE_ESCAPES:
        return SIMPLE_ESCAPES[code], pos + 2
    if code != "u":
        shown = describe_char(code) if code else "end of filter"
        raise FilterError(f"invalid escape {shown} in string at {pos}")
    high = _hex4(text, pos)
    if 0xD800 <= high <= 0xDBFF and text.startswith("\\u", pos + 6):
        low = _hex4(text, pos + 6)
        if 0xDC00 <= low <= 0xDFFF:
            return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), pos + 12
    return chr(high), pos + 6


def _hex4(text: str, pos: int) -> int:
    """The value of the `\\uXXXX` escape at `pos`."""
    if not _HEX4.fullmatch(text, pos + 2, pos + 6):
        raise FilterError(f"invalid \\u escape in string at {pos}")
    return int(text[pos + 2 : pos + 6], 16)
