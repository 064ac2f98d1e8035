"""The admin API's frame: bearer authorization, typed operations, pagination, ETags.

Callers authenticate with an RFC 6750 bearer token: an access token of this tenant obtained
by the client-credentials grant (RFC 6749 4.4) by a client created with ``--admin-api``.
Scope ``stepwise:admin`` reads and writes; ``stepwise:admin.read`` only reads. Cookies are
never accepted here, so the API needs no CSRF token.

Each endpoint is declared once with :func:`operation`: its method, path, pydantic models for
the body, query and response. The same models validate requests, serialise answers and
generate the OpenAPI 3.1 document (idp.admin.api.openapi), so the document cannot drift from
the code. Errors are RFC 9457 problem documents (``application/problem+json``) that also carry
OAuth's ``error`` and ``error_description`` members.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from flask import Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session
from werkzeug.http import HTTP_STATUS_CODES

from idp.directory import Actor, DirectoryError
from idp.errors import HttpError, StepwiseError, install, problem
from idp.oidc import claims, resources, tokens
from idp.oidc.clients import find_client
from idp.oidc.current import context
from idp.services import Services, services
from idp.store.models import Tenant
from idp.tenancy import current_tenant, tenant_blueprint, tenant_in
from idp.untrusted import SQL_INT_MAX, parse_json

bp = tenant_blueprint("admin_api", __name__, "/admin/api")
PAGE_DEFAULT, PAGE_MAX = 50, 200
CURSOR_DIGITS = 18  # the key of the last row seen: keyset pagination, never an OFFSET
T = TypeVar("T")


class ApiError(HttpError):
    """An admin API error with its status and OAuth-style code (RFC 6750 3.1 for tokens)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description, status)
        self.code, self.title = error, HTTP_STATUS_CODES.get(status, "Error")


def _problem(exc: StepwiseError) -> Response:
    """Every error under /admin/api, ours or not, as a problem document.

    - A body or query that does not match the documented schema: 400.
    - A well-formed request that a rule refuses (a DirectoryError: a duplicate name, an
      https-only redirect URI, metadata that does not parse): 422 (RFC 9110 15.5.21), so a
      client can tell its own malformed call from a refused value.
    - Forbidden (an API client is never an owner, so it may not change one): 403.
    """
    if isinstance(exc, DirectoryError) and exc.status == 400:
        refused = ApiError(422, exc.code, exc.message)
        refused.title = "Unprocessable Content"
        return problem(refused)
    return problem(exc)


install(bp, _problem)


class Body(BaseModel):
    """A request body: unknown members are refused, never ignored."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Query parameters of a list: an opaque cursor and a page size."""

    model_config = ConfigDict(extra="forbid")
    cursor: str | None = Field(
        None,
        pattern=rf"^[0-9]{{1,{CURSOR_DIGITS}}}$",
        description="next_cursor of the page before (treat it as opaque)",
    )
    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX)


class Page(BaseModel, Generic[T]):
    """One page of a list; ``next_cursor`` is null on the last page."""

    items: list[T]
    next_cursor: str | None


@dataclass
class Call:
    """What a handler gets: the transaction, the tenant and who is calling."""

    s: Session
    tenant: Tenant
    actor: Actor
    svc: Services

    def if_match(self, current: Any) -> None:
        """RFC 9110 13.1.1: refuse a write made against another version (412)."""
        sent = request.headers.get("If-Match")
        if sent is None or sent.strip() == "*":
            return
        tags = {t.strip().removeprefix("W/") for t in sent.split(",")}
        if etag_of(current) not in tags:
            raise ApiError(
                412, "precondition_failed", "The resource changed since it was read (If-Match)."
            )


@dataclass
class Reply:
    """A handler's answer with a status other than 200, or with an ETag."""

    body: Any
    status: int = 200
    etag: bool = False


@dataclass
class Operation:
    """One declared endpoint, as the OpenAPI document describes it."""

    method: str
    rule: str
    name: str
    summary: str
    tag: str
    write: bool
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    etag: bool = False
    errors: Sequence[int] = field(default_factory=tuple)


OPERATIONS: list[Operation] = []


def etag_of(value: Any) -> str:
    """A strong ETag over the JSON form of ``value``."""
    raw = json.dumps(_plain(value), sort_keys=True, separators=(",", ":")).encode()
    return '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def authorize(s: Session, write: bool) -> Actor:
    """The calling client, if its token is valid and carries the scope this call needs."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "invalid_token", "A bearer access token is required.")
    try:
        found = resources.access_claims(context(s), token.strip())
    except tokens.InvalidToken:
        raise ApiError(401, "invalid_token", "The access token is invalid or expired.") from None
    client = find_client(s, current_tenant(), str(found.get("client_id", "")))
    scopes = claims.split(str(found.get("scope", "")))
    needed = (claims.ADMIN_SCOPE,) if write else (claims.ADMIN_SCOPE, claims.ADMIN_READ_SCOPE)
    if (
        client is None
        or not client.admin_api
        or found.get("sub") != client.client_id  # a client's own token, not a user's
        or not any(scope in scopes for scope in needed)
    ):
        raise ApiError(403, "insufficient_scope", f"The token lacks scope {needed[0]}.")
    return Actor(client_id=client.client_id, ip=request.remote_addr)


def _body(model: type[BaseModel]) -> BaseModel:
    data = None
    if request.mimetype == "application/json":
        try:
            data = parse_json(request.get_data())
        except ValueError:  # not JSON, not UTF-8, or nested too deeply
            data = None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "The body must be a JSON object.")
    return _validate(model, _whole(data))


def _whole(value: Any) -> Any:
    """JSON Schema counts 3.0 as an integer (2020-12 validation 6.1.1), and so do we; the API
    has no fractional members, and strict models refuse "3" and true as numbers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


def _query(model: type[BaseModel]) -> BaseModel:
    args: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        args[key] = values if len(values) > 1 else values[0]
    return _validate(model, args)


def _validate(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(400, "invalid_request", f"{where}: {first['msg']}") from None


def operation(
    method: str,
    rule: str,
    *,
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    etag: bool = False,
    errors: Sequence[int] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an endpoint. The handler is called as ``fn(call, **path, body=..., query=...)``
    and returns a model, a plain value, a :class:`Reply` or a Flask response; GET is a read,
    every other method a write (scope ``stepwise:admin``)."""
    write = method != "GET"

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        def view(**path: Any) -> Any:
            svc = services()
            with svc.db.session() as s:
                actor = authorize(s, write)
                call = Call(s, tenant_in(s), actor, svc)
                kwargs: dict[str, Any] = dict(path)
                if body is not None:
                    kwargs["body"] = _body(body)
                if query is not None:
                    kwargs["query"] = _query(query)
                return _respond(fn(call, **kwargs), status, etag)

        view.__name__ = fn.__name__
        bp.add_url_rule(rule, endpoint=fn.__name__, view_func=view, methods=[method])
        OPERATIONS.append(
            Operation(
                method,
                rule,
                fn.__name__,
                summary,
                tag,
                write,
                body,
                query,
                response,
                status,
                etag,
                errors,
            )
        )
        return fn

    return register


def _respond(result: Any, status: int, etag: bool) -> Response:
    if isinstance(result, Response):
        return result
    if isinstance(result, Reply):
        result, status, etag = result.body, result.status, result.etag or etag
    if status == 204:
        return Response(status=204)
    plain = _plain(result)
    resp = jsonify(plain)
    resp.status_code = status
    if etag:
        resp.headers["ETag"] = etag_of(plain)
    return resp


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"There is no {what}.")


def _decode(cursor: str) -> int:
    if not cursor.isdigit() or len(cursor) > CURSOR_DIGITS:  # the pattern, checked again
        raise ApiError(400, "invalid_request", "cursor: not a cursor this API gave.")
    return min(int(cursor), SQL_INT_MAX)  # past every id: compared as an SQL INTEGER


def paginate(
    s: Session,
    stmt: Select[Any],
    key: InstrumentedAttribute[int],
    query: Query,
    *,
    descending: bool = False,
) -> tuple[list[Any], str | None]:
    """Keyset pagination on ``key`` (a unique integer column): one query, never an OFFSET."""
    if query.cursor:
        last = _decode(query.cursor)
        stmt = stmt.where(key < last if descending else key > last)
    stmt = stmt.order_by(key.desc() if descending else key).limit(query.limit + 1)
    rows = list(s.scalars(stmt))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return rows, (str(getattr(rows[-1], key.key)) if more and rows else None)


def page_of(rows: Iterable[Any], cursor: str | None, convert: Callable[[Any], T]) -> dict[str, Any]:
    """A :class:`Page` body from rows and the next cursor."""
    return {"items": [_plain(convert(r)) for r in rows], "next_cursor": cursor}
