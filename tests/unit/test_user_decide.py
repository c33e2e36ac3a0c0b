"""Table tests of a MilvusUser pass's pure parts: admission, de-escalation, plan, and report."""

from __future__ import annotations

from typing import Any

import pytest

from milvus_auth.core import CredentialRecord
from milvus_auth.core.grants import GrantTarget
from milvus_auth.core.privileges import ObjectType
from milvus_auth.core.snapshot import PolicySnapshot, StoredGrant
from milvus_auth.operator.kube import KubeError
from milvus_auth.operator.notify import FanOut
from milvus_auth.operator.permissions import Permissions
from milvus_auth.operator.roles.decide import BindingPlan
from milvus_auth.operator.status import Applied, Outcome, Reason
from milvus_auth.operator.users.decide import (
    Observed,
    Refusal,
    Write,
    admit,
    deescalation,
    plan_user,
)
from milvus_auth.operator.users.report import (
    BindingsResult,
    PasswordResult,
    report_bindings,
    report_password,
    report_refusal,
)
from milvus_auth.operator.users.spec import UserSpec
from milvus_auth.store import StoredCredential
from milvus_auth.store.claims import Claim, Origin

TENANT = Permissions(frozenset({"ops"}))
MINE, OTHERS = Claim("team/mu"), Claim("team/other")
STORED = StoredCredential(CredentialRecord("alice", "$2a$04$" + "a" * 53), 7)
WIDE = StoredGrant(
    GrantTarget("wide", ObjectType.GLOBAL, "*", "*"), "PrivilegeGroupClusterAdmin", "root"
)
NARROW = StoredGrant(GrantTarget("narrow", ObjectType.COLLECTION, "db", "c"), "PrivilegeSearch", "root")  # fmt: skip


def _spec(namespace: str = "team", **spec: Any) -> UserSpec:
    body = {
        "metadata": {"namespace": namespace, "name": "mu", "uid": "u", "generation": 1},
        "spec": {"username": "alice", **spec},
    }
    return UserSpec.from_body(body)


def _policy(*bindings: str) -> PolicySnapshot:
    return PolicySnapshot(
        1,
        frozenset({"admin", "public", "wide", "narrow"}),
        frozenset(("alice", role) for role in bindings),
        (WIDE, NARROW),
        {},
    )


ELEVATED = "may bind a role holding cluster-level or ownership privileges"
ADMISSIONS = {
    "plain": ({}, None, None, None, None),
    "root-elsewhere": ({"allowRoot": True}, MINE, STORED, None, "may set spec.allowRoot"),
    "adopting": ({}, None, STORED, None, "manage a Milvus user that the operator did not"),
    "conflict": ({}, OTHERS, STORED, None, "already managed by team/other"),
    "narrow-role": ({"roles": ["narrow"]}, MINE, STORED, _policy("narrow"), None),
    "missing-role": ({"roles": ["later"]}, MINE, STORED, _policy(), None),
    "admin": ({"roles": ["admin"]}, MINE, STORED, _policy(), "may bind the admin role"),
    "elevated-role": ({"roles": ["narrow", "wide"]}, None, None, _policy(), ELEVATED),
}


@pytest.mark.parametrize(
    ("spec", "claim", "stored", "policy", "refused"), ADMISSIONS.values(), ids=ADMISSIONS
)
def test_admit(
    spec: dict[str, Any],
    claim: Claim | None,
    stored: StoredCredential | None,
    policy: PolicySnapshot | None,
    refused: str | None,
) -> None:
    decided = admit(_spec(**spec), Observed(claim, stored, policy), TENANT)
    if refused is None:
        assert decided is None
    else:
        assert decided is not None
        assert refused in decided.message
        expected = Reason.CONFLICT if claim is OTHERS else Reason.NOT_PERMITTED
        assert decided.reason is expected
    # A privileged namespace is refused nothing but another resource's username.
    privileged = admit(_spec("ops", **spec), Observed(claim, stored, policy), TENANT)
    assert privileged is None or privileged.reason is Reason.CONFLICT


DEESCALATIONS = {
    # the role became elevated after the binding: the mapping goes
    "became-elevated": (["narrow", "wide"], MINE, ("narrow", "wide"), ("wide",)),
    "admin-held": (["admin"], MINE, ("admin",), ("admin",)),
    # elevated but not bound (yet): nothing to remove
    "not-held": (["wide"], MINE, (), ()),
    # another resource's user, or one never claimed: a refusal never touches it
    "others-user": (["wide"], OTHERS, ("wide",), ()),
    "unclaimed": (["wide"], None, ("wide",), ()),
    "adopted-by-me": (["wide"], Claim("team/mu", Origin.ADOPTED), ("wide",), ("wide",)),
    "harmless": (["narrow"], MINE, ("narrow",), ()),
}


@pytest.mark.parametrize(
    ("roles", "claim", "held", "unbind"), DEESCALATIONS.values(), ids=DEESCALATIONS
)
def test_deescalation(
    roles: list[str], claim: Claim | None, held: tuple[str, ...], unbind: tuple[str, ...]
) -> None:
    observed = Observed(claim, STORED, _policy(*held))
    assert deescalation(_spec(roles=roles), observed) == unbind
    refusal = admit(_spec(roles=roles), observed, TENANT)
    if unbind:
        assert refusal is not None
        assert refusal.unbind == unbind


def test_no_roles_in_the_spec_means_no_policy_and_no_deescalation() -> None:
    assert deescalation(_spec(), Observed(MINE, STORED, None)) == ()


@pytest.mark.parametrize(
    ("spec", "stored", "policy", "write", "bindings"),
    [
        ({}, None, None, Write.CREATE, None),
        ({}, STORED, None, Write.NONE, None),
        ({"roles": ["narrow", "later"]}, STORED, _policy("wide"), Write.NONE,
         BindingPlan(bind=("narrow",), unbind=("wide",), missing=("later",))),
        ({"roles": []}, STORED, _policy("narrow"), Write.NONE, BindingPlan(unbind=("narrow",))),
    ],
)  # fmt: skip
def test_plan_user(
    spec: dict[str, Any],
    stored: StoredCredential | None,
    policy: PolicySnapshot | None,
    write: Write,
    bindings: BindingPlan | None,
) -> None:
    applied = Applied("v1", 7, ready=True)
    plan = plan_user(
        _spec(**spec),
        applied,
        Observed(MINE, stored, policy),
        secret_version="v1",
        regenerated=False,
    )
    assert (plan.write, plan.bindings) == (write, bindings)


def _password(pushed: FanOut | KubeError | None, write: Write = Write.UPDATE) -> PasswordResult:
    return PasswordResult("v2", True, write, 9, pushed)


@pytest.mark.parametrize(
    ("result", "reason", "message", "applied"),
    [
        (_password(None, Write.NONE), Reason.APPLIED, "password applied", False),
        (_password(FanOut(2, 2)), Reason.APPLIED, "password applied; 2/2 proxies updated", True),
        (_password(FanOut(1, 2)), Reason.PROXIES_PENDING, "1 of 2 proxies updated; retrying", True),
        (_password(FanOut(1, 2), Write.NONE), Reason.PROXIES_PENDING, "1 of 2 proxies", False),
        (_password(KubeError(503, "down")), Reason.PROXIES_PENDING, "cannot list the proxies", True),
    ],
)  # fmt: skip
def test_report_password(
    result: PasswordResult, reason: Reason, message: str, applied: bool
) -> None:
    outcome = report_password(_spec(), result)
    assert (outcome.reason, outcome.applied) == (reason, applied)
    assert outcome.message.startswith(message)
    assert (outcome.password_version, outcome.record_revision) == ("v2", 9)
    assert outcome.written == ("update" if result.wrote else "")
    assert result.confirmed is (reason is Reason.APPLIED)


def test_report_password_says_when_the_secret_is_not_watched() -> None:
    unwatched = PasswordResult("v2", False, Write.NONE, 9, None)
    assert (
        "is not labelled auth.milvus.io/watch=true" in report_password(_spec(), unwatched).message
    )


APPLIED = Outcome(Reason.APPLIED, "password applied", "v2", 9)


@pytest.mark.parametrize(
    ("result", "reason", "message"),
    [
        (BindingsResult(("b", "a"), (), None), Reason.APPLIED, "password applied; roles: a, b"),
        (BindingsResult((), (), FanOut(2, 2)), Reason.APPLIED, "password applied; roles: none"),
        (BindingsResult(("a",), ("a",), FanOut(2, 2)), Reason.ROLE_NOT_FOUND,
         "password applied; role a does not exist in Milvus (yet): the user is not bound to it"),
        (BindingsResult(("a",), (), FanOut(1, 2)), Reason.PROXIES_PENDING,
         "1 of 2 proxies refreshed roles; retrying"),
        (BindingsResult(("a",), (), KubeError(0, "x")), Reason.PROXIES_PENDING,
         "cannot list the proxies: Kubernetes API 0: x"),
    ],
)  # fmt: skip
def test_report_bindings(result: BindingsResult, reason: Reason, message: str) -> None:
    outcome = report_bindings(APPLIED, result)
    assert (outcome.reason, outcome.message) == (reason, message)
    assert (outcome.password_version, outcome.record_revision) == ("v2", 9)


def test_report_refusal_names_the_removed_mappings_and_the_proxies() -> None:
    refusal = Refusal(Reason.NOT_PERMITTED, "only resources ...", ("wide",))
    assert report_refusal(refusal, unbound=False, refreshed=None) == Outcome(
        Reason.NOT_PERMITTED, "only resources ..."
    )
    removed = report_refusal(refusal, unbound=True, refreshed=FanOut(2, 2))
    assert removed.message == "only resources ...; removed the user's mapping to wide"
    assert removed.proxies == FanOut(2, 2)
    assert removed.stalled
    unlisted = report_refusal(refusal, unbound=True, refreshed=KubeError(0, "x"))
    assert unlisted.message.endswith("; cannot list the proxies: Kubernetes API 0: x")
