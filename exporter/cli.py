"""`orchex` command line. Each subcommand lives in exporter/commands/<name>.py with `add_parser` and
`run`; command modules import their heavy dependencies (NVML, the exporter's server) inside `run`, so
that a report does not load the daemon."""

import sys

from exporter.errors import ProblemList, RunFailed, UsageError
from exporter.parser import build_parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser()
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
