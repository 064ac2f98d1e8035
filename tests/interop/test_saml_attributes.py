"""The profile's SAML attributes, chosen per SP (``idp sp add --attributes``), as real SP
libraries read them from our signed assertions: pysaml2 maps them by their urn:oid names to
its friendly names, python3-saml gives them by Name and by FriendlyName. Empty values are not
sent, and each attribute is sent once."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree

from testkit import servers
from tests import cli_support
from tests.conftest import PASSWORD
from tests.interop.profile_support import ALICE, set_profile
from tests.interop.saml_helpers import saml_login
from tests.interop.test_saml_sps import (
    ACS,
    Idp,
    onelogin_metadata,
    onelogin_request,
    onelogin_settings,
    pysaml2_config,
)

PROFILE = "displayName,givenName,sn,mail,memberOf,email,username,role"
URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
SAML = "{urn:oasis:names:tc:SAML:2.0:assertion}"
NAMES = {
    "urn:oid:2.16.840.1.113730.3.1.241": "displayName",
    "urn:oid:2.5.4.42": "givenName",
    "urn:oid:2.5.4.4": "sn",
    "urn:oid:0.9.2342.19200300.100.1.3": "mail",
    "urn:oid:1.3.6.1.4.1.5923.1.5.1.1": "isMemberOf",
    "urn:oid:0.9.2342.19200300.100.1.1": "uid",
    "urn:stepwise:attribute:role": "role",
}


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    tmp = tmp_path_factory.mktemp("saml-attributes")
    env = servers.idp_env(tmp / "instance")
    cli_support.seed(env, "acme", "alice", PASSWORD)
    cli_support.add_user(env, "acme", "bob", PASSWORD)  # no names: those attributes stay out
    set_profile(env, "alice", **ALICE)
    with servers.live_idp(env) as base:
        env = {**env, "IDP_BASE_URL": base}
        meta = requests.get(f"{base}/t/acme/saml/metadata", timeout=10)
        assert meta.status_code == 200
        found = Idp(base, f"{base}/t/acme/saml/metadata", meta.text, env, tmp)
        from saml2.metadata import create_metadata_string

        sp_meta = tmp / "pysaml2.xml"
        sp_meta.write_bytes(create_metadata_string(None, config=pysaml2_config(found)))
        add(env, sp_meta, "--attributes", PROFILE)
        ol_meta = tmp / "onelogin.xml"
        ol_meta.write_text(onelogin_metadata(found))
        add(env, ol_meta, "--attributes", "givenName,sn,memberOf", "--sign-response")
        yield found


def add(env: dict[str, str], metadata: Path, *options: str) -> None:
    added = cli_support.idp(env, "sp", "add", "acme", "--metadata", str(metadata), *options)
    assert added.returncode == 0, added.stderr


def statement(saml_response: str) -> dict[str, tuple[str | None, str | None, list[str]]]:
    """The assertion's attributes by Name: (NameFormat, FriendlyName, values), as sent."""
    root = etree.fromstring(base64.b64decode(saml_response))
    found: dict[str, tuple[str | None, str | None, list[str]]] = {}
    for attr in root.iter(f"{SAML}Attribute"):
        name = attr.get("Name", "")
        assert name not in found, f"{name} sent twice"
        values = [v.text or "" for v in attr.iter(f"{SAML}AttributeValue")]
        found[name] = (attr.get("NameFormat"), attr.get("FriendlyName"), values)
    return found


def test_pysaml2_reads_every_profile_attribute_by_its_usual_name(idp: Idp) -> None:
    from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client

    client = Saml2Client(config=pysaml2_config(idp))
    req_id, info = client.prepare_for_authenticate(
        entityid=idp.entity_id, binding=BINDING_HTTP_REDIRECT
    )
    acs, fields = saml_login(requests.Session(), dict(info["headers"])["Location"])
    assert acs == ACS
    sent = statement(fields["SAMLResponse"])
    assert {n: (fmt, friendly) for n, (fmt, friendly, _) in sent.items()} == {
        n: (URI, f) for n, f in NAMES.items()
    }
    parsed = client.parse_authn_request_response(
        fields["SAMLResponse"], BINDING_HTTP_POST, outstanding={req_id: "/"}
    )
    assert parsed is not None and parsed.in_response_to == req_id
    assert parsed.get_identity() == {
        "displayName": ["Alice Liddell"],
        "givenName": ["Alice"],
        "sn": ["Liddell"],
        "mail": ["alice@acme.test"],  # "email" and "mail" both chosen: sent once
        "isMemberOf": ["member"],
        "uid": ["alice"],
    }  # role (our own urn:stepwise name) is in no attribute map of pysaml2's: it drops it
    assert sent["urn:stepwise:attribute:role"][2] == ["member"]


def test_python3_saml_gets_only_the_chosen_attributes_and_no_empty_ones(idp: Idp) -> None:
    from onelogin.saml2.auth import OneLogin_Saml2_Auth

    def login(username: str) -> OneLogin_Saml2_Auth:
        start = OneLogin_Saml2_Auth(onelogin_request(), onelogin_settings(idp))
        _, fields = saml_login(requests.Session(), start.login(), username)
        sp = OneLogin_Saml2_Auth(onelogin_request(fields), onelogin_settings(idp))
        sp.process_response(request_id=start.get_last_request_id())
        assert sp.get_errors() == [], sp.get_last_error_reason()
        return sp

    alice = login("alice")
    assert alice.get_attributes() == {
        "urn:oid:2.5.4.42": ["Alice"],
        "urn:oid:2.5.4.4": ["Liddell"],
        "urn:oid:1.3.6.1.4.1.5923.1.5.1.1": ["member"],
    }
    assert alice.get_friendlyname_attributes() == {
        "givenName": ["Alice"], "sn": ["Liddell"], "isMemberOf": ["member"]}  # fmt: skip
    bob = login("bob")
    assert bob.get_attributes() == {"urn:oid:1.3.6.1.4.1.5923.1.5.1.1": ["member"]}


def test_the_cli_names_the_attributes_it_accepts(idp: Idp, tmp_path: Path) -> None:
    result = cli_support.idp(idp.env, "sp", "add", "acme", "--metadata",
                         str(idp.tmp / "pysaml2.xml"), "--attributes", "salary")  # fmt: skip
    assert result.returncode == 2
    assert "displayName, givenName, sn, mail, memberOf" in result.stderr
