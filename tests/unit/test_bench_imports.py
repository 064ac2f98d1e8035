"""bench/ never imports the tests (issue 13): what both need lives in testkit/, which imports
neither of them."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, dotted, as written."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def importers_of(folder: str, banned: set[str], root: Path = ROOT) -> dict[str, list[str]]:
    """The files under ``folder`` that import a module of a ``banned`` package, and those."""
    files = sorted((root / folder).rglob("*.py"))
    assert files, f"{folder}/ has no modules"
    found = {
        str(f.relative_to(root)): sorted(
            m for m in imported_modules(f) if m.split(".")[0] in banned
        )
        for f in files
    }
    return {k: v for k, v in found.items() if v}


def test_bench_does_not_import_the_tests() -> None:
    assert importers_of("bench", {"tests"}) == {}


def test_testkit_imports_neither_the_tests_nor_bench() -> None:
    assert importers_of("testkit", {"tests", "bench"}) == {}


@pytest.mark.parametrize(
    "source",
    ["from tests.servers import free_port\n", "import tests.html\n", "from tests import servers\n"],
)
def test_the_check_sees_an_import_of_the_tests(tmp_path: Path, source: str) -> None:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "ok.py").write_text("from testkit.servers import free_port\n")
    (tmp_path / "bench" / "bad.py").write_text(source)
    found = importers_of("bench", {"tests"}, tmp_path)
    assert list(found) == ["bench/bad.py"]
