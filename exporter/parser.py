"""The `orchex` argument parser: argparse, made to report a mistake as one line (exit 2) like every
other bad input, with a did-you-mean for a misspelled flag as a misspelled config key has."""

import argparse
import difflib
import importlib
from typing import Any, NoReturn

from exporter import __version__
from exporter.errors import UsageError

COMMANDS = ("serve", "demo", "select", "registry", "gpu-monitor", "bench", "analytics")


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line and exit 2, as for every other bad input
        where = self.prog.partition(" ")[2]
        raise UsageError(f"{where}: {message}{self._suggestion(message)}" if where
                         else f"{message}{self._suggestion(message)}")

    def _suggestion(self, message: str) -> str:
        """` (did you mean --format?)` for an unrecognized flag close to one this parser or its
        subcommands know."""
        prefix = "unrecognized arguments: "
        if not message.startswith(prefix):
            return ""
        known = list(self._option_string_actions)
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                known += [flag for sub in action.choices.values() for flag in sub._option_string_actions]
        for word in message[len(prefix):].split():
            flag = word.partition("=")[0]
            if flag.startswith("--"):
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
                if close:
                    return f" (did you mean {close[0]}?)"
        return ""


def build_parser() -> Parser:
    parser = Parser(prog="orchex", description="Routing core, GPU telemetry and Prometheus exporter "
                    "for GPU hosts serving local LLMs.")
    parser.add_argument("--version", action="version", version=version_text())
    sub: Any = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"exporter.commands.{name.replace('-', '_')}").add_parser(sub)
    return parser


def version_text() -> str:
    """`orchex --version`: the version, and whether the selection-log kernel (_fold.c) is active."""
    from exporter.selectionlog.tally import kernel_active

    return f"orchex {__version__} (C kernel: {'active' if kernel_active() else 'not built'})"
