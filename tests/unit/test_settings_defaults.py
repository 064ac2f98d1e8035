"""Every default is written once, in ``idp/config/defaults.toml`` (issue 13); ``Settings`` only
declares the names and types, and ``load`` refuses a file that lacks a default or names an
unknown setting."""

from __future__ import annotations

import tomllib
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from idp.settings import DEFAULTS_FILE, Settings, SettingsError, load


def test_the_settings_class_writes_no_default() -> None:
    assert [f.name for f in fields(Settings) if f.default is not MISSING] == []


def test_the_defaults_file_gives_every_setting_its_type() -> None:
    in_file = tomllib.loads(DEFAULTS_FILE.read_text())
    declared = {f.name: f.type for f in fields(Settings)}
    assert set(in_file) == set(declared)
    assert {k: type(v).__name__ for k, v in in_file.items()} == declared
    assert load(environ={}).flow_ttl == in_file["flow_ttl"]


def test_a_missing_or_unknown_default_is_refused(tmp_path: Path) -> None:
    text = DEFAULTS_FILE.read_text()
    short = tmp_path / "short.toml"
    short.write_text(text.replace("flow_ttl = ", "# flow_ttl = "))
    with pytest.raises(SettingsError, match=r"no default .* for: flow_ttl"):
        load(environ={}, defaults=short)
    extra = tmp_path / "extra.toml"
    extra.write_text(text + "\nflow_tll = 5\n")
    with pytest.raises(SettingsError, match=r"unknown setting.*flow_tll"):
        load(environ={}, defaults=extra)
