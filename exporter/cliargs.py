"""Argument types for the command line: every number a flag takes is finite and in a stated range,
so `--rate nan`, `--count -1` or `--min-benchmark inf` are refused with one line naming the flag
(argparse turns an ArgumentTypeError into `orchex CMD: argument --flag: ...`, exit 2)."""

import argparse
import math
from collections.abc import Callable


def whole(lo: int, hi: int) -> Callable[[str], int]:
    """A whole number from lo to hi."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text[:40]!r}") from None
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"must be from {lo:,} to {hi:,}, not {n:,}")
        return n
    return parse


def number(lo: float, hi: float, low_open: bool = False) -> Callable[[str], float]:
    """A finite number from lo (excluded when low_open) to hi."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid float value: {text[:40]!r}") from None
        if not math.isfinite(v) or v < lo or v > hi or low_open and v == lo:
            shown = f"above {lo:g}" if low_open else f"from {lo:g}"
            raise argparse.ArgumentTypeError(f"must be a number {shown} up to {hi:,g}, not {text[:40]!r}")
        return v
    return parse
