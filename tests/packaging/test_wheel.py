"""The wheel carries everything Stepwise reads at run time, and runs outside the checkout.

The wheel is built from the Docker build context (.dockerignore) and installed into a fresh
venv; ``idp init``, ``idp tenant create`` and ``idp serve`` then run from an unrelated directory.

The fresh venv downloads nothing (slow, and the network is not the suite's). It sees links to the
distributions already installed here that the wheel's own requirements name, followed
transitively, in a directory that a .pth file lists: so an import of a package the wheel does not
declare fails here. The checkout's editable install is not among them: its .pth file lives in the
main venv's site-packages, which the fresh venv never sees (and .pth files are only read in site
directories, not in directories that a .pth file lists).
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from testkit.servers import ROOT, end_server, free_port, idp_env, wait_for_port
from tests.packaging.build_context import LEFT_OUT, allowed, copy_context

TIMEOUT = 120
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
# Files of the packages that are not meant for the wheel: lint settings of some subpackages.
NOT_PACKAGED = {"ruff.toml"}
# What the app reads from the package at run time; each must be in the wheel and not be empty.
PACKAGE_DATA = (
    "idp/templates/**/*.html",
    "idp/static/*",
    "idp/config/defaults.toml",
    "idp/config/granian.toml",
    "idp/config/example.env",
    "idp/store/migrations/script.py.mako",
    "idp/store/migrations/versions/*.py",
    "factors/data/*.bin",
    "demo/templates/*.html",
)


def _clean(env: dict[str, str]) -> dict[str, str]:
    """``env`` without what would let Python find the checkout by another way."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    return {k: v for k, v in env.items() if k not in drop}


def _run(
    args: list[str | Path], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, f"{args[:3]} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _build_wheel(source: Path, out: Path) -> Path:
    """The wheel, built without build isolation (with this venv's setuptools: no download)."""
    build = ["wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", out, source]
    _run([*PIP, *build], _clean(dict(os.environ)))
    (built,) = out.glob("stepwise-*.whl")
    return built


def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as whl:
        (name,) = (n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(whl.read(name).decode())
    return metadata.get_all("Requires-Dist") or []


def _installed_closure(requirements: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions that ``requirements`` (no extra) name, with theirs, and so on;
    each installed version must satisfy the requirement."""

    def wanted(req: Requirement, extras: set[str]) -> bool:
        return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in {"", *extras})

    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [r for r in map(Requirement, requirements) if wanted(r, set())]
    while pending:
        req = pending.pop()
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"the wheel requires {req}, which is not installed: scripts/bootstrap")
        assert req.specifier.contains(dist.version, prereleases=True), (
            f"the wheel requires {req}; {dist.version} is installed"
        )
        key = f"{canonicalize_name(req.name)}{sorted(req.extras)}"
        if key not in found:
            found[key] = dist
            pending += [r for r in map(Requirement, dist.requires or []) if wanted(r, req.extras)]
    return list(found.values())


def _link_distributions(dists: list[importlib.metadata.Distribution], into: Path) -> None:
    """Symlink every top-level entry (package, module, .dist-info, bundled libraries) of
    ``dists`` into ``into``."""
    into.mkdir()
    for dist in dists:
        assert dist.files is not None, f"{dist.metadata['Name']} has no RECORD"
        for top in {f.parts[0] for f in dist.files} - {"..", "__pycache__"}:
            link = into / top
            if not link.exists():  # namespace packages share a top-level directory
                link.symlink_to(Path(str(dist.locate_file(top))))


def _fresh_venv(wheel: Path, home: Path) -> Path:
    """A fresh venv with the wheel, and the installed runtime dependencies visible."""
    venv, env = home / "venv", _clean(dict(os.environ))
    _run([sys.executable, "-m", "venv", "--without-pip", venv], env)
    python = venv / "bin" / "python"
    # The wheel goes in before the dependencies are visible: pip then sees no other stepwise.
    _run([*PIP, "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], env)
    deps = home / "deps"
    _link_distributions(_installed_closure(_requirements(wheel)), deps)
    purelib = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], env
    ).stdout.strip()
    (Path(purelib) / "stepwise-test-dependencies.pth").write_text(f"{deps}\n")
    return venv


def _check_contents(wheel: Path, source: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
    for pattern in PACKAGE_DATA:
        assert any(Path(n).match(pattern) for n in names), f"no {pattern} in the wheel"
    packages = [source / name for name in allowed() if (source / name / "__init__.py").exists()]
    assert {p.name for p in packages} >= {"idp", "flows", "factors", "demo", "stepwise_rs"}
    on_disk = {
        path.relative_to(source).as_posix()
        for package in packages
        for path in package.rglob("*")
        if path.is_file() and path.name not in NOT_PACKAGED
    }
    missing = sorted(on_disk - names)
    assert not missing, f"the wheel lacks {len(missing)} files, e.g. {missing[:10]}"
    assert not [n for n in names if any(Path(n).match(p) for p in LEFT_OUT)]


def _check_imports(venv: Path, elsewhere: Path) -> None:
    """The venv's Python imports Stepwise from the venv, and nothing from the checkout."""
    probe = (
        "import importlib.util, json, sys, demo, factors, flows, idp, stepwise_rs\n"
        "print(json.dumps({'files': [m.__file__ for m in (demo, factors, flows, idp, stepwise_rs)],"
        " 'path': sys.path, 'testkit': importlib.util.find_spec('testkit') is not None}))"
    )
    out = _run([venv / "bin" / "python", "-c", probe], _clean(dict(os.environ)), elsewhere)
    seen = json.loads(out.stdout)
    for file in seen["files"]:
        assert Path(file).is_relative_to(venv), f"{file} is not the installed copy"
    assert str(ROOT) not in seen["path"], "the checkout is on the fresh venv's sys.path"
    assert not seen["testkit"], "the checkout's modules are importable from the fresh venv"


@contextmanager
def _serving(venv: Path, elsewhere: Path) -> Iterator[str]:
    """``idp init``, ``idp tenant create`` and ``idp serve`` from the venv, in ``elsewhere``,
    with the default, relative instance path; yields the base URL."""
    env = _clean(idp_env(Path("unused")))
    del env["IDP_INSTANCE_PATH"]  # the default, "instance", under the working directory
    port = free_port()
    env["IDP_BASE_URL"] = f"http://127.0.0.1:{port}"
    idp = venv / "bin" / "idp"
    _run([idp, "init"], env, elsewhere)
    _run([idp, "tenant", "create", "acme"], env, elsewhere)
    assert (elsewhere / "instance" / "stepwise.db").is_file(), "instance/ is not under the CWD"
    log_path = elsewhere / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(idp), "serve", "--port", str(port), "--workers", "1"],
            cwd=elsewhere,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group, to end the workers with it
        )
        try:
            try:
                wait_for_port(port, proc)
            except RuntimeError:
                pytest.fail(f"idp serve did not start:\n{log_path.read_text()[-3000:]}")
            yield f"http://127.0.0.1:{port}"
        finally:
            end_server(proc)


def _check_pages(base: str) -> None:
    """Health, a login page (templates) and the stylesheet it links (static files)."""
    with requests.Session() as http:
        assert http.get(base + "/healthz", timeout=10).status_code == 200
        assert http.get(base + "/readyz", timeout=10).status_code == 200
        page = http.get(base + "/t/acme/login", timeout=10)  # a flow, then its first step
        assert page.status_code == 200
        assert "<h1>Sign in</h1>" in page.text and 'name="username"' in page.text
        stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', page.text)
        assert stylesheet, "the page links no stylesheet"
        css = http.get(base + stylesheet[1], timeout=10)
        assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
        assert css.content == (ROOT / "idp" / "static" / "style.css").read_bytes()


def test_the_wheel_installs_and_runs_outside_the_checkout(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """One test, not one per check: the suite's workers would each build the wheel again."""
    source = copy_context(tmp_path / "src")
    wheel = _build_wheel(source, tmp_path / "dist")
    _check_contents(wheel, source)
    venv = _fresh_venv(wheel, tmp_path)
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # nothing to do with the checkout
    assert ROOT not in elsewhere.parents
    _check_imports(venv, elsewhere)
    with _serving(venv, elsewhere) as base:
        _check_pages(base)
