"""The package's shape: no import circles (function-level imports count too), so each room can be read
and changed on its own (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import gankit

SRC = Path(gankit.__file__).parent


def _modules() -> dict[str, Path]:
    mods = {}
    for p in SRC.rglob("*.py"):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        package = m if p.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for n in names:
                while n and n not in mods:
                    n = n.rpartition(".")[0]
                # a package's own __init__ is not an edge for its submodules (importing gankit.x runs gankit)
                if n and n != m and not m.startswith(n + ".") and n != "gankit":
                    graph[m].add(n)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                circles.append(path[path.index(n) :] + [n])
            elif n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return circles


def test_no_import_circle_in_the_package() -> None:
    assert _circles(_imports(_modules())) == []


def test_the_check_finds_a_circle(tmp_path: Path, monkeypatch) -> None:
    """The circle check itself can fail: two modules importing each other are found."""
    pkg = tmp_path / "gankit"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from gankit import b\n")
    (pkg / "b.py").write_text("from gankit.a import f\n")
    monkeypatch.setattr(gankit, "__file__", str(pkg / "__init__.py"))
    monkeypatch.setattr(__import__(__name__), "SRC", pkg)
    graph = _imports(_modules())
    assert graph["gankit.a"] == {"gankit.b"} and graph["gankit.b"] == {"gankit.a"}
    assert _circles(graph) == [["gankit.a", "gankit.b", "gankit.a"]]
