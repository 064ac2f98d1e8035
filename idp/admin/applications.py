"""Console: applications (OpenID Connect clients and SAML service providers).

Every page calls the operations the CLI and the admin API call (idp.oidc.clients,
idp.saml.sps), which validate, audit with the acting admin and raise DirectoryError with the
message shown here. A client secret is shown once, in the answer to the POST that made it
(never flashed: it would be stored in the session), and that answer is never cached.
"""

from __future__ import annotations

from typing import Any

from flask import abort, g, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session

from idp.admin.console import Confirmation, actor, back_to, bp, confirm, done
from idp.directory import DirectoryError
from idp.oidc import acr
from idp.oidc import clients as oidc_clients
from idp.saml import keys as saml_keys
from idp.saml import sps as saml_sps
from idp.saml.metadata import NAMEID_FORMATS
from idp.services import services
from idp.store.models import Client, ServiceProvider, Tenant
from idp.tenancy import current_tenant, tenant_in
from idp.untrusted import SQL_INT_MAX, ascii_int

NAMEID_LABELS = {
    "persistent": "Persistent (pairwise per SP)",
    "email": "Email address",
    "transient": "Transient",
    "unspecified": "Username",
}
GRANT_LABELS = {
    "authorization_code": "Authorization code (users sign in)",
    "refresh_token": "Refresh tokens",
    "client_credentials": "Client credentials (the client acts for itself)",
}
ATTRIBUTE_LABELS = {
    "username": "Username (uid)",
    "email": "Email (mail)",
    "role": "Role (urn:stepwise:attribute:role)",
    "displayName": "Display name (displayName)",
    "givenName": "Given name (givenName)",
    "sn": "Family name (sn)",
    "mail": "Email, by its schema name (mail; the same attribute as Email)",
    "memberOf": "Groups: the role (eduPerson isMemberOf)",
}
# Pages that take SP metadata may receive up to 256 KiB of it, above the app's form limit.
METADATA_PAGES = ("admin.sp_new", "admin.sp_add", "admin.sp_refresh_page", "admin.sp_refresh")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# An SP id in a URL: a 32-bit SQL integer, so a larger number is a 404, never a database error.
SP_ID = f"<int(max={SQL_INT_MAX}):sp_id>"


@bp.url_value_preprocessor
def _metadata_limit(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Raise the body limit for the metadata pages only, before anything reads the form
    (url_value_preprocessors run before the app's before_request functions)."""
    if endpoint in METADATA_PAGES:
        request.max_content_length = saml_sps.MAX_METADATA + 64 * 1024


@bp.get("/applications")
def applications() -> ResponseReturnValue:
    with services().db.session() as s:
        tenant = current_tenant()
        return render_template(
            "admin/applications.html",
            clients=oidc_clients.list_clients(s, tenant),
            service_providers=saml_sps.list_sps(s, tenant),
            nameids=NAMEID_LABELS,
            metadata_url=url_for("saml.metadata"),
            nameid_key=saml_sps.nameid_key,
        )


# --- OpenID Connect clients -------------------------------------------------------------------
def _client(s: Session, tenant: Tenant, client_id: str) -> Client:
    found = oidc_clients.find_client(s, tenant, client_id[:64])
    if found is None:
        abort(404)
    return found


def _lines(name: str) -> list[str]:
    """A textarea of one value per line (blank lines ignored)."""
    return [line.strip() for line in request.form.get(name, "").splitlines() if line.strip()]


def _seconds(name: str, label: str) -> int:
    value = ascii_int(request.form.get(name, "").strip(), 9)
    if value is None:
        raise DirectoryError(f"The {label} must be a whole number of seconds.")
    return value


def _level() -> int:
    raw = request.form.get("min_level", "0")
    if raw not in ("0", "1", "2", "3"):
        raise DirectoryError("The minimum level must be 0, 1, 2 or 3.")
    return int(raw)


def _checked(name: str) -> bool:
    return request.form.get(name) == "on"


def _client_form() -> dict[str, Any]:
    """Every setting of a client as the form sends it (idp.oidc.clients.FIELDS)."""
    if g.get("form_not_text"):
        raise DirectoryError("The form contains characters that are not text.")
    kind = request.form.get("kind", "")
    if kind not in ("public", "confidential"):
        raise DirectoryError("Choose whether the client is public or confidential.")
    return {
        "name": request.form.get("name", "")[:1000],
        "redirect_uris": _lines("redirect_uris"),
        "post_logout_redirect_uris": _lines("post_logout_redirect_uris"),
        "public": kind == "public",
        "first_party": request.form.get("party") != "third",
        "admin_api": _checked("admin_api"),
        "grant_types": request.form.getlist("grant_types"),
        "min_level": _level(),
        "default_acr_values": _lines("default_acr_values"),
        "access_token_lifetime": _seconds("access_token_lifetime", "access-token lifetime"),
        "refresh_lifetime": _seconds("refresh_lifetime", "refresh-token lifetime"),
        "refresh_idle_lifetime": _seconds("refresh_idle_lifetime", "refresh-token idle lifetime"),
        "id_token_alg": request.form.get("id_token_alg", ""),
    }


def _client_echo() -> dict[str, Any]:
    """The client form's values as sent, unvalidated: to show the form again."""
    form = request.form
    return {
        "name": form.get("name", "")[:200],
        "redirect_uris": _lines("redirect_uris")[:50],
        "post_logout_redirect_uris": _lines("post_logout_redirect_uris")[:50],
        "public": form.get("kind") == "public",
        "first_party": form.get("party") != "third",
        "admin_api": _checked("admin_api"),
        "grant_types": form.getlist("grant_types"),
        "min_level": form.get("min_level", "0")[:2],
        "default_acr_values": _lines("default_acr_values")[:20],
        **{
            f: form.get(f, "")[:12]
            for f in ("access_token_lifetime", "refresh_lifetime", "refresh_idle_lifetime")
        },
        "id_token_alg": form.get("id_token_alg", ""),
    }


def _client_page(template: str, **context: Any) -> str:
    tenant = current_tenant()
    return render_template(
        template,
        grants=GRANT_LABELS,
        acr_values=sorted(acr.table(tenant.acr_levels).items(), key=lambda kv: (kv[1], kv[0])),
        limits={
            "access": (oidc_clients.MIN_ACCESS_LIFETIME, oidc_clients.MAX_ACCESS_LIFETIME),
            "refresh": oidc_clients.MAX_REFRESH_LIFETIME,
        },
        **context,
    )


def _shown_once(reg: oidc_clients.Registered, title: str) -> ResponseReturnValue:
    """The page that shows a new secret: the answer to the POST itself, never cached."""
    body = render_template(
        "admin/client_secret.html",
        client=reg.client,
        secret=reg.client_secret,
        title=title,
    )
    return body, 200, NO_STORE


@bp.get("/clients/new")
def client_new() -> ResponseReturnValue:
    defaults = {
        "name": "",
        "redirect_uris": [],
        "post_logout_redirect_uris": [],
        "public": False,
        "first_party": True,
        "admin_api": False,
        "grant_types": ["authorization_code", "refresh_token"],
        "min_level": 0,
        "default_acr_values": [],
        "access_token_lifetime": oidc_clients.ACCESS_LIFETIME,
        "refresh_lifetime": oidc_clients.REFRESH_LIFETIME,
        "refresh_idle_lifetime": oidc_clients.REFRESH_IDLE,
        "id_token_alg": "RS256",
    }
    return _client_page("admin/client_new.html", c=defaults)


@bp.post("/clients/new")
def client_create() -> ResponseReturnValue:
    try:
        return _client_create()
    except DirectoryError as exc:  # the form again, as sent, with the reason
        page = _client_page("admin/client_new.html", c=_client_echo(), message=exc.message)
        return page, 400


def _client_create() -> ResponseReturnValue:
    form = _client_form()
    svc = services()
    with svc.db.session() as s:
        tenant = tenant_in(s)
        reg = oidc_clients.create_client(
            s,
            tenant,
            form["name"],
            form["redirect_uris"],
            public=form["public"],
            post_logout_redirect_uris=form["post_logout_redirect_uris"],
            first_party=form["first_party"],
            min_level=form["min_level"],
            id_token_alg=form["id_token_alg"],
            admin_api=form["admin_api"],
            default_acr_values=form["default_acr_values"],
            refresh_lifetime=form["refresh_lifetime"],
            refresh_idle=form["refresh_idle_lifetime"],
            grant_types=form["grant_types"],
            access_token_lifetime=form["access_token_lifetime"],
            actor=actor(),
        )
    if reg.client_secret is not None:  # shown after the commit, so it is one that works
        return _shown_once(reg, f"Client {reg.client.name} created")
    return done(f"Client {reg.client.name} created.", _client_url(reg.client))


def _client_url(client: Client) -> str:
    return url_for(".client_page", client_id=client.client_id)


@bp.get("/clients/<client_id>")
def client_page(client_id: str) -> ResponseReturnValue:
    with services().db.session() as s:
        client = _client(s, current_tenant(), client_id)
        return _client_page("admin/client.html", client=client, c=oidc_clients.settings_of(client))


@bp.post("/clients/<client_id>")
def client_update(client_id: str) -> ResponseReturnValue:
    try:
        with services().db.session() as s:
            tenant = tenant_in(s)
            client = _client(s, tenant, client_id)
            reg = oidc_clients.update_client(s, tenant, client, _client_form(), actor())
    except DirectoryError as exc:  # rolled back; the form again, as sent, with the reason
        with services().db.session() as s:
            client = _client(s, current_tenant(), client_id)
            page = _client_page(
                "admin/client.html", client=client, c=_client_echo(), message=exc.message
            )
        return page, 400
    if reg.client_secret is not None:  # made confidential: its first secret
        return _shown_once(reg, f"Client {client.name} is now confidential")
    return done(f"Client {client.name} saved.", _client_url(client))


@bp.get("/clients/<client_id>/secret")
def client_rotate_page(client_id: str) -> ResponseReturnValue:
    with services().db.session() as s:
        client = _client(s, current_tenant(), client_id)
        return confirm(
            Confirmation(
                title=f"Rotate the secret of {client.name}",
                consequences=[
                    "A new secret is made and shown to you once.",
                    "The old secret stops working at once: the application cannot get "
                    "tokens until it is given the new one.",
                    "Tokens already issued keep working until they expire.",
                ],
                button="Rotate the secret",
                action=url_for(".client_rotate", client_id=client.client_id),
                cancel=_client_url(client),
            )
        )


@bp.post("/clients/<client_id>/secret")
def client_rotate(client_id: str) -> ResponseReturnValue:
    with services().db.session() as s:
        tenant = tenant_in(s)
        client = _client(s, tenant, client_id)
        back_to(_client_url(client))
        reg = oidc_clients.rotate_secret(s, tenant, client, actor())
    return _shown_once(reg, f"New secret for {client.name}")


@bp.get("/clients/<client_id>/delete")
def client_delete_page(client_id: str) -> ResponseReturnValue:
    with services().db.session() as s:
        client = _client(s, current_tenant(), client_id)
        return confirm(
            Confirmation(
                title=f"Delete the client {client.name}",
                consequences=[
                    f"The client {client.client_id} is removed: nobody can sign in to it "
                    "through this identity provider any more.",
                    "Its refresh tokens stop working; its access tokens are refused by "
                    "introspection and UserInfo.",
                    "Users signed in through it stay signed in here.",
                ],
                button="Delete the client",
                action=url_for(".client_delete", client_id=client.client_id),
                cancel=_client_url(client),
            )
        )


@bp.post("/clients/<client_id>/delete")
def client_delete(client_id: str) -> ResponseReturnValue:
    with services().db.session() as s:
        tenant = tenant_in(s)
        client = _client(s, tenant, client_id)
        back_to(_client_url(client))
        name = client.name
        ended = oidc_clients.delete_client(s, tenant, client, actor())
    tokens = f" {ended} token families ended." if ended else ""
    return done(f"Client {name} deleted.{tokens}", url_for(".applications"))


# --- SAML service providers -------------------------------------------------------------------
def _sp(s: Session, tenant: Tenant, sp_id: int) -> ServiceProvider:
    found = saml_sps.find_sp_by_id(s, tenant, sp_id)
    if found is None:
        abort(404)
    return found


def _sp_url(sp: ServiceProvider) -> str:
    return url_for(".sp_page", sp_id=sp.id)


def _metadata() -> bytes:
    """The metadata pasted or uploaded (one of the two), at most 256 KiB."""
    limit = saml_sps.MAX_METADATA
    upload = request.files.get("metadata_file")
    data = upload.stream.read(limit + 1) if upload is not None and upload.filename else b""
    pasted = request.form.get("metadata", "").strip()
    if data and pasted:
        raise DirectoryError("Paste the metadata or choose its file, not both.")
    if not data and not pasted:
        raise DirectoryError("Paste the service provider's SAML metadata or choose its file.")
    if len(data) > limit or len(pasted) > limit:
        raise DirectoryError(f"The metadata is larger than {limit // 1024} KiB.")
    return data or pasted.encode()


def _sp_form() -> dict[str, Any]:
    """The settings of an SP as the form sends them (idp.saml.sps.FIELDS)."""
    if g.get("form_not_text"):
        raise DirectoryError("The form contains characters that are not text.")
    return {
        "name": request.form.get("name", "")[:1000],
        "nameid": request.form.get("nameid", ""),
        "attributes": request.form.getlist("attributes"),
        "min_level": _level(),
        "sign_response": _checked("sign_response"),
        "encrypt_assertion": _checked("encrypt_assertion"),
    }


def _sp_echo() -> dict[str, Any]:
    """The SP form's values as sent, unvalidated: to show the form again."""
    return {
        "name": request.form.get("name", "")[:200],
        "nameid": request.form.get("nameid", ""),
        "attributes": request.form.getlist("attributes"),
        "min_level": request.form.get("min_level", "0")[:2],
        "sign_response": _checked("sign_response"),
        "encrypt_assertion": _checked("encrypt_assertion"),
    }


def _sp_page(template: str, **context: Any) -> str:
    return render_template(
        template,
        nameids=NAMEID_LABELS,
        attribute_labels=ATTRIBUTE_LABELS,
        max_kib=saml_sps.MAX_METADATA // 1024,
        **context,
    )


@bp.get("/sps/new")
def sp_new() -> ResponseReturnValue:
    defaults = {
        "name": "",
        "nameid": "persistent",
        "attributes": list(saml_sps.DEFAULT_ATTRIBUTES),
        "min_level": 0,
        "sign_response": False,
        "encrypt_assertion": False,
    }
    return _sp_page("admin/sp_new.html", c=defaults)


@bp.post("/sps/new")
def sp_add() -> ResponseReturnValue:
    """Register a SAML service provider from its metadata (like ``idp sp add``)."""
    try:
        return _sp_add()
    except DirectoryError as exc:  # the form again, as sent (but a file), with the reason
        pasted = request.form.get("metadata", "")[: saml_sps.MAX_METADATA]
        page = _sp_page("admin/sp_new.html", c=_sp_echo(), pasted=pasted, message=exc.message)
        return page, 400


def _sp_add() -> ResponseReturnValue:
    form, metadata = _sp_form(), _metadata()
    svc = services()
    with svc.db.session() as s:
        tenant = tenant_in(s)
        saml_keys.ensure_key(s, svc.cipher, tenant, actor())
        sp = saml_sps.add_sp(
            s,
            tenant,
            metadata,
            name=form["name"],
            nameid=form["nameid"],
            sign_response=form["sign_response"],
            encrypt=form["encrypt_assertion"],
            min_level=form["min_level"],
            attributes=form["attributes"],
            actor=actor(),
        )
        message, url = f"Service provider {sp.entity_id} added.", _sp_url(sp)
    return done(message, url)


@bp.get(f"/sps/{SP_ID}")
def sp_page(sp_id: int) -> ResponseReturnValue:
    with services().db.session() as s:
        sp = _sp(s, current_tenant(), sp_id)
        return _sp_details(sp, saml_sps.settings_of(sp))


def _sp_details(sp: ServiceProvider, values: dict[str, Any], message: str | None = None) -> str:
    return _sp_page(
        "admin/sp.html",
        sp=sp,
        c=values,
        certificates=saml_sps.certificates(sp),
        formats={v: NAMEID_LABELS[k] for k, v in NAMEID_FORMATS.items()},
        message=message,
    )


@bp.post(f"/sps/{SP_ID}")
def sp_update(sp_id: int) -> ResponseReturnValue:
    try:
        with services().db.session() as s:
            tenant = tenant_in(s)
            sp = _sp(s, tenant, sp_id)
            saml_sps.update_sp(s, tenant, sp, _sp_form(), actor())
    except DirectoryError as exc:  # rolled back; the form again, as sent, with the reason
        with services().db.session() as s:
            page = _sp_details(_sp(s, current_tenant(), sp_id), _sp_echo(), exc.message)
        return page, 400
    return done(f"Service provider {sp.name} saved.", _sp_url(sp))


@bp.get(f"/sps/{SP_ID}/metadata")
def sp_refresh_page(sp_id: int) -> ResponseReturnValue:
    with services().db.session() as s:
        return _sp_page("admin/sp_refresh.html", sp=_sp(s, current_tenant(), sp_id))


@bp.post(f"/sps/{SP_ID}/metadata")
def sp_refresh(sp_id: int) -> ResponseReturnValue:
    back_to(url_for(".sp_refresh_page", sp_id=sp_id))
    with services().db.session() as s:
        tenant = tenant_in(s)
        sp = _sp(s, tenant, sp_id)
        saml_sps.refresh_sp(s, tenant, sp, _metadata(), actor())
        message = f"Service provider {sp.name} refreshed from its new metadata."
        url = _sp_url(sp)
    return done(message, url)


@bp.get(f"/sps/{SP_ID}/delete")
def sp_delete_page(sp_id: int) -> ResponseReturnValue:
    with services().db.session() as s:
        sp = _sp(s, current_tenant(), sp_id)
        return confirm(
            Confirmation(
                title=f"Delete the service provider {sp.name}",
                consequences=[
                    f"{sp.entity_id} is removed: its sign-in requests are refused from now "
                    "on, and it leaves the users' application lists.",
                    "Users signed in through it stay signed in here and at the service "
                    "provider until either ends the session.",
                    "Adding it again later gives its users the same persistent NameIDs.",
                ],
                button="Delete the service provider",
                action=url_for(".sp_delete", sp_id=sp.id),
                cancel=_sp_url(sp),
            )
        )


@bp.post(f"/sps/{SP_ID}/delete")
def sp_delete(sp_id: int) -> ResponseReturnValue:
    with services().db.session() as s:
        tenant = tenant_in(s)
        sp = _sp(s, tenant, sp_id)
        back_to(_sp_url(sp))
        entity_id = sp.entity_id
        saml_sps.delete_sp(s, tenant, sp, actor())
    return done(f"Service provider {entity_id} deleted.", url_for(".applications"))
