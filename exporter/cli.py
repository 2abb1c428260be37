"""`orchex` command line. Each subcommand lives in exporter/commands/<name>.py with `add_parser` and
`run`; command modules import their heavy dependencies inside `run`, so that a quick command such as
`orchex analytics` does not pay for the exporter's imports at start-up."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from exporter import __version__
from exporter.errors import ProblemList, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing: see exporter/__init__.py
if TYPE_CHECKING:
    from typing import Any, NoReturn

COMMANDS = ("serve", "demo", "select", "registry", "gpu-monitor", "bench", "analytics")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, told the terminal's width as shutil.get_terminal_size finds it (COLUMNS,
    then the terminal, then 80). Left to find it, argparse imports shutil, and with it bz2 and lzma,
    to build a formatter, which add_argument does: 7 ms of every start, help asked for or not."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, width or terminal_columns())


def terminal_columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # one line and exit 2, as for every other bad input
        where = self.prog.partition(" ")[2]
        raise UsageError(f"{where}: {message}" if where else message)


def build_parser(only: str | None = None) -> Parser:
    """The parser; with `only`, just that subcommand's (building all of them costs 8 ms, a sixth of
    `orchex analytics`' budget on a small file)."""
    parser = Parser(prog="orchex", description="Routing core, GPU telemetry and Prometheus exporter "
                    "for GPU hosts serving local LLMs.")
    parser.add_argument("--version", action="version", version=f"orchex {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in [only] if only else COMMANDS:
        importlib.import_module(f"exporter.commands.{name.replace('-', '_')}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else None)
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        return args.run(args) or 0
    except UsageError as e:
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
