"""Which WSGI server serves Stepwise fastest: granian (as ``idp serve`` runs it) against others.

Every server runs the same app (``idp.app:create_app``) on the same fresh instance (SQLite,
in-process store, IDP_ENV=development, IDP_LOG_LEVEL=WARNING, no access log, no notification
worker), one process each (plus an idle parent where the server has one) pinned to CPU 0;
wrk, one thread, pinned to CPU 1. All servers are up at once and the rounds alternate: in each
round every case runs against every server in turn (ABAB...). Cases: GET JWKS, GET discovery,
POST client_credentials (basic auth, RS256 JWT) and GET /healthz. Per case and server: the
median req/s of the rounds and its ratio to the reference, p50/p99 (wrk closed loop, so at
saturation), the spread across rounds, the server's CPU (all its processes) and CPU 0 busy
over the run, and requests per second of the server's own CPU time with its ratio: on a
machine where other jobs share CPU 0 that is the steadier figure.

The reference is ``idp serve --workers 1`` itself (granian with idp/config/granian.toml).
Candidates: granian through its Python API with the options of granian.toml and
blocking_threads 1, 2 and 4; gunicorn sync and gthread (4 threads); uWSGI (one process,
--http-socket: one connection per request, as gunicorn sync); bjoern. Missing ones are
installed into this venv with pip (bench only, not a dependency of Stepwise; ``--no-install``
skips them instead). bjoern needs Debian's libev-dev.

Metrics: ``idp serve`` switches prometheus_client to multiprocess mode (one sample file per
metric per process, idp/metrics_setup.py) before granian starts its workers. The other servers
get the same: each one an empty PROMETHEUS_MULTIPROC_DIR of its own in its environment, which
prometheus_client reads when the app first imports it, so every server pays the same cost per
sample and /metrics works as under ``idp serve``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.compare import STATIC_LUA, TENANT, Run, basic, lat, spread, wrk
from bench.login import core_busy, cpu_seconds
from bench.oidc import CALLBACK, PASSWORD
from testkit.servers import end_server, free_port, idp, seed, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
SELF = Path(__file__).resolve()
BIN = Path(sys.executable).parent
GRANIAN_TOML = ROOT / "idp" / "config" / "granian.toml"
REFERENCE = "granian (idp serve)"
CASES = ["jwks", "discovery", "client_credentials", "healthz"]
# pip name of each optional server, and what to do when pip cannot build it.
INSTALL_HINT = {
    "gunicorn": "",
    "uwsgi": " (it compiles: needs gcc and the Python headers)",
    "bjoern": " (needs Debian's libev-dev: apt-get install libev-dev)",
}


@dataclass
class Sample:
    run: Run
    server: float  # the server's CPU time over the run, as a share of one core
    core0: float  # CPU 0 busy over the run, whoever used it

    @property
    def per_cpu_second(self) -> float:
        """Requests per second of the server's own CPU time: what other jobs on CPU 0 do not
        change (as long as the server gets the core at all)."""
        return self.run.rate / self.server if self.server else 0.0


@dataclass
class Candidate:
    name: str
    command: Callable[[int], list[str]]  # its command line, given the port to listen on
    needs: str = ""  # the pip package this candidate comes from, if not Stepwise's own
    proc: subprocess.Popen[bytes] | None = None


def candidates() -> list[Candidate]:
    """Each server, listening on 127.0.0.1 at the port its command is given."""
    py, app = sys.executable, "idp.app:create_app()"

    def idp_serve(port: int) -> list[str]:
        return [str(BIN / "idp"), "serve", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--no-worker"]  # fmt: skip

    def granian(threads: int) -> Callable[[int], list[str]]:
        return lambda port: [py, str(SELF), "--launch", "granian", "--port", str(port),
                             "--threads", str(threads)]  # fmt: skip

    def gunicorn(*extra: str) -> Callable[[int], list[str]]:
        # No --access-logfile: gunicorn writes no access log without one.
        return lambda port: [py, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                             "--workers", "1", "--backlog", "1024", "--log-level", "warning",
                             *extra, app]  # fmt: skip

    def uwsgi(port: int) -> list[str]:
        # --http-socket closes each connection after its answer (as gunicorn sync does), but
        # without saying so: wrk counts each such close as a read error, hence the header.
        # Its keep-alive variant (--http11-socket) lets the one worker hold one connection
        # while the others wait unanswered in the backlog: a fast p50 over starved connections.
        return [
            str(BIN / "uwsgi"), "--http-socket", f"127.0.0.1:{port}", "--virtualenv", sys.prefix,
            "--eval", "from idp.app import create_app\napplication = create_app()",
            "--processes", "1", "--enable-threads", "--listen", "1024", "--need-app",
            "--die-on-term", "--disable-logging", "--single-interpreter",
            "--add-header", "Connection: close",
        ]  # fmt: skip

    def bjoern(port: int) -> list[str]:
        return [py, str(SELF), "--launch", "bjoern", "--port", str(port)]

    return [
        Candidate(REFERENCE, idp_serve),
        *(Candidate(f"granian bt{n}", granian(n)) for n in (1, 2, 4)),
        Candidate("gunicorn sync", gunicorn("--worker-class", "sync"), "gunicorn"),
        Candidate(
            "gunicorn gthread 4",
            gunicorn("--worker-class", "gthread", "--threads", "4"),
            "gunicorn",
        ),
        Candidate("uwsgi", uwsgi, "uwsgi"),
        Candidate("bjoern", bjoern, "bjoern"),
    ]


def launch(kind: str, port: int, threads: int) -> None:
    """Run one server in this process (``--launch``): granian or bjoern."""
    if kind == "granian":
        from granian import Granian
        from granian.constants import Interfaces

        options: dict[str, Any] = tomllib.loads(GRANIAN_TOML.read_text())
        options["blocking_threads"] = threads
        Granian("idp.app:create_app", factory=True, interface=Interfaces.WSGI,
                address="127.0.0.1", port=port, workers=1, **options).serve()  # fmt: skip
    else:
        bjoern = importlib.import_module("bjoern")  # optional, untyped

        from idp.app import create_app

        bjoern.run(create_app(), "127.0.0.1", port)


def installed(package: str) -> bool:
    if package == "uwsgi":
        return (BIN / "uwsgi").exists()
    return importlib.util.find_spec(package) is not None


def ensure(package: str, may_install: bool) -> str:
    """'' when ``package`` can run, else why it is skipped (after trying pip if allowed)."""
    if installed(package):
        return ""
    how = f"{sys.executable} -m pip install {package}{INSTALL_HINT[package]}"
    if not may_install:
        return f"not installed; {how}"
    print(f"installing {package} into this venv (bench only): pip install {package}",
          file=sys.stderr)  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", package],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0 or not installed(package):
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return f"pip install {package} failed ({last}); {how}"
    return ""


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def start(c: Candidate, env: dict[str, str], port: int, tmp: Path, auth: str) -> str:
    """Start ``c`` on CPU 0; '' once it answers every case with 200 and writes its metrics
    samples where ``idp serve`` would, else why not."""
    run_env = dict(env)
    metrics_dir: Path | None = None  # idp serve makes its own (idp/metrics_setup.py)
    if c.name != REFERENCE:
        metrics_dir = tmp / f"metrics-{port}"
        metrics_dir.mkdir(mode=0o700)
        run_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    log_path = tmp / f"server-{port}.log"
    with log_path.open("wb") as log:
        c.proc = subprocess.Popen(["taskset", "-c", "0", *c.command(port)], env=run_env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_for_port(port, c.proc, timeout=60)
    except RuntimeError as exc:
        tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])
        return f"{exc}: {tail}"
    why = check(f"http://127.0.0.1:{port}", auth)
    if not why and metrics_dir is not None and not any(metrics_dir.iterdir()):
        why = "prometheus_client did not write to PROMETHEUS_MULTIPROC_DIR (not the same app)"
    return why


def session_cpu(sid: int) -> float:
    """CPU seconds so far of every process in session ``sid`` (a server and its workers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            session = int(stat.read_text().rsplit(")", 1)[1].split()[3])
        except (OSError, IndexError, ValueError):
            continue
        if session == sid:
            total += cpu_seconds(int(stat.parent.name))
    return total


def check(base: str, auth: str) -> str:
    """'' when every case answers 200 on ``base``."""
    for case in CASES:
        url = url_of(base, case)
        if case == "client_credentials":
            resp = requests.post(url, data={"grant_type": "client_credentials"},
                                 headers={"Authorization": auth}, timeout=10)  # fmt: skip
        else:
            resp = requests.get(url, timeout=10)
        if resp.status_code != 200:
            return f"{case}: HTTP {resp.status_code}"
    return ""


def url_of(base: str, case: str) -> str:
    return (
        base
        + {
            "jwks": f"/t/{TENANT}/jwks",
            "discovery": f"/t/{TENANT}/.well-known/openid-configuration",
            "client_credentials": f"/t/{TENANT}/token",
            "healthz": "/healthz",
        }[case]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument(
        "--only",
        help="servers to run, comma-separated names as printed (the reference always runs)",
    )
    ap.add_argument("--no-install", action="store_true", help="skip missing servers, no pip")
    ap.add_argument("--launch", choices=["granian", "bjoern"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.launch:
        launch(args.launch, args.port, args.threads)
        return

    tmp = Path(tempfile.mkdtemp(prefix="stepwise-servers-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(IDP_ENV="development", IDP_INSTANCE_PATH=str(tmp / "instance"),
               IDP_LOG_LEVEL="WARNING", IDP_ACCESS_LOG="off", IDP_OUTBOX_WORKER="off")  # fmt: skip
    running: list[tuple[Candidate, str]] = []  # (candidate, base URL)
    skipped: list[tuple[str, str]] = []
    try:
        seed(env, TENANT, "user0", PASSWORD)
        made = idp(env, "client", "create", TENANT, "--name", "Bench", "--redirect-uri",
                   CALLBACK, "--json")  # fmt: skip
        if made.returncode != 0:
            raise RuntimeError(f"idp client create failed: {made.stderr.strip()}")
        creds = json.loads(made.stdout)
        auth = basic(creds["client_id"], creds["client_secret"])
        lua = tmp / "cc.lua"
        lua.write_text(STATIC_LUA.format(method="POST", body="grant_type=client_credentials",
                                         auth=auth))  # fmt: skip
        wanted = set(args.only.split(",")) if args.only else None
        checked: dict[str, str] = {}
        for c in candidates():
            if wanted is not None and c.name != REFERENCE and c.name not in wanted:
                continue
            if c.needs:
                if c.needs not in checked:
                    checked[c.needs] = ensure(c.needs, not args.no_install)
                if checked[c.needs]:
                    skipped.append((c.name, checked[c.needs]))
                    continue
            port = free_port()
            why = start(c, env, port, tmp, auth)
            if why:
                skipped.append((c.name, why))
                if c.proc is not None:
                    end_server(c.proc, grace=5)
                if c.name == REFERENCE:
                    raise RuntimeError(f"the reference did not start: {why}")
                continue
            running.append((c, f"http://127.0.0.1:{port}"))
        for name, why in skipped:
            print(f"skipped {name}: {why}", file=sys.stderr)

        def one(c: Candidate, base: str, case: str, seconds: float) -> Sample:
            assert c.proc is not None
            script = lua if case == "client_credentials" else None
            cpu0, (busy0, total0), start = session_cpu(c.proc.pid), core_busy(0), time.monotonic()
            run = wrk(url_of(base, case), script, seconds, args.connections)
            elapsed = time.monotonic() - start
            cpu1, (busy1, total1) = session_cpu(c.proc.pid), core_busy(0)
            core0 = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
            return Sample(run, (cpu1 - cpu0) / elapsed, core0)

        for c, base in running:  # warm-up: imports, caches, connection pools
            for case in CASES:
                one(c, base, case, 1)
        results: dict[tuple[str, str], list[Sample]] = {}
        for r in range(args.rounds):
            for case in CASES:
                for c, base in running:
                    sample = one(c, base, case, args.seconds)
                    results.setdefault((case, c.name), []).append(sample)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        report(args, [c.name for c, _ in running], skipped, results)
    finally:
        for c, _ in running:
            if c.proc is not None:
                end_server(c.proc, grace=5)
        shutil.rmtree(tmp, ignore_errors=True)


def report(
    args: argparse.Namespace,
    names: list[str],
    skipped: list[tuple[str, str]],
    results: dict[tuple[str, str], list[Sample]],
) -> None:
    threads = tomllib.loads(GRANIAN_TOML.read_text()).get("blocking_threads")
    print(f"\nStepwise (SQLite + in-process store, no access log) under each WSGI server, one "
          f"process on CPU 0; wrk -t1 -c{args.connections} on CPU 1; {args.rounds} rounds "
          f"ABAB of {args.seconds:g} s; median of rounds. Reference: idp serve --workers 1 "
          f"(granian {version('granian')}, granian.toml: blocking_threads {threads}). "
          f"gunicorn {version('gunicorn')}, uWSGI {version('uwsgi')}, "
          f"bjoern {version('bjoern')}.\n")  # fmt: skip
    for name, why in skipped:
        print(f"- skipped {name}: {why}")
    if skipped:
        print()
    print("| case | server | req/s | ratio to idp serve | p50 / p99 ms | spread | "
          "server CPU / CPU 0 busy | req per CPU-s | ratio per CPU-s | non-2xx |")  # fmt: skip
    print("|---" * 10 + "|")
    best: dict[str, tuple[float, str]] = {}
    for case in CASES:
        ref = results[(case, REFERENCE)]
        ref_rate = statistics.median(x.run.rate for x in ref)
        ref_eff = statistics.median(x.per_cpu_second for x in ref)
        for name in names:
            samples = results[(case, name)]
            runs = [x.run for x in samples]
            rate = statistics.median(x.rate for x in runs)
            eff = statistics.median(x.per_cpu_second for x in samples)
            server = statistics.median(x.server for x in samples)
            core0 = statistics.median(x.core0 for x in samples)
            best[case] = max(best.get(case, (0.0, "")), (rate, name))
            eff_ratio = eff / ref_eff if ref_eff else 0.0
            print(f"| {case} | {name} | {rate:,.0f} | {rate / ref_rate:.2f} | {lat(runs)} | "
                  f"{spread(runs)} | {server:.0%} / {core0:.0%} | {eff:,.0f} | "
                  f"{eff_ratio:.2f} | {sum(x.bad for x in runs)} |")  # fmt: skip
    print("\nFastest (req/s): " + "; ".join(f"{c} {n}" for c, (_, n) in best.items()))
    print("CPU 0 busy well above the server's own CPU means other jobs shared the core: trust "
          "req per CPU-s (the server's own CPU time) over req/s there.")  # fmt: skip
    if any(x.run.bad for samples in results.values() for x in samples):
        print("\nWARNING: some requests failed (non-2xx column): those rates are not comparable")


if __name__ == "__main__":
    main()
