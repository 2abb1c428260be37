"""exporter/yamlfile.py reads with libyaml where PyYAML has it (yamlfile.LOADER) and with PyYAML's own
parser where it does not: both give the same data, the same key lines, and refuse the same documents
at the same line."""

import pathlib

import pytest
import yaml

from exporter import yamlfile
from exporter.errors import UsageError
from exporter.routing import registry

LOADERS = [yaml.SafeLoader] + ([yaml.CSafeLoader] if hasattr(yaml, "CSafeLoader") else [])
GOOD = {
    "default registry": pathlib.Path(registry.DEFAULT_PATH).read_text(),
    "quoted merge-key name": 'a:\n  "<<": 1\nb:\n  \'<<\': 2\n',
    "scalars": "a: 1\nb: 1.5\nc: true\nd: null\ne: 2026-01-02\nf: 'x'\ng: \"y\"\nh: |\n  block\n",
    "nested": "a:\n  - b: [1, 2, {c: d}]\n  - - e\n    - f\n",
    "empty": "",
}
BAD = {  # each refused, at this line
    "anchor": ("a: &x 1\n", 1), "alias": ("a: 1\nb: *x\n", 2), "tag": ("a: 1\nb: !size 2\n", 2),
    "merge key": ("b: {x: 1}\nc:\n  <<: {y: 2}\n", 3), "flow merge key": ("a: {<<: {y: 2}}\n", 1),
    "deep nesting": ("a: " + "[" * 100 + "]" * 100 + "\n", 1), "duplicate key": ("a: 1\nb: 2\na: 3\n", 3),
    "bad timestamp": ("a:\n  b: 2026-13-45\n", 2), "syntax": ("a: [\n", 2), "tab": ("a:\n\tb: 1\n", 2),
}


@pytest.fixture(params=LOADERS, ids=lambda loader: loader.__name__)
def loader(request, monkeypatch):
    monkeypatch.setattr(yamlfile, "LOADER", request.param)
    return request.param


def test_libyaml_is_used_where_pyyaml_has_it():
    assert yamlfile.LOADER is getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@pytest.mark.parametrize("name", GOOD)
def test_good_documents_read_the_same_with_either_parser(name, loader):
    data, lines = yamlfile.loads(GOOD[name], "f.yaml")
    assert data == yaml.safe_load(GOOD[name])
    assert (data, lines) == _with(yaml.SafeLoader, GOOD[name])


@pytest.mark.parametrize("name", BAD)
def test_bad_documents_are_refused_at_the_same_line_with_either_parser(name, loader):
    text, line = BAD[name]
    with pytest.raises(UsageError) as e:
        yamlfile.loads(text, "f.yaml")
    assert str(e.value).startswith(f"f.yaml:{line}: ") and "\n" not in str(e.value)


def _with(parser, text):
    saved, yamlfile.LOADER = yamlfile.LOADER, parser
    try:
        return yamlfile.loads(text, "f.yaml")
    finally:
        yamlfile.LOADER = saved
