"""The planner's user facts are computed once per unit of work (idp.user_facts.facts_of),
and again as soon as the unit of work writes anything."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event, select

from idp.store.models import BackupCode, User
from idp.user_facts import facts_of
from tests.conftest import svc


def test_facts_are_computed_once_until_something_is_written(app: Flask, tenant: str) -> None:
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "backup_codes" in statement:
            statements.append(statement.split()[0])

    engine = svc(app).db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        with svc(app).db.session() as s:
            alice = s.scalars(select(User).where(User.username == "alice")).one()
            first = facts_of(alice, ("totp",))
            assert facts_of(alice, ("totp",)) is first and statements == ["SELECT"]
            s.add(BackupCode(user_id=alice.id, digest="x" * 64, created_at=0))
            assert facts_of(alice, ("totp",)).has_backup_codes  # pending: computed afresh
            s.flush()
            again = facts_of(alice, ("totp",))
            assert again.has_backup_codes and facts_of(alice, ("totp",)) is again
            alice.mfa_enabled = True  # a change not yet written is seen at once
            assert facts_of(alice, ("totp",)).mfa_enabled_by_user
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements.count("SELECT") == 4 and statements.count("INSERT") == 1
