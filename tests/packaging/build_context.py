"""The Docker build context as .dockerignore allows it: the paths the wheel is built from.

.dockerignore is an allowlist: ``*``, then one ``!path`` line per path the build stage needs,
then the caches left out of those paths. test_wheel builds its wheel from a copy of exactly
that, so a file the wheel needs but the context leaves out fails the suite, not someone's
``docker build``; test_dockerfile checks that the file keeps this shape.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from testkit.servers import ROOT

DOCKERIGNORE = ROOT / ".dockerignore"
# Names left out of the copied directories, as the closing ``**/<name>`` patterns leave them out
# of the context.
LEFT_OUT = ("__pycache__", "*.pyc", ".ruff_cache")


def patterns() -> list[str]:
    """The .dockerignore patterns, in order, without comments and blank lines."""
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def allowed() -> list[str]:
    """The paths the context lets in (the ``!`` lines), relative to the checkout."""
    return [pattern[1:] for pattern in patterns() if pattern.startswith("!")]


def copy_context(dest: Path) -> Path:
    """Copy the build context into ``dest`` (which must not exist) and return it."""
    dest.mkdir()
    for name in allowed():
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns(*LEFT_OUT))
        else:
            shutil.copy2(source, dest / name)
    return dest
