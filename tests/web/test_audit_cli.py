"""``idp audit export`` and ``idp audit prune``, through the real ``idp`` script."""

from __future__ import annotations

import csv
import io
import json
import time

from sqlalchemy import select

from idp import audit_log, directory
from idp.store.models import AuditEvent
from tests.cli_support import idp
from tests.conftest import services_for

DAY = 86400


def seed(env: dict[str, str], event: str, *, tenant: str = "acme", at: int | None = None,
         **fields: object) -> int:  # fmt: skip
    svc = services_for(env)
    with svc.db.session() as s:
        t = directory.get_tenant(s, tenant) or directory.create_tenant(s, tenant, tenant)
        row = AuditEvent(tenant_id=t.id, event=event, at=at or int(time.time()), details={},
                         **fields)  # fmt: skip
        s.add(row)
        s.flush()
        return row.id


def test_export_writes_the_filtered_rows_as_csv_or_jsonl(cli_env: dict[str, str]) -> None:
    now = int(time.time())
    failed = [seed(cli_env, "login.failed", result="failure", ip="+1") for _ in range(3)]
    old = seed(cli_env, "login.failed", result="failure", at=now - 10 * DAY)
    seed(cli_env, "mfa.enrolled")
    seed(cli_env, "login.failed", tenant="other", result="failure")

    out = idp(cli_env, "audit", "export", "acme", "--result", "failure", "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == sorted([*failed, old], reverse=True)  # no other tenant
    assert all(list(r) == list(audit_log.COLUMNS) for r in rows)
    assert [r["actor"] for r in rows] == ["operator"] + ["anonymous"] * 3  # the last: no IP

    out = idp(cli_env, "audit", "export", "acme", "--since", str(DAY), "--event", "login.")
    assert out.returncode == 0, out.stderr
    table = list(csv.reader(io.StringIO(out.stdout)))
    assert tuple(table[0]) == audit_log.COLUMNS
    assert [int(r[0]) for r in table[1:]] == sorted(failed, reverse=True)
    assert {r[9] for r in table[1:]} == {"'+1"}  # formula-safe, as in the console's download

    day = audit_log.iso(now - 10 * DAY)[:10]
    out = idp(cli_env, "audit", "export", "acme", "--since", day, "--until", day)
    assert out.returncode == 0, out.stderr
    assert [int(r[0]) for r in list(csv.reader(io.StringIO(out.stdout)))[1:]] == [old]


def test_bad_input_is_one_line_and_exit_2(cli_env: dict[str, str]) -> None:
    for args, said in [
        (["--since", "last tuesday"], "from: not a date"),
        (["--until", "2024-13-01"], "to: not a date"),
        (["--since", "2024-03-02", "--until", "2024-03-01"], "from must be before to"),
        (["--since", "9" * 40], "from: too many seconds"),
        (["--event", "x" * 300], "event: at most 200 characters"),
        (["--format", "xml"], "--format"),
        (["--result", "maybe"], "--result"),
    ]:
        out = idp(cli_env, "audit", "export", "acme", *args)
        assert out.returncode == 2, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and said in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and out.stdout == ""
    for args in (["export", "nosuch"], ["prune", "nosuch"]):
        out = idp(cli_env, "audit", *args)
        assert out.returncode == 2 and out.stderr.strip() == "idp: no tenant 'nosuch'"


def test_prune_deletes_what_is_older_than_each_tenants_retention(cli_env: dict[str, str]) -> None:
    now = int(time.time())
    gone = [seed(cli_env, "test.old", at=now - 400 * DAY) for _ in range(3)]
    kept = seed(cli_env, "test.recent", at=now - 300 * DAY)
    other_old = seed(cli_env, "test.old", tenant="other", at=now - 100 * DAY)
    other_kept = seed(cli_env, "test.old", tenant="other", at=now - 80 * DAY)
    svc = services_for(cli_env)
    with svc.db.session() as s:
        directory.require_tenant(s, "other").audit_retention_days = 30  # below the floor: 90

    out = idp(cli_env, "audit", "prune", "acme")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "acme: 3 events deleted (older than 365 days)\n"
    with svc.db.session() as s:
        left = set(s.scalars(select(AuditEvent.id)))
        pruned = s.scalars(select(AuditEvent).where(AuditEvent.event == "audit.pruned")).one()
        assert pruned.details["count"] == 3 and pruned.details["by"] == "operator"
        assert pruned.actor_id is None and pruned.ip is None  # shown as "operator"
    assert not left & set(gone) and {kept, other_old} <= left

    out = idp(cli_env, "audit", "prune")  # every tenant
    assert out.returncode == 0, out.stderr
    assert "acme: 0 events deleted" in out.stdout
    assert "other: 1 events deleted (older than 90 days)" in out.stdout
    with svc.db.session() as s:
        assert other_kept in set(s.scalars(select(AuditEvent.id)))
    with svc.db.session() as s:
        assert s.get(AuditEvent, other_old) is None and s.get(AuditEvent, kept) is not None
