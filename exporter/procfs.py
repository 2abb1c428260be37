"""The host's processes as /proc shows them: whether it is the host's PID namespace that /proc shows,
and a process's name and cgroup. NVML reports host PIDs: in any other PID namespace the same number
may name an unrelated process, so nothing is read there."""

import os

# The kernel gives the initial (host) PID namespace this fixed inode number (PROC_PID_INIT_INO).
HOST_PID_NAMESPACE = "pid:[4026531836]"
CGROUP_BYTES = 65_536  # a process's cgroup file is a few hundred bytes; a longer one is cut, not read whole


def host_pid_namespace(proc: str = "/proc") -> bool:
    """Whether `proc` shows the host's processes: this process lives in the host's PID namespace
    (hostPID in Kubernetes), or `proc` is the host's /proc mounted elsewhere, where PID 1 is the
    host's init. A container has its own /proc, so only the namespace's identity can tell."""
    for pid in ("self", "1"):
        try:
            if os.readlink(f"{proc}/{pid}/ns/pid") == HOST_PID_NAMESPACE:
                return True
        except OSError:
            continue
    return False


def _head(path: str, limit: int) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:  # the process ended, or is not visible here
        return None


def command(pid: int, proc: str = "/proc") -> str | None:
    """The process's name (comm, at most 15 characters), or None where the PID is not visible."""
    text = _head(f"{proc}/{pid}/comm", 64)
    return None if text is None else text.rstrip(b"\n").decode(errors="replace")


def cgroup(pid: int, proc: str = "/proc") -> str | None:
    """The process's /proc/<pid>/cgroup, or None where the PID is not visible."""
    text = _head(f"{proc}/{pid}/cgroup", CGROUP_BYTES)
    return None if text is None else text.decode(errors="replace")
