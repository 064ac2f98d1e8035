"""RequestedAuthnContext comparisons (SAML 2.0 core 3.3.2.2.1) against assurance levels."""

from __future__ import annotations

import pytest

from idp.saml.contexts import LOA3, PPT, REFEDS_MFA, REFEDS_SFA, Requested
from idp.saml.errors import Unsatisfiable


def test_nothing_requested_states_the_level_reached() -> None:
    assert Requested().needed_level() == 0
    assert Requested().class_ref(1) == PPT and Requested().class_ref(2) == REFEDS_MFA


def test_exact_states_a_requested_class_the_level_meets() -> None:
    r = Requested((REFEDS_MFA,), "exact")
    assert r.needed_level() == 2 and r.class_ref(2) == REFEDS_MFA and r.class_ref(3) == REFEDS_MFA
    with pytest.raises(Unsatisfiable):
        r.class_ref(1)


def test_minimum_better_and_maximum() -> None:
    assert Requested((PPT,), "minimum").needed_level() == 1
    assert Requested((PPT,), "minimum").class_ref(2) == REFEDS_MFA
    better = Requested((REFEDS_SFA,), "better")
    assert better.needed_level() == 2 and better.class_ref(2) == REFEDS_MFA
    with pytest.raises(Unsatisfiable):
        better.class_ref(1)
    with pytest.raises(Unsatisfiable):
        Requested((LOA3,), "better").needed_level()
    maximum = Requested((REFEDS_MFA,), "maximum")
    assert maximum.needed_level() == 1
    assert maximum.class_ref(3) == REFEDS_MFA and maximum.class_ref(1) == PPT


def test_unknown_classes_cannot_be_met() -> None:
    with pytest.raises(Unsatisfiable):
        Requested(("urn:example:unknown",), "exact").needed_level()
