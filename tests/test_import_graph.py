"""The import graph: arrows run one way (docs/architecture.md).

Every import statement of pldsl/, interpreter/ and kernels/ is read from the source (lazy imports
inside functions included) and resolved to a module of the installed layout (interpreter/ is
`pldsl.interpreter`, kernels/ is `pldsl.kernels`). The command-line modules are in the graph
too: the top floor (`pldsl/cli.py`, `cli_run.py`, `cli_emit.py`, `pldsl/pypto/cli.py`) imports
downwards only, and `pldsl.cli` names the commands it dispatches to (the kernels' demo among
them) as strings, imported when that command runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"pldsl": "pldsl", "interpreter": "pldsl.interpreter", "kernels": "pldsl.kernels"}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, prefix in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([prefix, *parts])] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The longest known module that `name` names or lies in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _import_nodes(tree: ast.AST):
    """Every import statement, those under `if TYPE_CHECKING:` excepted (annotations only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            # the else branch runs: its own import statements count too, not only nested ones
            yield from _import_nodes(ast.Module(body=node.orelse, type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _import_nodes(node)


def _imports(module: str, path: Path) -> set[str]:
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    out = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for n in names:
            target = _resolve(n)
            if target is not None and target != module:
                out.add(target)
    return out


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def _unit(module: str) -> str:
    """A module's package (top-level pldsl modules are units of their own)."""
    path = MODULES[module]
    if path.name == "__init__.py":
        return module
    parent = module.rpartition(".")[0]
    return module if parent == "pldsl" else parent


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of a directed graph, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_graph_is_read():
    assert "pldsl.execution.arguments" in GRAPH["pldsl.interpreter.machine"]
    assert "pldsl.ir.nodes" in GRAPH["pldsl.ops.table"]


def test_no_circles_between_packages():
    """Acyclic between packages, so any module cycle stays inside one package (the frontend's
    capture <-> body recursion is one)."""
    units: dict[str, set[str]] = {}
    for m, targets in GRAPH.items():
        u = _unit(m)
        units.setdefault(u, set()).update(_unit(t) for t in targets if _unit(t) != u)
    # `import pldsl` (the `pl` surface) sits above everything in the library but the kernels
    units.pop("pldsl", None)
    for targets in units.values():
        targets.discard("pldsl")
    assert _cycle(units) is None, " -> ".join(_cycle(units))


def _reaches(src_prefix: str, dst_prefix: str) -> list[tuple[str, str]]:
    return sorted(
        (m, t)
        for m, targets in GRAPH.items()
        if m == src_prefix or m.startswith(src_prefix + ".")
        for t in targets
        if t == dst_prefix or t.startswith(dst_prefix + ".")
    )


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        ("pldsl.backends", "pldsl.interpreter"),  # siblings over pldsl.execution
        ("pldsl.interpreter", "pldsl.backends"),
        ("pldsl.execution", "pldsl.interpreter"),
        ("pldsl.execution", "pldsl.backends"),
        ("pldsl.ir", "pldsl.ops"),  # the op table reads the IR, never the other way round
        ("pldsl.ir", "pldsl.checks"),
        ("pldsl.checks", "pldsl.interpreter"),
        ("pldsl.interpreter", "pldsl.kernels"),
    ],
)
def test_arrows_run_one_way(src, dst):
    assert _reaches(src, dst) == []


def test_nothing_below_the_cli_imports_kernels():
    offenders = [
        (m, t)
        for m, targets in GRAPH.items()
        if not m.startswith("pldsl.kernels")
        for t in targets
        if t.startswith("pldsl.kernels")
    ]
    assert offenders == []
