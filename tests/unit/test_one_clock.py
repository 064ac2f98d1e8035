"""``idp/`` reads the wall clock in one module, and the tests do not sleep (issue 13;
DESIGN.md "Time"): a test moves a settable clock (``tests.conftest.later``, or
``testkit.servers.ServerClock`` for a live server) instead."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLOCK_READS = {
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("time", "perf_counter"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
}
LONGEST_SLEEP = 0.2  # seconds; longer waits are a server's start-up, polled in short steps


def calls(path: Path) -> list[tuple[str, str, ast.Call]]:
    """``(owner, name, call)`` for each ``owner.name(...)`` call, e.g. ``time.time()``."""
    out = []
    for n in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            owner = n.func.value
            label = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            out.append((label, n.func.attr, n))
    return out


def clock_reads(path: Path) -> list[str]:
    """Calls such as ``time.time()``, and imports such as ``from time import time`` (whose
    calls would not name the module)."""
    found = [f"{o}.{a}()" for o, a, _ in calls(path) if (o, a) in CLOCK_READS]
    for n in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(n, ast.ImportFrom) and n.module in ("time", "datetime"):
            found += [f"from {n.module} import {a.name}" for a in n.names
                      if (n.module, a.name) in CLOCK_READS]  # fmt: skip
    return found


def long_sleeps(path: Path) -> list[float]:
    out = []
    for owner, name, call in calls(path):
        if (owner, name) == ("time", "sleep") and call.args:
            arg = call.args[0]
            if not isinstance(arg, ast.Constant) or not isinstance(arg.value, int | float):
                out.append(float("inf"))  # a computed wait: not allowed either
            elif arg.value > LONGEST_SLEEP:
                out.append(float(arg.value))
    return out


def test_idp_reads_the_clock_only_in_idp_clock() -> None:
    found = {
        str(p.relative_to(ROOT)): clock_reads(p)
        for p in sorted((ROOT / "idp").rglob("*.py"))
        if p != ROOT / "idp" / "clock.py" and "migrations" not in p.parts
    }
    assert {k: v for k, v in found.items() if v} == {}
    assert clock_reads(ROOT / "idp" / "clock.py")  # the one module does


def test_tests_do_not_sleep() -> None:
    files = sorted([*(ROOT / "tests").rglob("*.py"), *(ROOT / "testkit").rglob("*.py")])
    found = {
        str(p.relative_to(ROOT)): long_sleeps(p) for p in files if "node_modules" not in p.parts
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_the_checks_see_a_clock_read_and_a_sleep(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import time, datetime as dt\nfrom time import monotonic\n"
        "t = int(time.time())\nd = dt.datetime.now(dt.UTC)\n"
        "time.sleep(1.1)\ntime.sleep(0.05)\ntime.sleep(delay)\n"
    )
    assert sorted(clock_reads(bad)) == [
        "datetime.now()",
        "from time import monotonic",
        "time.time()",
    ]
    assert sorted(long_sleeps(bad)) == [1.1, float("inf")]
