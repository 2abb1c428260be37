"""JSON text of plain data (dicts with str keys, lists, tuples, str, int, float, bool, None), the
same text, byte for byte, as json.dumps(value, indent=2). `orchex analytics --format json` writes its
report with it because importing json imports re, and re imports enum: 8 ms of the 50 ms that a
report on a small log has, start-up included. tests/test_jsontext.py holds it to json.dumps."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing: see exporter/__init__.py
if TYPE_CHECKING:
    from typing import Any

_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_INFINITY = float("inf")


def dumps(value: Any) -> str:
    parts: list[str] = []
    _encode(value, "\n", parts)
    return "".join(parts)


def _string(s: str) -> str:
    """A JSON string in ASCII, as json's ensure_ascii writes it: printable ASCII as it is, the short
    escapes, \\u00XX for other characters, surrogate pairs beyond the BMP."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    out = ['"']
    for ch in s:
        if " " <= ch <= "~" and ch != '"' and ch != "\\":
            out.append(ch)
        elif ch in _SHORT:
            out.append(_SHORT[ch])
        else:
            n = ord(ch)
            if n > 0xFFFF:
                n -= 0x10000
                out.append(f"\\u{0xD800 | n >> 10:04x}\\u{0xDC00 | n & 0x3FF:04x}")
            else:
                out.append(f"\\u{n:04x}")
    out.append('"')
    return "".join(out)


def _number(value: int | float) -> str:
    if isinstance(value, int):
        return int.__repr__(value)
    if value != value:
        return "NaN"
    if value == _INFINITY or value == -_INFINITY:
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _encode(value: Any, newline: str, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_string(value))
    elif value is None:
        out.append("null")
    elif value is True or value is False:
        out.append("true" if value else "false")
    elif isinstance(value, (int, float)):
        out.append(_number(value))
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        out.append("[")
        for i, item in enumerate(value):
            out.append("," + inner if i else inner)
            _encode(item, inner, out)
        out.append(newline + "]")
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"keys must be str, not {type(key).__name__}")
            out.append(("," + inner if i else inner) + _string(key) + ": ")
            _encode(item, inner, out)
        out.append(newline + "}")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
