"""Audit events written from a request: the client IP and the signed-in actor come along."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_login import current_user
from sqlalchemy.orm import Session

from idp.directory import audit
from idp.store.models import Tenant


def audit_event(
    s: Session, tenant: Tenant, event: str, *, subject: int | None = None, **details: Any
) -> None:
    actor = int(current_user.get_id()) if current_user.is_authenticated else None
    audit(s, tenant, event, actor=actor, subject=subject, ip=request.remote_addr, **details)
