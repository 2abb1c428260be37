"""The process's name as the kernel shows it (/proc/PID/comm)."""

import ctypes

PR_SET_NAME = 15


def name_process(name: str) -> None:
    """So that `pidof orchex` and `pkill -HUP -x orchex` find the daemon, and only it: run through its
    console script every orchex command is `orchex`, and under `python -m` it is `python3`."""
    try:
        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        pass
