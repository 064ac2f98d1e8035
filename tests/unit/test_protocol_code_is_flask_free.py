"""The protocol code of ``idp/oidc`` and ``idp/saml`` loads no Flask, directly or through what
it imports: only their web modules do (issue 13; ruff's per-folder rule sees direct imports
only, this sees the whole chain)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = {"idp.oidc.browser", "idp.oidc.endpoints", "idp.oidc.current", "idp.oidc.api_routes"}


def protocol_modules() -> list[str]:
    names = []
    for package in ("oidc", "saml"):
        for path in sorted((ROOT / "idp" / package).glob("*.py")):
            name = f"idp.{package}.{path.stem}".removesuffix(".__init__")
            if name not in WEB:
                names.append(name)
    return names


def flask_loaded_by(modules: list[str]) -> bool:
    code = f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
    code += "print('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def test_protocol_modules_load_no_flask() -> None:
    modules = protocol_modules()
    assert len(modules) > 15 and "idp.saml.response" in modules and "idp.oidc.id_token" in modules
    assert not flask_loaded_by(modules)


def test_the_check_sees_flask() -> None:
    assert flask_loaded_by(["idp.oidc.current"])
