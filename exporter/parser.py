"""The `orchex` argument parser: argparse, told the terminal's width without shutil, and made to
report a mistake as one line (exit 2) like every other bad input. Imported only when a command line
needs it (exporter/cli.py)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from exporter import __version__
from exporter.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing: see exporter/__init__.py
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, NoReturn, TypeAlias

    # A command's long options: (flag, its choices, or a metavar for any value, or None for a switch; help).
    Options: TypeAlias = tuple[tuple[str, str | tuple[str, ...] | None, str], ...]


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


def add_options(parser: argparse.ArgumentParser, options: Options) -> None:
    """Long options from a table (Options), as cli.plain_args reads them."""
    for flag, value, text in options:
        if value is None:
            parser.add_argument(flag, action="store_true", help=text)
        elif isinstance(value, tuple):
            parser.add_argument(flag, choices=value, help=text)
        else:
            parser.add_argument(flag, metavar=value, help=text)


def build_parser(commands: Iterable[str]) -> Parser:
    """The parser, with just these subcommands (for a command line that names one, just its own:
    building all of them costs 8 ms)."""
    parser = Parser(prog="orchex", description="Routing core, GPU telemetry and Prometheus exporter "
                    "for GPU hosts serving local LLMs.")
    parser.add_argument("--version", action="version", version=f"orchex {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in commands:
        importlib.import_module(f"exporter.commands.{name.replace('-', '_')}").add_parser(sub)
    return parser
