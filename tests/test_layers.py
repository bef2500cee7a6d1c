"""The package's layers, read from its source: imports run down the layers, never in a loop, never to a private name.

The layers, bottom to top: ``metrics`` -> ``data`` -> ``features`` and ``models`` -> ``results`` and
``prediction_maps`` (storage) -> ``runs`` -> ``report`` -> ``chain``. A module may import from its own layer or one
below. Function-local imports count like module-level ones: a local import that closes a loop only hides it. Imports
under ``if __name__ == "__main__":`` do not count: they run only when the file is a script (``python -m ...``), where it
is not the package's module, so they close no loop.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "helpers"

#: Rank of each top-level part of the package (a module may import from the same rank or lower).
RANKS = {
    "metrics": 0,
    "data": 1,
    "features": 2,
    "models": 2,
    "results": 3,
    "prediction_maps": 3,
    "runs": 4,
    "report": 5,
    "chain": 6,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _is_main_block(node: ast.AST) -> bool:
    """``if __name__ == "__main__":``."""
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in node.test.comparators)
    )


def _nodes(path: Path) -> list[ast.AST]:
    """Every node of the file but those under a top-level ``if __name__ == "__main__":``."""
    tree = ast.parse(path.read_text())
    tree.body = [node for node in tree.body if not _is_main_block(node)]
    return list(ast.walk(tree))


def _imports(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for every import of a ``helpers`` module in ``path``."""
    is_package = path.name == "__init__.py"
    out = []
    for node in _nodes(path):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.startswith("helpers")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_package else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            if not base.startswith("helpers"):
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.append((full, None, node.lineno) if full in MODULES else (base, alias.name, node.lineno))
    return out


def _module_aliases(path: Path) -> dict[str, str]:
    """Local names bound to ``helpers`` modules by the file's imports (``from helpers.runs import train as T``)."""
    aliases = {}
    for node in _nodes(path):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers"):
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES and alias.asname:
                    aliases[alias.asname] = alias.name
    return aliases


def _rank(module: str) -> int:
    parts = module.split(".")
    return -1 if len(parts) == 1 else RANKS[parts[1]]


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, _, _ in _imports(name, path):
            if module in MODULES and module not in (name, "helpers"):
                graph[name].add(module)
    return graph


def _loops(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_part_of_the_package_has_a_layer():
    assert {name.split(".")[1] for name in MODULES if "." in name} <= set(RANKS)


def test_imports_never_reach_a_higher_layer():
    upward = [
        f"{name}:{line} imports {module} ({_rank(name)} -> {_rank(module)})"
        for name, path in MODULES.items()
        for module, _, line in _imports(name, path)
        if name != "helpers" and _rank(module) > _rank(name)
    ]
    assert upward == []


def test_no_import_loops():
    assert _loops(_graph()) == []


def test_no_private_name_is_used_across_modules():
    used = []
    for name, path in MODULES.items():
        for module, imported, line in _imports(name, path):
            if imported and imported.startswith("_") and not imported.startswith("__"):
                used.append(f"{name}:{line} imports {module}.{imported}")
        aliases = _module_aliases(path)
        for node in _nodes(path):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and aliases[node.value.id] != name
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                used.append(f"{name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert used == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from helpers.runs import train\n", "upward"),
        ("from helpers.data import datasets\n", None),
    ],
)
def test_the_layer_check_sees_an_upward_import(tmp_path, source, expected):
    """The check itself: a models-layer file importing the run layer is flagged; one importing data is not."""
    path = tmp_path / "cnn.py"
    path.write_text(source)
    (module, _, _) = _imports("helpers.models.cnn", path)[0]
    assert (_rank(module) > _rank("helpers.models.cnn")) == (expected == "upward")


def test_a_script_block_import_is_not_an_edge(tmp_path):
    """``python -m`` entry points may import the command line above them; the module's own imports still count."""
    path = tmp_path / "generic.py"
    path.write_text(
        'from helpers.data import io\nif __name__ == "__main__":\n    from helpers.data import check\n'
    )
    assert [module for module, _, _ in _imports("helpers.data.generic", path)] == ["helpers.data.io"]


def test_the_loop_check_finds_a_loop():
    assert _loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


# ---------------------------------------------------------------------------------------------- sizes
#: Longest function body, in code lines (no docstring, blank or comment lines), and longest module, in lines, that
#: need no word in the README (its Development section argues every longer module as one unit).
MAX_FUNCTION_LINES = 85
MAX_MODULE_LINES = 600
README = PACKAGE.parent / "README.md"


def _code_lines(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Code lines of a function's body, from its first statement after the docstring."""
    body = node.body
    doc = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    doc = doc and isinstance(body[0].value.value, str)
    first = body[1] if doc and len(body) > 1 else body[0]
    span = range(body[0].lineno, body[0].end_lineno + 1) if doc else range(0)
    return sum(
        1
        for i in range(first.lineno, node.end_lineno + 1)
        if i not in span and lines[i - 1].strip() and not lines[i - 1].strip().startswith("#")
    )


def _long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    text = path.read_text()
    lines = text.splitlines()
    sizes = {
        node: _code_lines(lines, node)
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    return [f"{path.name}:{node.name} ({n} code lines)" for node, n in sizes.items() if n > limit]


def test_no_function_is_longer_than_the_limit():
    long = [f for path in MODULES.values() for f in _long_functions(path)]
    assert long == [], "split these functions (one job each):\n" + "\n".join(long)


def _argued_sizes(readme: str) -> dict[str, int]:
    """``{module path: lines}`` named in the README's "Module sizes" paragraph (`` `data/chips.py` (635) ``)."""
    start = readme.index("**Module sizes.**")
    text = readme[start : readme.index("\n**", start + 1)]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"`([\w/]+\.py)` \((\d+)(?: lines)?\)", text)}


def test_every_long_module_is_argued_in_the_readme_with_its_length():
    argued = _argued_sizes(README.read_text())
    lengths = {
        str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in MODULES.values()
    }
    long = {m: n for m, n in lengths.items() if n > MAX_MODULE_LINES}
    assert {m: n for m, n in long.items() if argued.get(m) != n} == {}, "README 'Module sizes' is out of date"
    assert set(argued) <= set(long), "the README argues a module that is no longer long"


def test_the_size_checks_see_a_long_function_and_read_the_readme(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    '''Doc.'''\n" + "    x = 1\n" * 90 + "\ndef g():\n    return 1\n")
    assert _long_functions(path) == ["m.py:f (90 code lines)"]
    readme = "**Module sizes.** x\n- `data/chips.py` (635): y; `runs/x.py` (700 lines): z\n\n**Next.** w\n"
    assert _argued_sizes(readme) == {"data/chips.py": 635, "runs/x.py": 700}
