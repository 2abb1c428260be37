"""orchex: routing core, GPU telemetry and a Prometheus exporter for hosts serving local LLMs.

Start-up is part of `orchex analytics`' 50 ms on a small log, and each module imported costs time
twice, at import and at exit. So the modules on its path (cli, commands/analytics, policy,
selectionlog, analytics, common/quantile, common/jsontext) import no `typing` at run time (5 ms):
they write `TYPE_CHECKING = False`, which mypy reads as typing's, and take their annotations lazily;
nor `dataclasses` (9 ms) or `shutil` (7 ms, through argparse's help formatter: see parser.py); nor
argparse for a plain command line (3 ms with gettext and locale: cli.plain_args); nor json or re
(8 ms with enum: the JSON report is written by common/jsontext.py, and the row regexes are compiled
at their first use); gzip, csv and glob are imported where a gzip file, a quoted field or a glob
pattern needs them. A test in tests/test_analytics.py fails when one of them is imported again."""

__version__ = "0.1.0"
