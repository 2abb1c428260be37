"""Errors that the command line turns into one line on standard error and an exit status."""

from collections.abc import Iterable


class UsageError(Exception):
    """Bad input from the user (a flag, a file, a value): printed as one line, exit 2."""

    exit_code = 2


class RunFailed(Exception):
    """A run that started well and could not finish (a disk that filled up): one line, exit 1."""

    exit_code = 1


class ProblemList(UsageError):
    """Several problems found in one file, each `FILE:LINE: message`; all are reported at once."""

    def __init__(self, path: str, problems: Iterable[tuple[int | None, str]]) -> None:
        self.path = path
        self.problems = sorted(problems, key=lambda p: (p[0] or 0, p[1]))
        super().__init__("\n".join(f"{path}:{line or 0}: {msg}" for line, msg in self.problems))


def write_output(path: str, text: str, flag: str = "--output") -> None:
    """Write a report to `path`; a failure is a UsageError naming the flag."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise UsageError(f"{flag} {path}: {e.strerror}") from None
