"""`orchex registry import-legacy|validate`."""

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("registry", help="import the legacy registry files, validate a registry",
                       description="Manage the YAML model registry.")
    rs = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(p))
    imp = rs.add_parser("import-legacy", help="convert MODEL_REGISTRY.json and task_categories.json",
                        description="Convert the legacy JSON files into a registry YAML.")
    imp.add_argument("models", help="legacy MODEL_REGISTRY.json")
    imp.add_argument("categories", help="legacy task_categories.json (either shape)")
    imp.add_argument("-o", "--output", help="write here instead of standard output")
    imp.set_defaults(run=run_import)
    val = rs.add_parser("validate", help="report every problem in a registry file",
                        description="Check a registry; every problem is printed as FILE:LINE: message.")
    val.add_argument("file")
    val.set_defaults(run=run_validate)


def run_import(args: argparse.Namespace) -> None:
    from exporter.errors import ProblemList, UsageError
    from exporter.routing import legacy_import, registry

    data, notes = legacy_import.convert(args.models, args.categories)
    text = legacy_import.dump(data)
    try:  # never write a registry that fails to load; name the files the user gave, not the output
        reg = registry.loads(text, args.output or "<stdout>")
    except ProblemList as e:
        raise UsageError("\n".join(f"{args.models}, {args.categories}: converted registry: {msg}"
                                    for _, msg in e.problems)) from None
    for note in notes:
        print(f"orchex: note: {note}", file=sys.stderr)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.output}: {len(reg.models)} models, {len(reg.categories)} categories",
              file=sys.stderr)
    else:
        sys.stdout.write(text)


def run_validate(args: argparse.Namespace) -> None:
    from exporter.routing import registry

    reg = registry.load(args.file)
    print(f"{args.file}: OK ({len(reg.models)} models, {len(reg.categories)} categories)")
