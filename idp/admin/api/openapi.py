"""The admin API's OpenAPI 3.1 document, generated from the declared operations.

Request and response schemas are the pydantic models that validate and serialise each call
(idp.admin.api.core.operation), as JSON Schema 2020-12, which OpenAPI 3.1 uses as is.
https://spec.openapis.org/oas/v3.1.0
"""

from __future__ import annotations

import re
from typing import Any

from flask import jsonify, url_for
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from idp.admin.api.core import OPERATIONS, Operation, bp
from idp.oidc import claims

REF = "#/components/schemas/{model}"
PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem document, with OAuth's error members.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "error": {"type": "string"},
        "error_description": {"type": "string"},
    },
    "required": ["type", "title", "status", "detail"],
}
COMMON_ERRORS = (400, 401, 403)


def _path(rule: str) -> tuple[str, list[str]]:
    names = re.findall(r"<(?:[a-z]+:)?([a-z_]+)>", rule)
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule), names


def _schema(kind: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return {"$ref": REF.format(model=kind.__name__)}
    schema = TypeAdapter(kind).json_schema(ref_template=REF, mode="serialization")
    defs.update(schema.pop("$defs", {}))
    return schema


# Every address with a NUL is refused before routing (idp.security), so the document says so.
NO_NUL = "^[^\\u0000]*$"


def _no_nul(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a no-NUL pattern on each string that has no pattern of its own."""
    if schema.get("type") == "string" and "pattern" not in schema and "format" not in schema:
        schema = {**schema, "pattern": NO_NUL}
    if "anyOf" in schema:
        schema = {**schema, "anyOf": [_no_nul(s) for s in schema["anyOf"]]}
    return schema


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _no_nul(prop)}
        for name, prop in schema.get("properties", {}).items()
    ]


def _operation(op: Operation, defs: dict[str, Any]) -> dict[str, Any]:
    _, names = _path(op.rule)
    params: list[dict[str, Any]] = [
        {"name": n, "in": "path", "required": True, "schema": _no_nul({"type": "string"})}
        for n in names
    ]
    if op.query is not None:
        params += _query_parameters(op.query)
    if op.method in ("PUT", "PATCH") and op.etag:
        params.append({"name": "If-Match", "in": "header", "required": False,
                       "schema": {"type": "string"}})  # fmt: skip
    ok: dict[str, Any] = {"description": "OK"}
    if op.status == 204:
        ok = {"description": "Done; no body."}
    elif op.response is not None:
        ok["content"] = {"application/json": {"schema": _schema(op.response, defs)}}
        if op.etag:
            ok["headers"] = {"ETag": {"schema": {"type": "string"}}}
    problem = {"content": {"application/problem+json": {"schema": {"$ref": REF.format(
        model="Problem")}}}}  # fmt: skip
    responses: dict[str, Any] = {str(op.status): ok}
    for status in sorted({*COMMON_ERRORS, *op.errors, *((422,) if op.write else ())}):
        responses[str(status)] = {"description": f"Error {status}", **problem}
    out: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
        "security": [{"oauth2": [claims.ADMIN_SCOPE if op.write else claims.ADMIN_READ_SCOPE]}],
    }
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(op.body, defs)}},
        }
    return out


def document(server: str, token_url: str) -> dict[str, Any]:
    """The whole document for one tenant's API at ``server``."""
    models = {
        m
        for op in OPERATIONS
        for m in (op.body, op.response)
        if isinstance(m, type) and issubclass(m, BaseModel)
    }
    _, top = models_json_schema(
        [(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template=REF,
    )
    defs: dict[str, Any] = dict(top.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        path, _ = _path(op.rule)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, defs)
    defs["Problem"] = PROBLEM
    return {
        "openapi": "3.1.0",
        "info": {"title": "Stepwise admin API", "version": "1"},
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": token_url,
                            "scopes": {
                                claims.ADMIN_SCOPE: "read and change the tenant",
                                claims.ADMIN_READ_SCOPE: "read the tenant",
                            },
                        }
                    },
                }
            },
        },
    }


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The document itself; public, like the discovery document."""
    server = url_for("admin_api.openapi", _external=True).removesuffix("/openapi.json")
    return jsonify(document(server, url_for("oidc_api.token", _external=True)))
