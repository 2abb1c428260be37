"""cli.plain_args, which reads a plain `orchex analytics` command line without argparse, against
argparse itself: whatever it reads, argparse reads the same way, and whatever argparse refuses, it
leaves to argparse (which then says what is wrong)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.cli import main, plain_args
from exporter.commands import analytics
from exporter.errors import UsageError
from exporter.parser import build_parser

TOKENS = ["a.csv", "b.csv", "-", "", "x=y", "json", "text", "markdown", "xml", "2026-01-01", "2026-01-01 08:00",
          "--report", "--strict", "--format", "--output", "--since", "--until", "--format=json", "--format=",
          "--format=xml", "--output=o.txt", "--output=", "--output=-", "--report=1", "--rep", "--form", "--",
          "-h", "--help", "-x", "-1", "--output=--report", "--since=2026-01-01", "-a.csv", "--nope"]


def argparse_reads(argv):
    try:
        ns = build_parser(["analytics"]).parse_args(["analytics", *argv])
    except UsageError:
        return None
    except SystemExit:  # --help
        return None
    return {k: v for k, v in vars(ns).items() if k not in ("command", "run")}


def plain(argv):
    return plain_args(argv, analytics.FILES, analytics.OPTIONS)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=8))
def test_what_it_reads_argparse_reads_the_same_way(argv):
    got = plain(argv)
    if got is not None:
        assert got == argparse_reads(argv)


@pytest.mark.parametrize("argv", [
    ["a.csv", "--report", "--format", "json"],
    ["--report", "a.csv", "b.csv", "-", "--format=markdown", "--output", "r.md", "--since", "2026-01-01",
     "--until=2026-02-01 00:00", "--strict", "--format", "text"],
    ["a.csv", "--output=", "--since", ""],
])
def test_a_plain_command_line_is_read_without_argparse(argv):
    """These are what people type; a reader that declined everything would pass the property above."""
    got = plain(argv)
    assert got is not None and got == argparse_reads(argv)


@pytest.mark.parametrize("argv", [
    [], ["--report"], ["a.csv", "--report", "b.csv"], ["a.csv", "--rep"], ["a.csv", "--format", "xml"],
    ["a.csv", "--output"], ["a.csv", "--output", "--report"], ["a.csv", "--report=1"], ["--", "a.csv"],
    ["a.csv", "-h"],
])
def test_it_leaves_help_abbreviations_and_mistakes_to_argparse(argv):
    assert plain(argv) is None


def test_a_mistake_is_still_argparse_s_one_line(capsys):
    assert main(["analytics", "a.csv", "--format", "xml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("orchex: analytics: argument --format: invalid choice: 'xml'") and err.count("\n") == 1
