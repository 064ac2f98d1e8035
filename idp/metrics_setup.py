"""Prometheus multiprocess mode for ``idp serve`` (prometheus_client's "Multiprocess Mode").

Every granian worker is a process of its own; ``/metrics`` is answered by one of them, so
each writes its samples to files in one shared directory (``PROMETHEUS_MULTIPROC_DIR``) and
the one that answers adds them all up (:func:`registry`).

prometheus_client picks where samples go (memory or those files) when it is first imported,
from ``PROMETHEUS_MULTIPROC_DIR``. ``idp serve`` has imported it already when it gets here
(the app's modules import the metrics catalogue), and granian forks its workers from this
process on Linux, so the workers would inherit the in-memory choice: hence the switch in
:func:`_write_samples_to_files`, made before any worker exists. (Where granian spawns its
workers instead, they import afresh and read the variable set here.)

Outside ``idp serve`` (the Flask test app, the CLI, ``idp worker`` alone) the plain
single-process registry is used.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, values

from idp import metrics
from idp.settings import Settings, SettingsError

ENV = "PROMETHEUS_MULTIPROC_DIR"
# The names prometheus_client gives its per-process files (values.MultiProcessValue).
SAMPLE_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")


def prepare_multiprocess_dir(settings: Settings) -> Path:
    """Give the workers about to start one empty directory for their samples.

    An operator's own ``PROMETHEUS_MULTIPROC_DIR`` is used (and emptied: samples of an
    earlier run would be added to this one's); otherwise a private temporary directory,
    removed when ``idp serve`` ends.
    """
    given = os.environ.get(ENV, "")
    if given:
        path = Path(given)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Others able to write there could plant or swap sample files: refuse, as for a
        # symlink, which could point the clean-up below somewhere else.
        if path.is_symlink() or path.stat().st_mode & 0o022:
            raise SettingsError(f"{ENV} must be a directory only its owner can write: {path}")
        for old in path.iterdir():
            if SAMPLE_FILE.fullmatch(old.name):  # prometheus_client's files, nothing else
                old.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="stepwise-metrics-"))
        atexit.register(_remove, path, os.getpid())
        os.environ[ENV] = str(path)
    _write_samples_to_files()
    return path


def _remove(path: Path, owner: int) -> None:
    """Forked workers inherit atexit hooks: only the process that made the directory
    removes it."""
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)


def _write_samples_to_files() -> None:
    """Make every sample from now on go to the shared directory, in this process and in the
    workers it forks (prometheus_client's values reset themselves after a fork)."""
    if getattr(values.ValueClass, "_multiprocess", False):
        return  # imported with the variable already set
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    for metric in metrics.CATALOGUE:
        # Children made so far hold in-memory values: drop them (labelled metrics make new
        # ones on next use) or make the value again (metrics without labels hold one).
        if metric._labelnames:
            with warnings.catch_warnings():  # "not implemented in multiprocess mode": it
                warnings.simplefilter("ignore", UserWarning)  # forgets files, not children
                metric.clear()
        else:
            metric._metric_init()  # type: ignore[no-untyped-call]


def multiprocess_mode() -> bool:
    """Whether this process writes its samples to the shared directory."""
    return bool(os.environ.get(ENV)) and getattr(values.ValueClass, "_multiprocess", False)


def registry() -> CollectorRegistry:
    """What ``/metrics`` exposes: every worker's samples added up in multiprocess mode (read
    afresh per scrape, as prometheus_client asks), else this process's registry."""
    if not multiprocess_mode():
        return REGISTRY
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged
