"""Helpers with no knowledge of orchex's domains, used by several subpackages: memory sizes, CSV
field quoting, nearest-rank quantiles. This package imports nothing else from `exporter`, so every
other subpackage may depend on it without making a cycle."""
