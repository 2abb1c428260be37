"""`orchex` command line. Each subcommand lives in exporter/commands/<name>.py with `add_parser` and
`run`; command modules import their heavy dependencies inside `run`, so that a quick command such as
`orchex analytics` does not pay for the exporter's imports at start-up.

A command that declares its options as a table (FILES and OPTIONS: `orchex analytics`) is read
without argparse when its command line is plain (plain_args): importing argparse, with gettext and
locale, and building its parser is 3 ms, a fifteenth of such a report's 50 ms on a small log.
Anything else, help and every mistake included, goes to argparse, which has the last word.
"""

from __future__ import annotations

import importlib
import sys

from exporter.errors import ProblemList, RunFailed, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing: see exporter/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from exporter.parser import Options

COMMANDS = ("serve", "demo", "select", "registry", "gpu-monitor", "bench", "analytics")


def plain_args(argv: list[str], files: str, options: Options) -> dict[str, Any] | None:
    """What argparse makes of `argv` for a parser of one or more positional `files` and add_options'
    `options`, when argv is plain: one run of positionals, options spelled in full, values that do
    not start with a dash, choices kept. None for anything else (help, an abbreviation, `--`, a
    mistake): argparse then reads it and says what is wrong. Tests hold the two to the same result."""
    kinds = {flag: (value, flag[2:].replace("-", "_")) for flag, value, _ in options}  # and where it goes
    got: dict[str, Any] = {dest: False if value is None else None for value, dest in kinds.values()}
    positionals: list[str] = []
    i, ended = 0, False  # ended: a run of positionals was followed by an option (argparse refuses more)
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "-" or not token.startswith("-"):
            if ended:
                return None
            positionals.append(token)
            continue
        ended = bool(positionals)
        flag, equals, value = token.partition("=")
        if flag not in kinds:
            return None
        kind, dest = kinds[flag]
        if kind is None:
            if equals:
                return None
            got[dest] = True
            continue
        if not equals:
            if i == len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        if isinstance(kind, tuple) and value not in kind:
            return None
        got[dest] = value
    if not positionals:
        return None
    got[files] = positionals
    return got


def _plain(command: str | None, argv: list[str]) -> Any:
    """The command's arguments read by plain_args, where it declares its options as a table."""
    if command is None:
        return None
    module = importlib.import_module(f"exporter.commands.{command.replace('-', '_')}")
    got = plain_args(argv, module.FILES, module.OPTIONS) if hasattr(module, "OPTIONS") else None
    if got is None:
        return None
    from types import SimpleNamespace

    return SimpleNamespace(command=command, run=module.run, **got)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in COMMANDS else None
    try:
        args = _plain(command, argv[1:])
        if args is None:
            from exporter.parser import build_parser

            parser = build_parser([command] if command else COMMANDS)
            args = parser.parse_args(argv)
            if not args.command:
                parser.print_help()
                return 2
        return args.run(args) or 0
    except (UsageError, RunFailed) as e:
        # A ProblemList is already `FILE:LINE: message` lines; anything else is one line of ours.
        print(str(e) if isinstance(e, ProblemList) else f"orchex: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (`| head`): not an error worth a traceback
        return 0
    except OSError as e:  # a file that vanished or cannot be read mid-run: still one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"orchex: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
