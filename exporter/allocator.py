"""Tuning of the C allocator for a long-running daemon."""

import ctypes

M_ARENA_MAX = -8


def one_malloc_arena() -> None:
    """glibc gives each thread that allocates its own malloc arena; with one thread per scrape
    connection, twenty concurrent scrapers left ~11 MB of resident memory behind in arenas that are
    never returned. One arena keeps the daemon's memory flat; allocation here is not contended."""
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):  # not glibc
        pass
