"""The package's layers: no import circle, and no module imports a layer above its own."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lth"

# Low to high: a module may import its own layer and the layers before it, never one after it.
LAYERS = [
    {"lth", "lth.paths", "lth.schema", "lth.validate"},
    {"lth.data", "lth.store", "lth.checks"},
    {"lth.nets"},
    {"lth.train"},
    {"lth.prune"},
    {"lth.experiments"},
    {"lth.config"},
    {"lth.results", "lth.tickets"},
    {"lth.notebook"},
    {"lth.report", "lth.sweep"},
    {"lth.cli", "lth.__main__"},
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """lth modules that ``path`` imports, anywhere in the file (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lth")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lth") and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _layer(module: str) -> int:
    for index, layer in enumerate(LAYERS):
        if any(module == top or module.startswith(top + ".") for top in layer if top != "lth") or module == "lth":
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")


def test_every_module_belongs_to_a_layer():
    for module in import_graph():
        _layer(module)


def test_no_module_imports_a_higher_layer():
    upward = [f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
              for a, targets in import_graph().items() for b in targets if _layer(b) > _layer(a)]
    assert not upward, "\n".join(upward)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles found by a depth-first walk of ``graph``."""
    state, found = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_circle():
    found = circles(import_graph())
    assert not found, "\n".join(" -> ".join(c) for c in found)


def test_the_circle_finder_finds_circles():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_gin_is_imported_by_config_only():
    users = sorted(name for name, path in ((_module_name(p), p) for p in PACKAGE.rglob("*.py"))
                   if any(isinstance(n, (ast.Import, ast.ImportFrom)) and
                          ("gin" in [a.name.split(".")[0] for a in n.names] if isinstance(n, ast.Import)
                           else (n.module or "").split(".")[0] == "gin")
                          for n in ast.walk(ast.parse(path.read_text()))))
    assert users == ["lth.config"], users


def test_no_module_is_much_over_400_lines():
    long = {_module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450}
    assert not long, long
