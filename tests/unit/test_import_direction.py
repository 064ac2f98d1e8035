"""DESIGN.md: idp -> flows -> factors. flows/ and factors/ import no web, database or cache code."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"flask", "werkzeug", "sqlalchemy", "redis", "alembic", "psycopg", "idp", "flask_login"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", ["flows", "factors"])
def test_pure_packages_import_nothing_from_the_outer_layers(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    banned = FORBIDDEN | ({"flows"} if package == "factors" else set())
    offenders = {str(f.relative_to(ROOT)): sorted(imported_roots(f) & banned) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from flask import request\nimport sqlalchemy.orm\n")
    assert imported_roots(bad) == {"flask", "sqlalchemy"}
