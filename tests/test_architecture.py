"""The dependency rules of ARCHITECTURE.md, checked on the source: arrows, no circles, no private imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "multiscale"

#: which rooms a room may import (besides itself and the shared bottom: image, errors, _util)
ALLOWED = {
    "cli": {"pipeline", "io", "viewer", "analysis", "registration"},
    "pipeline": {"io", "registration", "analysis", "stats"},
    "stats": {"analysis"},
    "registration": set(),
    "analysis": set(),
    "io": set(),
    "viewer": {"io"},
}
BOTTOM = {"image", "errors", "_util", "__init__"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names imported, line) for every import of a project module in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] == "multiscale":
                out.append((mod, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "multiscale":
                    out.append((a.name, [], node.lineno))
    return out


SOURCES = sorted(ROOT.rglob("*.py"))


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_arrows_go_one_way():
    bad = []
    for path in SOURCES:
        here = _module_name(path)
        room = _room(here)
        if room in BOTTOM:
            allowed = {"errors", "_util", "image"} if room != "errors" else set()
        else:
            allowed = ALLOWED.get(room, set()) | BOTTOM | {room}
        for mod, names, line in _imports(path):
            target = _room(mod)
            if target == "__init__" and names:  # "from multiscale import io" names a room
                targets = {n for n in names}
            else:
                targets = {target}
            for t in targets:
                if t not in allowed and t != room:
                    bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {room} imports {t}")
    assert not bad, "\n".join(bad)


def test_no_module_imports_a_private_name_from_another_module():
    bad = []
    for path in SOURCES:
        for mod, names, line in _imports(path):
            for n in names:
                if n.startswith("_") and not n.startswith("__"):
                    bad.append(f"{path.relative_to(ROOT.parent)}:{line}: imports {n} from {mod}")
    assert not bad, "\n".join(bad)


def test_no_import_circles():
    """No two modules import each other (directly or through a longer cycle), at any level of the file."""
    modules = {_module_name(p): p for p in SOURCES}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for mod, names, _ in _imports(path):
            for cand in [f"{mod}.{n}" for n in names] + [mod]:
                if cand in modules and cand != name:
                    deps.add(cand)
                    break
        graph[name] = deps
    # packages' __init__ re-export their children lazily; an edge parent -> child is not a circle
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in graph.get(n, ()):
            if d.startswith(n + "."):
                continue
            if state.get(d) == 1:
                cyc = stack[stack.index(d):] + [d]
                if not all(b.startswith(a + ".") or a.startswith(b + ".") for a, b in zip(cyc, cyc[1:])):
                    cycles.append(" -> ".join(cyc))
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("room", ["analysis", "io"])
def test_rooms_import_without_the_pipeline(room):
    import subprocess
    import sys

    code = (f"import sys, multiscale.{room}; import multiscale.{room} as r; "
            f"[__import__(m) for m in list(sys.modules) if m.startswith('multiscale.{room}.')]; "
            "bad = [m for m in sys.modules if m.startswith(('multiscale.pipeline', 'multiscale.cli'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
