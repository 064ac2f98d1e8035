"""The factor registry (factors.kinds): each kind declared completely, every derived list agrees."""

from __future__ import annotations

import json
import typing

import pytest

from factors import codes, kinds
from factors import webauthn_rp as wa
from flows.policy import SECOND_FACTORS, Request, TenantPolicy
from flows.second_factor import enrolment_kinds
from flows.state import FlowState

RFC_8176 = {"face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin", "pop",
            "pwd", "rba", "retina", "sc", "sms", "swk", "tel", "user", "vbm", "wia"}  # fmt: skip
# DESIGN.md "Login pages": the values a choice of factor may post.
FORM_VALUES = {"totp", "webauthn", "passkey", "sms", "email", "backup"}


@pytest.mark.parametrize("kind", list(kinds.KINDS.values()), ids=lambda k: k.name)
def test_each_kind_is_declared_completely(kind: kinds.Kind) -> None:
    assert kinds.KINDS[kind.name] is kind
    assert kind.label and kind.label == kind.label.strip()
    assert kind.amr and set(kind.amr) <= RFC_8176
    assert kind.needs_sender == bool(kind.contact_field) == (kind.name in codes.BY_KIND)
    assert kind.challenge in (None, codes.Challenge, wa.Nonce)
    if kind.variant_of:
        assert kinds.KINDS[kind.variant_of].allowable and not kind.allowable
        assert kind.phishing_resistant == kinds.KINDS[kind.variant_of].phishing_resistant


def test_every_form_value_is_a_kind_and_labels_are_distinct() -> None:
    assert FORM_VALUES <= set(kinds.KINDS)
    labels = [k.label for k in kinds.KINDS.values()]
    assert len(set(labels)) == len(labels)


def test_webauthn_reports_only_declared_amr_values() -> None:
    for synced in (False, True):
        for uv in (False, True):
            assert set(wa.amr_for(synced, uv)) <= set(kinds.KINDS["webauthn"].amr)


def test_derived_lists_agree_with_the_registry() -> None:
    assert SECOND_FACTORS == kinds.ALLOWABLE == ("totp", "webauthn", "sms", "email")
    assert kinds.PHISHING_RESISTANT == ("webauthn",)
    everything = TenantPolicy(enrollable=kinds.ALLOWABLE)
    assert set(enrolment_kinds(everything)) == FORM_VALUES - {"backup"}
    assert enrolment_kinds(everything, phishing_resistant=True) == ("webauthn", "passkey")
    assert kinds.stored_as("passkey") == "webauthn" and kinds.stored_as("sms") == "sms"


def test_each_challenge_class_has_a_typed_slot_in_the_flow_state() -> None:
    hints = typing.get_type_hints(FlowState)
    slots = {c for h in hints.values() for c in typing.get_args(h)}
    declared = {k.challenge for k in kinds.KINDS.values() if k.challenge is not None}
    assert declared == {codes.Challenge, wa.Nonce} and declared <= slots


def test_challenges_round_trip_and_an_old_shared_dict_is_ignored() -> None:
    state = FlowState("f1", "acme", Request(), 100, "/done")
    _, state.sent_code = codes.issue("+16502530000", 100)
    state.webauthn_challenge = wa.Nonce.new()
    again = FlowState.from_json(state.to_json())
    assert again.sent_code == state.sent_code
    assert again.webauthn_challenge == state.webauthn_challenge
    old = json.loads(FlowState("f2", "acme", Request(), 100, "/done").to_json())
    del old["sent_code"], old["webauthn_challenge"]
    old["challenge"] = {"d": "ab", "k": "cd", "t": "ef", "s": 100, "wa": "AAAA"}
    loaded = FlowState.from_json(json.dumps(old))
    assert loaded.sent_code is None and loaded.webauthn_challenge is None
