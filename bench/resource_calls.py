"""The calls resource servers make, this tree against another commit, side by side.

UserInfo (GET, bearer token), introspection of an access token (POST, client_secret_basic),
revocation of an unknown token, client_credentials and JWKS (the framework floor), each
against Stepwise from this checkout and from ``--against REV`` (a git worktree made for the
run, removed after). Both servers run at once, each one ``idp serve --workers 1`` on its
embedded defaults (SQLite, in-process store) pinned to CPU 0; wrk, one thread, is pinned to
CPU 1. The rounds alternate (ABAB): in each round every case runs against this tree, then
against REV, so drift on the machine falls on both alike. It prints each case's two rates,
the ratio (this tree / REV), the p50/p99 and the spread across rounds.

The access token comes from a real authorization code flow on each server (then a refresh
grant), and lives for the client's access token lifetime (an hour by default), far longer
than a run.

    .venv/bin/python bench/resource_calls.py --against 2740f96 --rounds 3 --seconds 5
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.compare import (
    STATIC_LUA,
    Run,
    Server,
    basic,
    pair_rows,
    start_stepwise,
    stop,
    wrk,
)

ROOT = Path(__file__).resolve().parent.parent
CASES = ("userinfo", "introspection", "revocation", "client_credentials", "jwks")
USERINFO_LUA = 'wrk.headers["Authorization"] = "Bearer {token}"\n'


def access_token(server: Server) -> str:
    """An access token for user0 (scope ``openid profile``) through a code flow and a
    refresh grant."""
    refresh = server.mint(1)[0]
    answer = requests.post(
        f"{server.base}{server.prefix}/token",
        auth=(server.client_id, server.secret),
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        timeout=10,
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def case_files(server: Server, tmp: Path) -> dict[str, tuple[str, Path | None]]:
    """Each case's URL and wrk script (None for a plain GET)."""
    token, auth = access_token(server), basic(server.client_id, server.secret)
    issuer = f"{server.base}{server.prefix}"
    lua = {
        "userinfo": USERINFO_LUA.format(token=token),
        "introspection": STATIC_LUA.format(method="POST", body=f"token={token}", auth=auth),
        "revocation": STATIC_LUA.format(method="POST", body="token=unknown", auth=auth),
        "client_credentials": STATIC_LUA.format(
            method="POST", body="grant_type=client_credentials", auth=auth
        ),
    }
    paths = {"userinfo": "/userinfo", "introspection": "/introspect", "revocation": "/revoke",
             "client_credentials": "/token", "jwks": "/jwks"}  # fmt: skip
    out: dict[str, tuple[str, Path | None]] = {}
    for case in CASES:
        script = None
        if case in lua:
            script = tmp / f"{server.name}-{case}.lua"
            script.write_text(lua[case])
        out[case] = (issuer + paths[case], script)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--against", required=True, help="the commit to compare with (git rev)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    if args.rounds < 3:
        ap.error("at least 3 rounds (ABAB)")
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.against],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="stepwise-resource-calls-"))
    worktree = tmp / "against"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                    str(worktree), rev], check=True)  # fmt: skip
    servers: list[Server] = []
    try:
        servers = [start_stepwise(tmp, "this-tree"),
                   start_stepwise(tmp, f"at-{rev}", source=worktree)]  # fmt: skip
        files = {s.name: case_files(s, tmp) for s in servers}
        for s in servers:  # warm-up
            for case in CASES:
                wrk(*files[s.name][case], 1, args.connections)
        runs: dict[tuple[str, str], list[Run]] = {}
        for r in range(args.rounds):
            for case in CASES:
                for s in servers:
                    run = wrk(*files[s.name][case], args.seconds, args.connections)
                    runs.setdefault((case, s.name), []).append(run)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        report(args, rev, servers, runs)
    finally:
        stop(servers)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                        str(worktree)], check=False)  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)


def report(
    args: argparse.Namespace,
    rev: str,
    servers: list[Server],
    runs: dict[tuple[str, str], list[Run]],
) -> None:
    print(f"\nThis tree against {rev}: idp serve --workers 1 on CPU 0 (SQLite, in-process "
          f"store), wrk -t1 -c{args.connections} on CPU 1; {args.rounds} rounds ABAB of "
          f"{args.seconds:g} s; median of rounds\n")  # fmt: skip
    print(f"| case | this tree req/s | {rev} req/s | ratio | p50/p99 ms this tree | "
          f"p50/p99 ms {rev} | spread this tree | spread {rev} | non-2xx |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    pair_rows(list(CASES), servers, runs, second_over_first=False)


if __name__ == "__main__":
    main()
