"""No package cycle in ``idp/`` (issue 13; DESIGN.md "Layout").

The nodes are the subpackages of ``idp/`` (``idp.oidc``, ``idp.login`` ...) and the modules
directly in it (``idp.services``, ``idp.assurance`` ...); an edge is an import anywhere in a
node's files, at run time or for type checking. The app factory (``idp.app``) and the CLI
import every blueprint, so nothing may import them, and a cycle through them shows too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IDP = ROOT / "idp"


def node_of(module: str) -> str | None:
    """``idp.oidc.tokens`` -> ``idp.oidc``; ``idp.services`` -> ``idp.services``."""
    parts = module.split(".")
    if parts[0] != "idp" or len(parts) < 2:
        return None
    return f"idp.{parts[1]}"


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for n in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(n, ast.Import):
            found.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            found.add(n.module)
            if n.module == "idp":  # from idp import assurance, clock
                found.update(f"idp.{a.name}" for a in n.names)
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in IDP.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        if "migrations" in rel.parts or rel.parts == ("idp", "__init__"):
            continue
        source = node_of(".".join(rel.parts))
        assert source is not None
        for module in imports_of(path):
            target = node_of(module)
            if target is not None and target != source:
                edges.setdefault(source, set()).add(target)
    return edges


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def test_no_package_cycle_in_idp() -> None:
    edges = graph()
    assert len(edges) > 10, "the import graph is too small: the scan missed files"
    assert cycles(edges) == []


def test_the_check_sees_a_cycle() -> None:
    edges = {"idp.services": {"idp.oidc"}, "idp.oidc": {"idp.tenancy"},
             "idp.tenancy": {"idp.services"}, "idp.app": {"idp.oidc"}}  # fmt: skip
    assert cycles(edges) == [["idp.oidc", "idp.services", "idp.tenancy"]]
