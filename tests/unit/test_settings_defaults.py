"""Every default is written twice, in ``Settings`` and in ``config/defaults.toml`` (issue 13):
until one is generated from the other, this test keeps them in step."""

from __future__ import annotations

import tomllib
from dataclasses import fields

from idp.settings import DEFAULTS_FILE, Settings


def test_the_defaults_file_and_the_settings_class_agree() -> None:
    in_file = tomllib.loads(DEFAULTS_FILE.read_text())
    declared = {f.name: f.default for f in fields(Settings)}
    assert in_file == declared
