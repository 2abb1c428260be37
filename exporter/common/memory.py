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
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([A-Za-z]*)\s*")
_VARIANT = re.compile(r"\s*([^,()]+?)\s*(?:\(\s*([^()]+?)\s*\))?\s*(?:,|$)")


def parse_size(text: object) -> int:
    """Bytes in `text` (`2GB`, `1.5 GiB`, `800MB`, `1024`); ValueError on anything else."""
    if isinstance(text, bool):
        raise ValueError(f"not a memory size: {text!r}")
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError(f"negative memory size: {text!r}")
        return int(text)
    m = _SIZE.fullmatch(str(text))
    unit = _UNITS.get(m.group(2).upper()) if m else None
    if m is None or not unit:
        raise ValueError(f"not a memory size: {text!r} (expected e.g. 2GB, 1.5 GiB, 800MB)")
    return int(round(float(m.group(1)) * unit))


def parse_variants(text: object) -> list[tuple[str, int]]:
    """[(variant, bytes)] from `2GB` (one unnamed variant) or `20GB (Q4_K_M), 24GB (Q6_K)`."""
    if isinstance(text, dict):
        return [(str(k), parse_size(v)) for k, v in text.items()]
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
