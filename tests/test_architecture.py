"""The shape of the package: imports between the parts of `exporter/` run one way."""

import ast
import os

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "exporter")


def part_of(module):
    """`exporter.gpu.nvml` -> `gpu`; `exporter.web` -> `web`; the root package itself -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "exporter" else None


def imports_between_parts(root=PACKAGE):
    """{part: {part it imports, ...}} from every import statement, module level or inside a
    function (a lazy import is a dependency all the same)."""
    edges = {}
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, os.path.dirname(root))[:-3].replace(os.sep, ".")
            here = part_of(rel.removesuffix(".__init__"))
            if here is None:
                continue
            for node in ast.walk(ast.parse(open(path).read(), path)):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                for target in names:
                    there = part_of(target)
                    if there and there != here and (os.path.isdir(os.path.join(root, there))
                                                    or os.path.isfile(os.path.join(root, f"{there}.py"))):
                        edges.setdefault(here, set()).add(there)
    return edges


def find_cycle(edges):
    """One cycle as a list of parts [a, b, ..., a], or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_between_parts_of_exporter():
    cycle = find_cycle(imports_between_parts())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_sees_a_cycle(tmp_path):
    pkg = tmp_path / "exporter"
    for part, imports in {"gpu": "from exporter.routing import memory\n",
                          "routing": "def f():\n    from exporter.gpu.health import health\n",
                          "common": ""}.items():
        (pkg / part).mkdir(parents=True)
        (pkg / part / "__init__.py").write_text("")
        (pkg / part / "mod.py").write_text(imports)
    edges = imports_between_parts(str(pkg))
    assert edges == {"gpu": {"routing"}, "routing": {"gpu"}}
    assert find_cycle(edges) in (["gpu", "routing", "gpu"], ["routing", "gpu", "routing"])


def test_gpu_and_routing_use_the_common_helpers_not_each_other():
    edges = imports_between_parts()
    assert "routing" not in edges.get("gpu", set())
    assert "common" in edges.get("gpu", set()) and "common" in edges.get("routing", set())
    assert edges.get("common", set()) == set()
