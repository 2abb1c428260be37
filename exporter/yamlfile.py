"""Load orchex's YAML files (registry, serve config, fleet, web config) safely, keeping the line of
every mapping key and sequence item so that messages can say FILE:LINE.

Plain YAML only: our files have no use for tags (`!size`, `!!python/name:...`), anchors and aliases
(`&a`, `*a`, the way to write a billion-laughs bomb) or merge keys (`<<`), so each is refused with its
line before anything is built. A file must be a regular file of at most MAX_BYTES, nested at most
MAX_DEPTH deep; both are checked before the document is composed (composing is recursive)."""

from typing import Any

import yaml

from exporter.errors import UsageError
from exporter.inputfile import read_regular

# libyaml's parser where PyYAML was built with it (its wheels are), else PyYAML's own: 5x faster.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_BYTES = 4 << 20
MAX_DEPTH = 64
Lines = dict[tuple[Any, ...], int]  # key path such as ("models", 2, "memory") -> 1-based line


def load(path: str) -> tuple[Any, Lines]:
    """(data, lines) of the YAML file at `path`; UsageError naming the file and line otherwise."""
    data = read_regular(path, MAX_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return loads(text, path)


def loads(text: str, path: str = "<string>") -> tuple[Any, Lines]:
    _check_events(text, path)
    try:
        node = yaml.compose(text, Loader=LOADER)
    except yaml.YAMLError as e:
        raise UsageError(f"{path}:{_line(e)}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
    lines: Lines = {}
    if node is None:
        return None, lines
    return _build(node, (), lines, path, yaml.SafeLoader("")), lines


def _line(e: yaml.YAMLError) -> int:
    mark = getattr(e, "problem_mark", None)
    return mark.line + 1 if mark else 0


def _check_events(text: str, path: str) -> None:
    """Refuse what plain YAML does not need, by its line, from the parser's event stream (which is
    not recursive, so 10,000 nested brackets are an error here, not a RecursionError later)."""
    open_: list[list[int]] = []  # per open collection: [1 if a mapping else 0, items seen]

    def next_is_key() -> bool:
        if not open_:
            return False
        open_[-1][1] += 1
        return open_[-1][0] == 1 and open_[-1][1] % 2 == 1

    try:
        for event in yaml.parse(text, Loader=LOADER):
            line = event.start_mark.line + 1 if event.start_mark else 0
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise UsageError(f"{path}:{line}: anchors and aliases (&name, *name) are not allowed")
            tag, implicit = getattr(event, "tag", None), getattr(event, "implicit", True)
            if tag is not None and implicit in (False, (False, False)):
                raise UsageError(f"{path}:{line}: tags ({tag}) are not allowed")
            if isinstance(event, yaml.ScalarEvent):
                if next_is_key() and event.value == "<<" and not event.style:  # plain: None, or "" from libyaml
                    raise UsageError(f"{path}:{line}: merge keys (<<) are not allowed")
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                next_is_key()
                open_.append([1 if isinstance(event, yaml.MappingStartEvent) else 0, 0])
                if len(open_) > MAX_DEPTH:
                    raise UsageError(f"{path}:{line}: nested more than {MAX_DEPTH} levels deep")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                open_.pop()
    except yaml.YAMLError as e:
        raise UsageError(f"{path}:{_line(e)}: invalid YAML: {getattr(e, 'problem', None) or e}") from None


def _build(node: yaml.Node, at: tuple[Any, ...], lines: Lines, path: str, scalars: yaml.SafeLoader) -> Any:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for k, v in node.value:
            key = scalars.construct_object(k) if isinstance(k, yaml.ScalarNode) else None
            if not isinstance(key, (str, int, float, bool)):
                raise UsageError(f"{path}:{k.start_mark.line + 1}: mapping keys must be plain values")
            if key in out:
                raise UsageError(f"{path}:{k.start_mark.line + 1}: duplicate key {key!r}")
            out[key] = _build(v, at + (key,), lines, path, scalars)
            lines[at + (key,)] = k.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(v, at + (i,), lines, path, scalars) for i, v in enumerate(node.value)]
    try:
        return scalars.construct_object(node)
    except (yaml.YAMLError, ValueError, OverflowError) as e:  # a timestamp like 2026-13-45
        raise UsageError(f"{path}:{node.start_mark.line + 1}: invalid value {node.value!r}: {e}") from None
