"""Admin API: applications (the console's applications pages).

OpenID Connect clients are named by their ``client_id``; SAML service providers by their
numeric ``id`` (an entity ID is a URL, unfit for a path). A client secret is in an answer only
right after it was made (create, rotate, or a change that makes the client confidential);
neither its hash nor any private key is ever returned.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import jsonify, request
from flask.wrappers import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from idp.admin.api.core import (
    Body,
    Call,
    Page,
    Query,
    Reply,
    bp,
    etag_of,
    not_found,
    operation,
    page_of,
    paginate,
)
from idp.directory import DirectoryError
from idp.oidc import clients as oidc_clients
from idp.saml import keys as saml_keys
from idp.saml import sps as saml_sps
from idp.store.models import Client, ServiceProvider
from idp.untrusted import row_id

GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
Alg = Literal["RS256", "ES256"]
NameId = Literal["persistent", "email", "transient", "unspecified"]
Attribute = Literal[
    "username", "email", "role", "displayName", "givenName", "sn", "mail", "memberOf"
]
Uri = Annotated[str, Field(max_length=2000)]
AcrValue = Annotated[str, Field(max_length=200)]
Level = Annotated[int, Field(ge=0, le=3)]
AccessLifetime = Annotated[
    int, Field(ge=oidc_clients.MIN_ACCESS_LIFETIME, le=oidc_clients.MAX_ACCESS_LIFETIME)
]
RefreshLifetime = Annotated[int, Field(ge=1, le=oidc_clients.MAX_REFRESH_LIFETIME)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Metadata = Annotated[
    str, Field(min_length=1, max_length=saml_sps.MAX_METADATA, description="the SP's XML")
]
TAG = "applications"
# Bodies with SP metadata may carry up to 256 KiB of it, above the app's usual limit.
METADATA_CALLS = ("admin_api.add_saml_sp", "admin_api.refresh_saml_sp")


@bp.url_value_preprocessor
def _metadata_limit(endpoint: str | None, values: dict[str, Any] | None) -> None:
    if endpoint in METADATA_CALLS:
        request.max_content_length = saml_sps.MAX_METADATA * 2 + 64 * 1024  # JSON escapes


# --- OpenID Connect clients -------------------------------------------------------------------
class ClientOut(BaseModel):
    """A registered client (never its secret)."""

    client_id: str
    name: str
    public: bool
    first_party: bool
    admin_api: bool
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    grant_types: list[GrantType]
    min_level: int
    default_acr_values: list[str]
    access_token_lifetime: int
    refresh_lifetime: int
    refresh_idle_lifetime: int
    id_token_alg: Alg
    created_at: int


class ClientPage(Page[ClientOut]):
    """One page of clients."""


class ClientWithSecret(ClientOut):
    """A client with its new secret, shown this once (null for a public client)."""

    client_secret: str | None


class ClientChanged(ClientOut):
    """A changed client; ``client_secret`` only when the change made it confidential."""

    client_secret: str | None = None


class ClientSecret(BaseModel):
    client_id: str
    client_secret: str


class ClientNew(Body):
    """A client to register; left out: the defaults of ``idp client create``."""

    name: Name
    redirect_uris: list[Uri] = Field(default_factory=list, max_length=oidc_clients.MAX_URIS)
    post_logout_redirect_uris: list[Uri] = Field(
        default_factory=list, max_length=oidc_clients.MAX_URIS
    )
    public: bool = False
    first_party: bool = True
    admin_api: bool = False
    grant_types: list[GrantType] | None = Field(
        None, max_length=3, description="default: all a client of its type may use"
    )
    min_level: Level = 0
    default_acr_values: list[AcrValue] = Field(default_factory=list, max_length=10)
    access_token_lifetime: AccessLifetime = oidc_clients.ACCESS_LIFETIME
    refresh_lifetime: RefreshLifetime | None = Field(None, description="default: 30 days")
    refresh_idle_lifetime: RefreshLifetime | None = Field(
        None, description="default: 14 days, at most refresh_lifetime"
    )
    id_token_alg: Alg = "RS256"  # noqa: S105 (an algorithm name)


class ClientChange(Body):
    """The settings to change; those left out keep their value."""

    name: Name | None = None
    redirect_uris: list[Uri] | None = Field(None, max_length=oidc_clients.MAX_URIS)
    post_logout_redirect_uris: list[Uri] | None = Field(None, max_length=oidc_clients.MAX_URIS)
    public: bool | None = None
    first_party: bool | None = None
    admin_api: bool | None = None
    grant_types: list[GrantType] | None = Field(None, max_length=3)
    min_level: Level | None = None
    default_acr_values: list[AcrValue] | None = Field(None, max_length=10)
    access_token_lifetime: AccessLifetime | None = None
    refresh_lifetime: RefreshLifetime | None = None
    refresh_idle_lifetime: RefreshLifetime | None = None
    id_token_alg: Alg | None = None


def client_out(client: Client) -> ClientOut:
    return ClientOut.model_validate(
        {
            **oidc_clients.settings_of(client),
            "client_id": client.client_id,
            "created_at": client.created_at,
        }
    )


def client_of(call: Call, client_id: str) -> Client:
    found = oidc_clients.find_client(call.s, call.tenant, client_id)
    if found is None:
        raise not_found(f"client {client_id[:80]!r}")
    return found


@operation("GET", "/clients", summary="List the OpenID Connect clients", tag=TAG,
           query=Query, response=ClientPage)  # fmt: skip
def list_clients(call: Call, query: Query) -> dict[str, Any]:
    stmt = select(Client).where(Client.tenant_id == call.tenant.id)
    rows, cursor = paginate(call.s, stmt, Client.id, query)
    return page_of(rows, cursor, client_out)


@operation("POST", "/clients", summary="Register an OpenID Connect client", tag=TAG,
           body=ClientNew, response=ClientWithSecret, status=201)  # fmt: skip
def create_client(call: Call, body: ClientNew) -> ClientWithSecret:
    reg = oidc_clients.create_client(
        call.s,
        call.tenant,
        body.name,
        body.redirect_uris,
        public=body.public,
        post_logout_redirect_uris=body.post_logout_redirect_uris,
        first_party=body.first_party,
        min_level=body.min_level,
        id_token_alg=body.id_token_alg,
        admin_api=body.admin_api,
        default_acr_values=body.default_acr_values,
        refresh_lifetime=body.refresh_lifetime,
        refresh_idle=body.refresh_idle_lifetime,
        grant_types=body.grant_types,
        access_token_lifetime=body.access_token_lifetime,
        actor=call.actor,
    )
    out = client_out(reg.client).model_dump()
    return ClientWithSecret.model_validate({**out, "client_secret": reg.client_secret})


@operation("GET", "/clients/<client_id>", summary="Read an OpenID Connect client", tag=TAG,
           response=ClientOut, etag=True, errors=(404,))  # fmt: skip
def get_client(call: Call, client_id: str) -> ClientOut:
    return client_out(client_of(call, client_id))


@operation("PATCH", "/clients/<client_id>", summary="Change an OpenID Connect client", tag=TAG,
           body=ClientChange, response=ClientChanged, etag=True, errors=(404, 412))  # fmt: skip
def patch_client(call: Call, client_id: str, body: ClientChange) -> Response:
    client = client_of(call, client_id)
    call.if_match(client_out(client))
    changes = body.model_dump(exclude_none=True)
    reg = oidc_clients.update_client(call.s, call.tenant, client, changes, call.actor)
    out = client_out(client).model_dump(mode="json")
    # The ETag is the resource's (as GET gives it), with or without a secret shown once.
    resp = jsonify({**out, "client_secret": reg.client_secret} if reg.client_secret else out)
    resp.headers["ETag"] = etag_of(out)
    return resp


@operation("DELETE", "/clients/<client_id>", summary="Delete an OpenID Connect client and end "
           "its token families", tag=TAG, status=204, errors=(404, 412))  # fmt: skip
def delete_client(call: Call, client_id: str) -> Reply:
    client = client_of(call, client_id)
    call.if_match(client_out(client))
    oidc_clients.delete_client(call.s, call.tenant, client, call.actor)
    return Reply(None, 204)


@operation("POST", "/clients/<client_id>/secret", summary="Rotate a client's secret (the old "
           "one stops working at once)", tag=TAG, response=ClientSecret,
           errors=(404,))  # fmt: skip
def rotate_client_secret(call: Call, client_id: str) -> ClientSecret:
    reg = oidc_clients.rotate_secret(call.s, call.tenant, client_of(call, client_id), call.actor)
    return ClientSecret(client_id=reg.client.client_id, client_secret=reg.client_secret or "")


# --- SAML service providers -------------------------------------------------------------------
class Endpoint(BaseModel):
    """An endpoint from the SP's metadata."""

    binding: str
    location: str
    index: int | None = None
    default: bool | None = None
    response_location: str | None = None


class Certificate(BaseModel):
    use: Literal["signing", "encryption"]
    subject: str
    not_after: int
    fingerprint: str = Field(description="SHA-256, hex")


class ServiceProviderOut(BaseModel):
    """A registered SAML service provider: its settings and what its metadata says."""

    id: int
    entity_id: str
    name: str
    nameid: NameId
    attributes: list[Attribute]
    min_level: int
    sign_response: bool
    encrypt_assertion: bool
    authn_requests_signed: bool
    acs: list[Endpoint]
    slo: list[Endpoint]
    certificates: list[Certificate]
    created_at: int


class ServiceProviderNew(Body):
    """An SP to register from its metadata; left out: the defaults of ``idp sp add``."""

    metadata: Metadata
    name: str | None = Field(None, max_length=200, description="default: the entity ID")
    nameid: NameId = "persistent"
    attributes: list[Attribute] | None = Field(
        None, max_length=8, description="default: username, email, role"
    )
    min_level: Level = 0
    sign_response: bool = False
    encrypt_assertion: bool = False


class ServiceProviderChange(Body):
    """The settings to change; those left out keep their value."""

    name: Name | None = None
    nameid: NameId | None = None
    attributes: list[Attribute] | None = Field(None, max_length=8)
    min_level: Level | None = None
    sign_response: bool | None = None
    encrypt_assertion: bool | None = None


class ServiceProviderMetadata(Body):
    """New metadata of the same entity."""

    metadata: Metadata


class ServiceProviderPage(Page[ServiceProviderOut]):
    """One page of service providers."""


def sp_out(sp: ServiceProvider) -> ServiceProviderOut:
    return ServiceProviderOut.model_validate(
        {
            **saml_sps.settings_of(sp),
            "id": sp.id,
            "entity_id": sp.entity_id,
            "authn_requests_signed": sp.authn_requests_signed,
            "acs": sp.acs,
            "slo": [{k: v for k, v in e.items() if v != ""} for e in sp.slo],
            "certificates": [vars(c) for c in saml_sps.certificates(sp)],
            "created_at": sp.created_at,
        }
    )


def sp_of(call: Call, sp_id: str) -> ServiceProvider:
    number = row_id(sp_id)
    found = saml_sps.find_sp_by_id(call.s, call.tenant, number) if number is not None else None
    if found is None:
        raise not_found(f"service provider {sp_id[:40]!r}")
    return found


def _xml(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        raise DirectoryError("metadata: not valid Unicode text") from None


@operation("GET", "/saml-sps", summary="List the SAML service providers", tag=TAG,
           query=Query, response=ServiceProviderPage)  # fmt: skip
def list_saml_sps(call: Call, query: Query) -> dict[str, Any]:
    stmt = select(ServiceProvider).where(ServiceProvider.tenant_id == call.tenant.id)
    rows, cursor = paginate(call.s, stmt, ServiceProvider.id, query)
    return page_of(rows, cursor, sp_out)


@operation("POST", "/saml-sps", summary="Register a SAML service provider from its metadata",
           tag=TAG, body=ServiceProviderNew, response=ServiceProviderOut,
           status=201)  # fmt: skip
def add_saml_sp(call: Call, body: ServiceProviderNew) -> ServiceProviderOut:
    saml_keys.ensure_key(call.s, call.svc.cipher, call.tenant, call.actor)
    sp = saml_sps.add_sp(
        call.s,
        call.tenant,
        _xml(body.metadata),
        name=body.name,
        nameid=body.nameid,
        sign_response=body.sign_response,
        encrypt=body.encrypt_assertion,
        min_level=body.min_level,
        attributes=body.attributes,
        actor=call.actor,
    )
    return sp_out(sp)


@operation("GET", "/saml-sps/<sp_id>", summary="Read a SAML service provider", tag=TAG,
           response=ServiceProviderOut, etag=True, errors=(404,))  # fmt: skip
def get_saml_sp(call: Call, sp_id: str) -> ServiceProviderOut:
    return sp_out(sp_of(call, sp_id))


@operation("PATCH", "/saml-sps/<sp_id>", summary="Change a SAML service provider's settings",
           tag=TAG, body=ServiceProviderChange, response=ServiceProviderOut, etag=True,
           errors=(404, 412))  # fmt: skip
def patch_saml_sp(call: Call, sp_id: str, body: ServiceProviderChange) -> Reply:
    sp = sp_of(call, sp_id)
    call.if_match(sp_out(sp))
    saml_sps.update_sp(call.s, call.tenant, sp, body.model_dump(exclude_none=True), call.actor)
    return Reply(sp_out(sp), etag=True)


@operation("DELETE", "/saml-sps/<sp_id>", summary="Delete a SAML service provider", tag=TAG,
           status=204, errors=(404, 412))  # fmt: skip
def delete_saml_sp(call: Call, sp_id: str) -> Reply:
    sp = sp_of(call, sp_id)
    call.if_match(sp_out(sp))
    saml_sps.delete_sp(call.s, call.tenant, sp, call.actor)
    return Reply(None, 204)


@operation("POST", "/saml-sps/<sp_id>/metadata", summary="Refresh a SAML service provider's "
           "endpoints and certificates from new metadata of the same entity", tag=TAG,
           body=ServiceProviderMetadata, response=ServiceProviderOut, etag=True,
           errors=(404,))  # fmt: skip
def refresh_saml_sp(call: Call, sp_id: str, body: ServiceProviderMetadata) -> Reply:
    sp = sp_of(call, sp_id)
    saml_sps.refresh_sp(call.s, call.tenant, sp, _xml(body.metadata), call.actor)
    return Reply(sp_out(sp), etag=True)
