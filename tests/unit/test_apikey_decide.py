"""The MilvusAPIKey decisions, table-tested: spec parsing, who may mint for whom, the key plan
(issue, rotate, retire, remove), what proxies must drop, and the status it reports."""

from __future__ import annotations

import dataclasses

import pytest

from milvus_auth.core.apikeys import ApiKey, ApiKeyRecord, generate_api_key
from milvus_auth.core.grants import GrantTarget
from milvus_auth.core.privileges import ObjectType
from milvus_auth.core.snapshot import PolicySnapshot, StoredGrant
from milvus_auth.operator.apikeys.decide import (
    Issue,
    KeyPlan,
    SecretView,
    check_spec,
    key_privileges,
    new_record,
    plan_keys,
    retired,
    secret_conflict,
    to_invalidate,
)
from milvus_auth.operator.apikeys.report import (
    KeyState,
    key_outcome,
    key_status,
    next_due,
    timestamp,
)
from milvus_auth.operator.apikeys.spec import ApiKeySpec
from milvus_auth.operator.notify import FanOut
from milvus_auth.operator.permissions import Permissions, Privilege
from milvus_auth.operator.status import Reason
from milvus_auth.store.claims import Claim

NOW = 1_800_000_000
HOUR = 3600


def spec(**changes: object) -> ApiKeySpec:
    return dataclasses.replace(ApiKeySpec("team", "etl", "uid-etl", 1, "etl"), **changes)  # type: ignore[arg-type]


def issued(key: ApiKey, *, at: int = NOW - HOUR, expires: int | None = None) -> ApiKeyRecord:
    return (
        new_record(spec(), key, now=at)
        if expires is None
        else dataclasses.replace(new_record(spec(), key, now=at), expires_at=expires)
    )


def holding(key: ApiKey, rotation: str = "") -> SecretView:
    return SecretView(exists=True, owned=True, rotation=rotation, key=key)


def test_body_parsing_reads_durations_and_reports_bad_ones() -> None:
    body = {
        "metadata": {"namespace": "team", "name": "etl", "uid": "u", "generation": 2},
        "spec": {
            "username": "etl",
            "expiresAfter": "720h",
            "rotation": "2026-12",
            "rotationGracePeriod": "1h30m",
            "rotateEvery": "90s",
            "secretTemplate": {"labels": {"a": "b"}, "annotations": "junk"},
        },
    }
    parsed = ApiKeySpec.from_body(body)
    assert (parsed.expires_after, parsed.grace, parsed.rotate_every) == (720 * HOUR, 5400, 90)
    assert (parsed.rotation, parsed.secret_labels, parsed.secret_annotations) == (
        "2026-12",
        {"a": "b"},
        {},
    )
    assert parsed.owner == "team/etl"
    assert parsed.secret_name == "etl-milvus-api-key"
    assert check_spec(parsed) is None
    defaults = ApiKeySpec.from_body({"metadata": {}, "spec": {"username": "etl"}})
    assert (defaults.expires_after, defaults.grace, defaults.rotate_every) == (None, HOUR, None)
    bad = ApiKeySpec.from_body({"spec": {"username": "etl", "expiresAfter": "30d"}})
    assert check_spec(bad) == (
        "spec.expiresAfter: expected a positive duration such as 720h or 1h30m, got '30d'"
    )
    assert check_spec(spec(username=" etl")) is not None
    assert check_spec(spec(username="")) is not None
    assert check_spec(spec(username="9lives")) is not None  # Milvus's username rules


def _snapshot(bindings: frozenset[tuple[str, str]] = frozenset()) -> PolicySnapshot:
    ops = StoredGrant(
        GrantTarget("ops", ObjectType.GLOBAL, "*", "*"), "PrivilegeGroupClusterAdmin", "root"
    )
    reader = StoredGrant(
        GrantTarget("reader", ObjectType.COLLECTION, "default", "docs"), "PrivilegeSearch", "root"
    )
    roles = frozenset({"admin", "public", "ops", "reader"})
    return PolicySnapshot(1, roles, bindings, (ops, reader), {})


MINT_CASES = {
    "own-user": ("etl", Claim("team/etl-user"), frozenset(), []),
    "unclaimed": ("etl", None, frozenset(), [Privilege.KEY_FOR_UNCLAIMED]),
    "other-namespace": ("etl", Claim("other/etl"), frozenset(), [Privilege.KEY_FOR_UNCLAIMED]),
    "prefix-namespace": ("etl", Claim("teamx/etl"), frozenset(), [Privilege.KEY_FOR_UNCLAIMED]),
    "reader-role": ("etl", Claim("team/etl"), frozenset({("etl", "reader")}), []),
    "admin": (
        "etl",
        Claim("team/etl"),
        frozenset({("etl", "admin")}),
        [Privilege.KEY_FOR_ELEVATED],
    ),
    "elevated": (
        "etl",
        Claim("team/etl"),
        frozenset({("etl", "ops")}),
        [Privilege.KEY_FOR_ELEVATED],
    ),
    "root": ("root", None, frozenset(), [Privilege.KEY_FOR_UNCLAIMED, Privilege.KEY_FOR_ELEVATED]),
}


@pytest.mark.parametrize(
    ("username", "claim", "bindings", "needed"), MINT_CASES.values(), ids=MINT_CASES
)
def test_who_may_mint_for_whom(
    username: str,
    claim: Claim | None,
    bindings: frozenset[tuple[str, str]],
    needed: list[Privilege],
) -> None:
    assert key_privileges(spec(username=username), claim, _snapshot(bindings)) == needed


def test_refusals_name_the_rule_and_privileged_namespaces_may_do_it() -> None:
    permissions = Permissions(frozenset({"ops"}))
    wanted = [Privilege.KEY_FOR_ELEVATED]
    assert permissions.refusal("ops", wanted) is None
    refusal = permissions.refusal("team", wanted)
    assert refusal is not None
    assert "may issue an API key for root or a user bound to an elevated role" in refusal


def test_a_secret_of_someone_else_is_a_conflict() -> None:
    assert secret_conflict(spec(), SecretView()) is None
    assert secret_conflict(spec(), holding(generate_api_key())) is None
    conflict = secret_conflict(spec(), SecretView(exists=True, owned=False))
    assert conflict is not None
    assert "etl-milvus-api-key" in conflict


KEY_A, KEY_B, KEY_C = generate_api_key(), generate_api_key(), generate_api_key()


def ids(records: tuple[ApiKeyRecord, ...]) -> list[str]:
    return [r.key_id for r in records]


def test_first_key_is_issued_when_nothing_exists() -> None:
    plan = plan_keys(spec(), SecretView(), [], now=NOW)
    assert plan == KeyPlan(current=None, issue=Issue.FIRST)


def test_an_unchanged_resource_plans_nothing() -> None:
    current = issued(KEY_A)
    plan = plan_keys(spec(), holding(KEY_A), [current], now=NOW)
    assert plan.empty
    assert plan.current == current


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (SecretView(), Issue.SECRET),  # deleted
        (holding(KEY_C), Issue.SECRET),  # a key of no record of this resource
        (SecretView(exists=True, owned=True), Issue.SECRET),  # token missing or garbled
        (holding(ApiKey(KEY_A.key_id, KEY_B.secret)), Issue.SECRET),  # edited secret part
        (holding(KEY_A, rotation="2"), Issue.ROTATION),
    ],
    ids=["deleted", "unknown-key", "no-token", "tampered", "rotation"],
)
def test_reissue_keeps_the_old_key_for_the_grace_period(secret: SecretView, reason: Issue) -> None:
    old = issued(KEY_A)
    plan = plan_keys(spec(), secret, [old], now=NOW)
    assert (plan.current, plan.issue) == (None, reason)
    assert ids(plan.retire) == [KEY_A.key_id]
    assert plan.remove == ()
    assert retired(old, spec(), now=NOW).expires_at == NOW + HOUR


def test_retiring_never_extends_a_key() -> None:
    soon = issued(KEY_A, expires=NOW + 60)
    assert retired(soon, spec(), now=NOW) == soon
    plan = plan_keys(spec(rotation="2"), holding(KEY_A), [soon], now=NOW)
    assert plan.retire == ()
    assert plan.remove == ()


def test_scheduled_rotation_is_due_once_rotate_every_passed() -> None:
    current = issued(KEY_A, at=NOW - 90)
    assert plan_keys(spec(rotate_every=91.0), holding(KEY_A), [current], now=NOW).empty
    plan = plan_keys(spec(rotate_every=90.0), holding(KEY_A), [current], now=NOW)
    assert plan.issue is Issue.SCHEDULE
    assert ids(plan.retire) == [KEY_A.key_id]


def test_previous_keys_are_removed_once_their_grace_ended() -> None:
    current = issued(KEY_B)
    in_grace = issued(KEY_A, expires=NOW + 10)
    ended = issued(KEY_C, expires=NOW)
    plan = plan_keys(spec(), holding(KEY_B), [current, in_grace, ended], now=NOW)
    assert plan.current == current
    assert plan.issue is None
    assert plan.retire == ()
    assert ids(plan.remove) == [KEY_C.key_id]


def test_an_expired_current_key_is_kept_not_replaced() -> None:
    expired = issued(KEY_A, expires=NOW - 1)
    plan = plan_keys(spec(), holding(KEY_A), [expired], now=NOW)
    assert plan.empty
    assert plan.current == expired
    state = KeyState(plan.current)
    outcome = key_outcome(state, None, now=NOW, wrote=False)
    assert outcome.reason is Reason.EXPIRED
    assert outcome.stalled
    assert "spec.rotation" in outcome.message


def test_keys_of_another_username_are_removed_at_once() -> None:
    other = dataclasses.replace(issued(KEY_A), username="someone")
    plan = plan_keys(spec(), holding(KEY_A), [other], now=NOW)
    assert plan.issue is Issue.SECRET
    assert ids(plan.remove) == [KEY_A.key_id]


def test_a_foreign_secret_never_makes_a_key_current() -> None:
    record = issued(KEY_A)
    secret = SecretView(exists=True, owned=False, key=KEY_A)
    assert plan_keys(spec(), secret, [record], now=NOW).current is None


def test_proxies_drop_changed_keys_and_everything_until_ready() -> None:
    plan = KeyPlan(current=None, issue=Issue.ROTATION, retire=(issued(KEY_A),))
    assert to_invalidate(plan, [KEY_B.key_id, KEY_A.key_id], ready=True) == [KEY_A.key_id]
    everything = sorted([KEY_A.key_id, KEY_B.key_id])
    assert to_invalidate(plan, [KEY_B.key_id, KEY_A.key_id], ready=False) == everything
    assert to_invalidate(KeyPlan(current=None), [KEY_B.key_id], ready=True) == []


def test_status_fields_show_ids_and_times_only() -> None:
    current = dataclasses.replace(issued(KEY_B, at=NOW, expires=NOW + 2 * HOUR), last_used_at=NOW)
    previous = issued(KEY_A, expires=NOW + HOUR)
    fields = KeyState(current, (previous,), rotate_every=30.0).fields()
    assert fields == {
        "keyId": KEY_B.key_id,
        "expiresAt": timestamp(NOW + 2 * HOUR),
        "previousKeyExpiresAt": timestamp(NOW + HOUR),
        "nextRotationTime": timestamp(NOW + 30),
        "lastUsedTime": timestamp(NOW),
    }
    assert KEY_B.secret not in str(fields)
    assert current.secret_hash not in str(fields)
    assert KeyState(None).fields() == dict.fromkeys(fields)


def test_key_status_removes_what_ended_and_keeps_what_a_failed_pass_did_not_know() -> None:
    before = {"keyId": "a", "previousKeyExpiresAt": "t", "conditions": []}
    after = key_status(
        {"conditions": ["new"]}, before, {"keyId": "b", "previousKeyExpiresAt": None}
    )
    assert after == {"conditions": ["new"], "keyId": "b", "previousKeyExpiresAt": None}
    kept = key_status({"conditions": ["new"]}, before, None)
    assert kept == {"conditions": ["new"], "keyId": "a", "previousKeyExpiresAt": "t"}


def test_outcomes_wait_for_every_proxy() -> None:
    state = KeyState(issued(KEY_A))
    assert key_outcome(state, FanOut(1, 2), now=NOW, wrote=True).reason is Reason.PROXIES_PENDING
    applied = key_outcome(state, FanOut(2, 2), now=NOW, wrote=True)
    assert applied.ready
    assert applied.message == f"key {KEY_A.key_id} acts as Milvus user etl"
    assert key_outcome(state, None, now=NOW, wrote=False).ready


def test_next_due_is_the_first_scheduled_time_after_the_last_one_handled() -> None:
    status = {
        "expiresAt": timestamp(NOW + 300),
        "previousKeyExpiresAt": timestamp(NOW + 60),
        "nextRotationTime": timestamp(NOW + 120),
        "lastUsedTime": timestamp(NOW + 1),  # not a schedule
    }
    assert next_due(status, after=NOW) == NOW + 60
    assert next_due(status, after=NOW + 60) == NOW + 120
    assert next_due(status, after=NOW + 300) is None
    assert next_due({"expiresAt": "garbage", "nextRotationTime": 5}, after=0) is None
