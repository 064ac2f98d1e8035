from dataclasses import dataclass, field

import pytest

from factors.password import Argon2Params, PasswordFactor
from flows.context import VerifiedFactor, merge
from flows.engine import Engine
from flows.env import Subject
from flows.errors import UnmetAuthenticationRequirements
from flows.plan import Pending, plan
from flows.policy import MfaMode, Request, TenantPolicy, UserFacts
from flows.registry import registry
from flows.state import FlowState
from flows.throttle import Throttle
from idp.clock import SettableClock
from idp.ephemeral.memory import MemoryStore

PWD_OLD = VerifiedFactor("password", ("pwd",), 100)
PF = PasswordFactor(Argon2Params(memory_kib=8192, time_cost=1))


def test_unidentified_flow_asks_identify_then_password() -> None:
    assert plan(Request(), TenantPolicy(), None, False, []) == ["identify", "password"]


def test_session_at_level_one_needs_nothing_more() -> None:
    assert plan(Request(started_at=500), TenantPolicy(), UserFacts(), True, [PWD_OLD]) == []


def test_max_age_asks_only_for_the_password_again() -> None:
    req = Request(max_age=60, started_at=500)
    assert plan(req, TenantPolicy(), UserFacts(), True, [PWD_OLD]) == ["password"]


def test_second_factor_is_planned_only_after_the_password() -> None:
    policy = TenantPolicy(MfaMode.REQUIRED)
    enrolled = UserFacts(enrolled=("totp:1",))
    assert plan(Request(), policy, enrolled, True, []) == ["password"]
    assert plan(Request(), policy, enrolled, True, [PWD_OLD]) == ["verify_totp"]
    assert plan(Request(), policy, UserFacts(), True, [PWD_OLD]) == ["enroll"]
    with pytest.raises(UnmetAuthenticationRequirements):
        plan(Request(), TenantPolicy(MfaMode.REQUIRED, enrollable=()), UserFacts(), True, [PWD_OLD])


def test_several_factors_choose_unless_one_was_used_last() -> None:
    policy = TenantPolicy(MfaMode.REQUIRED)
    two = UserFacts(enrolled=("totp:1", "sms:2"), has_backup_codes=True)
    assert plan(Request(), policy, two, True, [PWD_OLD]) == ["choose"]
    last_sms = UserFacts(enrolled=("totp:1", "sms:2"), last_factor="sms:2")
    assert plan(Request(), policy, last_sms, True, [PWD_OLD]) == ["verify_sms"]
    backup = Pending(choice="backup")
    assert plan(Request(), policy, two, True, [PWD_OLD], backup) == ["verify_backup"]


def test_optional_offer_comes_back_after_the_interval() -> None:
    policy = TenantPolicy(MfaMode.OPTIONAL, reoffer_days=7)
    assert plan(Request(), policy, UserFacts(), True, [PWD_OLD], now=10**6) == ["offer"]
    skipped = UserFacts(skipped_offer_at=10**6)
    assert plan(Request(), policy, skipped, True, [PWD_OLD], now=10**6 + 86400) == []
    assert plan(Request(), policy, skipped, True, [PWD_OLD], now=10**6 + 7 * 86400) == ["offer"]


def test_policy_cap_keeps_an_old_session_at_its_login_policy() -> None:
    policy = TenantPolicy(MfaMode.REQUIRED)
    enrolled = UserFacts(enrolled=("totp:1",))
    assert plan(Request(), policy, enrolled, True, [PWD_OLD], policy_cap=1) == []
    app_wants_two = Request(app_min_level=2)
    assert plan(app_wants_two, policy, enrolled, True, [PWD_OLD], policy_cap=1) == ["verify_totp"]


@dataclass
class FakeEnv:
    """A test double of the web layer's Env: in-memory users, a real throttle and hasher."""

    now: int = 1000
    client_ip: str = "192.0.2.1"
    passwords: PasswordFactor = PF
    users: dict[str, Subject] = field(default_factory=dict)
    locked: list[int] = field(default_factory=list)
    store: MemoryStore = field(default_factory=lambda: MemoryStore(SettableClock().monotonic))

    def find_subject(self, tenant: str, user_id: int | None, username: str) -> Subject | None:
        return next(
            (u for u in self.users.values() if u.user_id == user_id), None
        ) or self.users.get(username)

    def throttle(self, scope: str) -> Throttle:
        return Throttle(self.store, scope)

    def lock_account(self, user_id: int) -> None:
        self.locked.append(user_id)

    def store_password_hash(self, user_id: int, encoded: str) -> None:
        raise AssertionError("not expected")


def make_engine() -> Engine:
    return Engine(
        registry(lambda _state: TenantPolicy()),
        lambda st: plan(st.request, TenantPolicy(), UserFacts(), st.identified, st.verified),
    )


def new_state() -> FlowState:
    return FlowState(
        id="f", tenant="t", request=Request(started_at=1000), created_at=1000, return_to="/"
    )


def test_one_form_runs_identify_and_password() -> None:
    env = FakeEnv(users={"ann": Subject(1, "ann", PF.hash("pw-of-ann!"), "active")})
    state = new_state()
    progress = make_engine().submit(
        state, "identify", {"username": " ANN ", "password": "pw-of-ann!"}, env
    )
    assert progress.finished
    assert state.user_id == 1 and [f.kind for f in state.verified] == ["password"]


def test_wrong_password_retries_with_generic_message_and_unknown_user_is_identical() -> None:
    env = FakeEnv(users={"ann": Subject(1, "ann", PF.hash("pw-of-ann!"), "active")})
    engine = make_engine()
    known, unknown = new_state(), new_state()
    a = engine.submit(known, "identify", {"username": "ann", "password": "nope-nope"}, env)
    b = engine.submit(unknown, "identify", {"username": "bob", "password": "nope-nope"}, env)
    assert a.result is not None and b.result is not None
    assert a.result.message == b.result.message == "Incorrect username or password."
    assert not known.identified  # the combined form comes back to fix a typo
    assert a.remaining == ["identify", "password"]


def test_stale_step_name_shows_the_current_step() -> None:
    progress = make_engine().submit(new_state(), "password", {"password": "x"}, FakeEnv())
    assert progress.remaining == ["identify", "password"] and progress.result is None


def test_disabled_account_fails_only_after_the_right_password() -> None:
    env = FakeEnv(users={"ann": Subject(1, "ann", PF.hash("pw-of-ann!"), "disabled")})
    wrong = make_engine().submit(
        new_state(), "identify", {"username": "ann", "password": "bad-pw-1"}, env
    )
    assert wrong.result is not None and wrong.result.message == "Incorrect username or password."
    right = make_engine().submit(
        new_state(), "identify", {"username": "ann", "password": "pw-of-ann!"}, env
    )
    assert right.failed


def test_merge_keeps_newest_per_kind() -> None:
    newer = VerifiedFactor("password", ("pwd",), 200)
    assert merge([PWD_OLD], newer) == [newer]


def test_flow_state_round_trips() -> None:
    state = new_state()
    state.verified.append(PWD_OLD)
    assert FlowState.from_json(state.to_json()) == state
