"""Parse memory sizes as written in registries: `2GB`, `1.5 GiB`, `800MB`, and variant lists such as
`20GB (Q4_K_M), 24GB (Q6_K), 32GB (Q8_0)`.

Decimal units (KB, MB, GB, TB) are powers of 1000 and binary ones (KiB, MiB, GiB, TiB) powers of 1024,
as the SI and IEC define them; a bare number is bytes.
"""

import re

_UNITS = {
    "": 1, "B": 1,
    "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9, "GB": 10**9, "T": 10**12, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
}
_SIZE = re.compile(r"\s*(\d{1,16}(?:\.\d{1,12})?|\.\d{1,12})\s*([A-Za-z]{0,3})\s*")
MAX_SIZE = 2**60  # an exbibyte: far beyond any accelerator; a larger size is a mistake, not memory
_VARIANT = re.compile(r"\s*([^,()]+?)\s*(?:\(\s*([^()]+?)\s*\))?\s*(?:,|$)")


def parse_size(text: object) -> int:
    """Bytes in `text` (`2GB`, `1.5 GiB`, `800MB`, `1024`); ValueError on anything else."""
    if isinstance(text, bool) or not isinstance(text, (int, float, str)):
        raise ValueError(f"not a memory size: {text!r}")
    if isinstance(text, (int, float)):
        value = float(text) if isinstance(text, float) else text
    else:
        m = _SIZE.fullmatch(text)
        unit = _UNITS.get(m.group(2).upper()) if m else None
        if m is None or not unit:
            raise ValueError(f"not a memory size: {text[:40]!r} (expected e.g. 2GB, 1.5 GiB, 800MB)")
        value = float(m.group(1)) * unit
    if not 0 <= value <= MAX_SIZE:  # also false for NaN
        raise ValueError(f"memory size out of range: {str(text)[:40]!r} (0 to 1 EiB)")
    return int(round(value))


def parse_variants(text: object) -> list[tuple[str, int]]:
    """[(variant, bytes)] from `2GB` (one unnamed variant) or `20GB (Q4_K_M), 24GB (Q6_K)`."""
    if isinstance(text, dict):
        if not text:
            raise ValueError("empty memory size mapping (expected variant: size)")
        if not all(isinstance(k, str) and k for k in text):
            raise ValueError("memory variant names must be non-empty strings")
        return [(k, parse_size(v)) for k, v in text.items()]
    if not isinstance(text, (str, int, float)) or isinstance(text, bool):
        raise ValueError(f"not a memory size: {text!r}")
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return [("", parse_size(text))]
    s = str(text).strip()
    if not s:
        raise ValueError("empty memory size")
    out, pos = [], 0
    while pos < len(s):
        m = _VARIANT.match(s, pos)
        if not m or m.end() == pos:
            raise ValueError(f"not a memory size list: {text!r}")
        out.append((m.group(2) or "", parse_size(m.group(1))))
        pos = m.end()
    if len(out) > 1 and any(not name for name, _ in out):
        raise ValueError(f"every variant in a list needs a name in parentheses: {text!r}")
    return out


def format_size(n: int) -> str:
    """Short human form, decimal units to match how registries write sizes."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= scale:
            v = n / scale
            return f"{v:.0f}{unit}" if v == int(v) else f"{v:.1f}{unit}"
    return f"{n}B"
