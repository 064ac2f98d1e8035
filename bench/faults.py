"""Faults under steady load, measured: what the fault tests check, over a longer window.

Two Stepwise nodes of two workers behind haproxy (testkit.cluster) on PostgreSQL and Redis;
testkit.load signs users in (password, and TOTP) and rotates tokens through the proxy, from
``--token-users`` + ``--login-users`` threads. Each fault (testkit.faults) runs after
``--seconds`` of steady load, keeps its backend down for ``--down`` seconds (at least until the
load has felt it) and is followed by ``--seconds`` more:

1. Redis restart (SIGTERM, AOF on), 2. PostgreSQL restart (pg_ctl stop -m fast),
3. a granian worker killed with SIGKILL, three times, each under a race of parallel
   redemptions of one single-use secret, 4. a Sentinel failover (the master SIGKILLed; its
   own cluster).

Printed per fault: requests, outcomes, errors by kind, requests lost, recovery time (from
the fault's start and end to the first success after which every request succeeded),
p50/p99 latency before, during and after, and the rules of issue 16 as the tests check them.
testkit/load.py defines the outcomes (what counts as refused, dropped, rejected, improper,
lost).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from testkit.cluster import cluster
from testkit.faults import (
    FaultRun,
    postgres_restart,
    redis_restart,
    sentinel_failover,
    worker_kill,
)
from testkit.load import Load, Outcome, Target, prepare, summarize
from testkit.pg_control import restartable_postgres
from testkit.redis_ha import persistent_redis, sentinel_group

ENV = {"IDP_THROTTLE_IP_LIMIT": "100000000"}  # every virtual user comes from 127.0.0.1


def measure(
    target: Target, args: argparse.Namespace, fault: Callable[[Load], FaultRun]
) -> tuple[Load, FaultRun]:
    load = Load(target, token_users=args.token_users, login_users=args.login_users).start()
    try:
        time.sleep(args.seconds)
        run = fault(load)
        time.sleep(max(0.0, run.end + args.seconds - time.monotonic()))
    finally:
        load.stop()
    return load, run


def ms(seconds: float) -> str:
    return "  n/a" if seconds != seconds else f"{seconds * 1000:5.0f}"  # NaN: no request


def report(load: Load, run: FaultRun, dropped: bool = False, lost_state: bool = False) -> None:
    """What the load saw around ``run``; ``dropped`` and ``lost_state``: whether the proxy's
    502 and rejected requests are within the rules for this fault (a kill, a failover)."""
    s = summarize(load.records, run.start, run.end)
    print(f"\n== {run.name}  (fault lasted {run.end - run.start:.1f} s)")
    print(f"requests      {s.total}   " + "  ".join(f"{k} {v}" for k, v in s.outcomes.items()))
    print(f"requests lost {s.lost}   (dropped, rejected or improper)")
    if s.recovery_from_start is None:
        print("recovery      never (the last request failed)")
    else:
        print(f"recovery      {s.recovery_from_end:.2f} s after the fault's end "
              f"({s.recovery_from_start:.2f} s after its start)")  # fmt: skip
    for phase, (p50, p99, n) in s.latency.items():
        print(f"latency {phase:7s} p50 {ms(p50)} ms  p99 {ms(p99)} ms  ({n} requests)")
    print("nodes         " + ", ".join(f"{k} {v}" for k, v in sorted(s.nodes.items())))
    for label, count in s.errors.most_common():
        print(f"  {count:5d}  {label}")
    for key, value in run.notes.items():
        print(f"  {key}: {value}")
    if run.still_signed_in is not None:
        print(f"signed in before, still signed in after: {run.still_signed_in}")
    rules = {
        "no improper answer (500, reset, hang)": not s.outcomes.get(Outcome.IMPROPER.value),
        "no token without its factors": not load.violations,
        "recovered by itself": run.settled,
    }
    if not dropped:
        rules["no request dropped by the proxy"] = not s.outcomes.get(Outcome.DROPPED.value)
    if not lost_state:
        rules["no state lost (nothing rejected)"] = not s.outcomes.get(Outcome.REJECTED.value)
    for rule, held in rules.items():
        print(f"[{'ok' if held else 'BROKEN'}] {rule}")
    for text in load.violations:
        print(f"  violation: {text}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=10, help="steady load before and after")
    ap.add_argument("--down", type=float, default=3, help="how long a backend stays down")
    ap.add_argument("--token-users", type=int, default=2)
    ap.add_argument("--login-users", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma-separated: redis,postgres,worker,sentinel")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="stepwise-faults-"))
    users = args.login_users + 1  # one each, and the witness / the races' user
    print(f"load: {args.token_users} token + {args.login_users} login threads through haproxy; "
          f"{args.seconds:g} s before and after each fault, backends down {args.down:g} s; "
          "2 nodes x 2 workers")  # fmt: skip

    def deploy(base: str, env: dict[str, str]) -> tuple[Target, Target]:
        """The full target, and the load's share of it (the witness and a TOTP user apart)."""
        full = prepare(env, base, "acme", users=users, totp_users=5)
        return full, replace(full, users=full.users[:-1], totp_users=full.totp_users[:-1])

    try:
        with restartable_postgres() as pg, persistent_redis(tmp / "redis") as redis_node:
            db = pg.create_database("bench_faults")
            with cluster(tmp / "cluster", db, redis_node.url, extra_env=ENV) as running:
                full, share = deploy(running.base_url, running.env)
                witness = full.users[-1]
                if "redis" not in skip:
                    load, run = measure(share, args, lambda ld: redis_restart(
                        ld, redis_node, witness, args.down))  # fmt: skip
                    report(load, run)
                if "postgres" not in skip:
                    load, run = measure(share, args, lambda ld: postgres_restart(
                        ld, pg, args.down))  # fmt: skip
                    report(load, run)
                if "worker" not in skip:
                    load, run = measure(share, args, lambda ld: worker_kill(
                        ld, running, witness, full.totp_users[-1]))  # fmt: skip
                    report(load, run, dropped=True)
            if "sentinel" not in skip:
                with (
                    sentinel_group(tmp / "sentinel") as group,
                    cluster(tmp / "cluster-sentinel", pg.create_database("bench_sentinel"),
                            redis_sentinels=group.sentinels, extra_env=ENV) as running,
                ):  # fmt: skip
                    full, share = deploy(running.base_url, running.env)
                    load, run = measure(share, args, lambda ld: sentinel_failover(
                        ld, group, full.users[-1]))  # fmt: skip
                    report(load, run, lost_state=True)  # asynchronous replication
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
