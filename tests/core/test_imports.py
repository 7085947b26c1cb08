"""Imports of ``prism_kernels``, read with ``ast``: no cycle between its modules, and no module
that knows about the REST layer (request models, pydantic, ``widgets``).

Every import counts, also those inside functions (hiding an import in a function does not break
a cycle, it only hides it); imports under ``if TYPE_CHECKING:`` do not run and are skipped.
"""

from __future__ import annotations

import ast
from pathlib import Path

import prism_kernels

ROOT = Path(prism_kernels.__file__).parent
REST_LIBRARIES = {"pydantic", "widgets", "tornado", "httpx", "fastapi"}
# The one network edge below the REST layer: the LLM provider clients call providers' HTTP APIs
# (an HTTP client, not a server or request-model library).
NETWORK_EDGE = {"prism_kernels.llm.providers": {"httpx"}}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """Absolute names of every module ``path`` imports (type-checking-only imports skipped)."""
    tree = ast.parse(path.read_text(), str(path))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            # ``from pkg import module`` imports the module too
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        graph[name] = {m for m in _imports(path, name) if m in files and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_prism_kernels():
    graph = _graph()
    # A package's __init__ re-exporting its modules is not a cycle of ideas: a module that
    # imports a sibling through the package name is resolved to that sibling.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not (name.startswith(d + ".") and d in graph)}
    assert _cycles(graph) == []


def test_no_prism_kernels_module_knows_the_rest_layer():
    offenders = []
    for path in ROOT.rglob("*.py"):
        name = _module_name(path)
        for m in _imports(path, name):
            top = m.split(".")[0]
            if top in REST_LIBRARIES and top not in NETWORK_EDGE.get(name, ()):
                offenders.append(f"{name}: {m}")
    assert not offenders, offenders
