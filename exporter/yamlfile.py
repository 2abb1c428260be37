"""Load YAML keeping the line of every mapping key and sequence item, so messages can say FILE:LINE."""

from typing import Any

import yaml

from exporter.errors import UsageError


def load(path: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """(data, lines) where lines maps a key path tuple such as ("models", 2, "memory") to a 1-based line."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return loads(text, path)


def loads(text: str, path: str = "<string>") -> tuple[Any, dict[tuple[Any, ...], int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        raise UsageError(f"{path}:{line}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is None:
        return None, lines
    return _build(node, (), lines, path, yaml.SafeLoader("")), lines


def _build(node: yaml.Node, at: tuple[Any, ...], lines: dict[tuple[Any, ...], int], path: str,
           scalars: yaml.SafeLoader) -> Any:
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
    return scalars.construct_object(node)
