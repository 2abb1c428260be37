"""`orchex` command line. Each subcommand lives in exporter/commands/<name>.py with `add_parser` and
`run`; command modules import their heavy dependencies inside `run`, so that a quick command such as
`orchex analytics` does not pay for the exporter's imports at start-up."""

import argparse
import importlib
import sys

from exporter import __version__
from exporter.errors import UsageError

COMMANDS = ("select", "registry")


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, as for every other bad input
        raise UsageError(f"{self.prog}: {message}")


def build_parser():
    parser = Parser(prog="orchex", description="Routing core, GPU telemetry and Prometheus exporter "
                    "for GPU hosts serving local LLMs.")
    parser.add_argument("--version", action="version", version=f"orchex {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"exporter.commands.{name.replace('-', '_')}").add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        return args.run(args) or 0
    except UsageError as e:
        print(f"orchex: {e}" if "\n" not in str(e) else str(e), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (`| head`): not an error worth a traceback
        return 0
