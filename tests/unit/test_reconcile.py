"""Table tests of the operator's pure decisions: spec checks, record writes, notify, removal."""

from __future__ import annotations

from typing import Any

import pytest

from milvus_auth.operator.permissions import Permissions, Privilege
from milvus_auth.operator.resources import DeletionPolicy
from milvus_auth.operator.status import Applied
from milvus_auth.operator.users.decide import (
    Removal,
    Write,
    check_spec,
    decide_notify,
    decide_removal,
    decide_write,
    needed_privileges,
    new_claim,
)
from milvus_auth.operator.users.spec import UserSpec
from milvus_auth.store.claims import Claim, Origin

V1, V2 = "uid-1/10", "uid-1/11"


def _spec(**spec: Any) -> UserSpec:
    body = {
        "metadata": {"namespace": "ns", "name": "mu", "uid": "u", "generation": 3},
        "spec": {"username": "alice", **spec},
    }
    return UserSpec.from_body(body)


@pytest.mark.parametrize(
    ("applied", "version", "regenerated", "stored", "expected"),
    [
        # record missing: create, whatever the status says
        (Applied(), V1, False, None, Write.CREATE),
        (Applied(V1, 5, ready=True), V1, False, None, Write.CREATE),
        # first reconcile of an existing (adopted) user: update
        (Applied(), V1, False, 7, Write.UPDATE),
        # new Secret version: update
        (Applied(V1, 5, ready=True), V2, False, 5, Write.UPDATE),
        # a regenerated password is always written, even if the version looks the same
        (Applied(V1, 5, ready=True), V1, True, 5, Write.UPDATE),
        # unchanged and untouched: nothing, no bcrypt
        (Applied(V1, 5, ready=True), V1, False, 5, Write.NONE),
        (Applied(V1, 5, ready=False), V1, False, 5, Write.NONE),
        # changed behind our back: verify with bcrypt before writing
        (Applied(V1, 5, ready=True), V1, False, 9, Write.VERIFY),
        (Applied(V1, None, ready=False), V1, False, 9, Write.VERIFY),
    ],
)
def test_decide_write(
    applied: Applied, version: str, regenerated: bool, stored: int | None, expected: Write
) -> None:
    decided = decide_write(
        applied=applied, secret_version=version, regenerated=regenerated, stored_revision=stored
    )
    assert decided is expected


@pytest.mark.parametrize(
    ("wrote", "ready", "expected"),
    [(True, True, True), (True, False, True), (False, False, True), (False, True, False)],
)
def test_decide_notify(wrote: bool, ready: bool, expected: bool) -> None:
    assert decide_notify(wrote=wrote, applied=Applied(V1, 5, ready=ready)) is expected


MINE, ADOPTED = Claim("ns/mu"), Claim("ns/mu", Origin.ADOPTED)


@pytest.mark.parametrize(
    ("spec", "applied", "claim", "expected"),
    [
        ({}, Applied(V1, 5), MINE, Removal.DELETE),
        # no claim: the status alone (a tenant may be able to write it) never deletes
        ({}, Applied(V1, 5), None, Removal.NOT_CLAIMED),
        ({"deletionPolicy": "Retain"}, Applied(V1, 5), MINE, Removal.RETAIN),
        ({"username": "root", "allowRoot": True}, Applied(V1, 5), MINE, Removal.KEEP_ROOT),
        ({}, Applied(), MINE, Removal.NEVER_WRITTEN),
        ({}, Applied(V1, 5), Claim("ns/other"), Removal.NOT_OWNED),
        ({}, Applied(V1, 5), ADOPTED, Removal.ADOPTED),
    ],
)
def test_decide_removal(
    spec: dict[str, Any], applied: Applied, claim: Claim | None, expected: Removal
) -> None:
    assert decide_removal(_spec(**spec), applied, claim=claim) is expected


@pytest.mark.parametrize(
    ("spec", "claim", "exists", "expected"),
    [
        ({}, None, False, []),
        ({}, MINE, True, []),  # the operator created it: no privilege needed
        ({}, None, True, [Privilege.ADOPT_USER]),  # exists unclaimed: adopting
        ({}, ADOPTED, True, [Privilege.ADOPT_USER]),  # keeping an adopted user
        ({}, Claim("ns/other", Origin.ADOPTED), True, []),  # someone else's: a Conflict
        ({"allowRoot": True}, MINE, True, [Privilege.ALLOW_ROOT]),
        (
            {"username": "root", "allowRoot": True},
            None,
            True,
            [Privilege.ALLOW_ROOT, Privilege.ADOPT_USER],
        ),
    ],
)
def test_needed_privileges(
    spec: dict[str, Any], claim: Claim | None, exists: bool, expected: list[Privilege]
) -> None:
    assert needed_privileges(_spec(**spec), claim=claim, exists=exists) == expected


def test_new_claims_remember_whether_the_user_existed() -> None:
    assert new_claim(_spec(), exists=False) == Claim("ns/mu", Origin.CREATED)
    assert new_claim(_spec(), exists=True) == Claim("ns/mu", Origin.ADOPTED)


def test_permissions_refuse_outside_privileged_namespaces_and_name_the_rule() -> None:
    permissions = Permissions(frozenset({"ops"}))
    both = [Privilege.ALLOW_ROOT, Privilege.ADOPT_USER]
    assert permissions.refusal("ops", both) is None
    assert permissions.refusal("team", []) is None
    refused = permissions.refusal("team", both)
    assert refused == (
        "only resources in a privileged namespace (--privileged-namespaces of the operator) "
        "may set spec.allowRoot or manage a Milvus user that the operator did not create; "
        "namespace team is not privileged"
    )
    assert Permissions().refusal("ops", [Privilege.ALLOW_ROOT]) is not None


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({}, None),
        ({"username": "root", "allowRoot": True}, None),
        ({"username": "root"}, "root is refused"),
        ({"username": ""}, "must be not empty"),
        ({"username": "9lives"}, "first character must be a letter"),
        ({"username": " alice"}, "leading or trailing spaces"),
        ({"username": "x" * 33}, "length of username must be less than 32"),
        ({"passwordSecretRef": {"name": ""}}, "passwordSecretRef.name must not be empty"),
    ],
)
def test_check_spec(spec: dict[str, Any], problem: str | None) -> None:
    found = check_spec(_spec(**spec))
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_spec_parsing_defaults_and_generated_secret() -> None:
    spec = _spec()
    assert spec.generated
    assert spec.effective_secret_name == "mu-milvus-credentials"
    assert spec.effective_secret_key == "password"
    assert spec.deletion_policy is DeletionPolicy.DELETE
    assert spec.owner == "ns/mu"
    assert spec.generation == 3


def test_spec_parsing_of_a_reference_and_template() -> None:
    spec = _spec(
        passwordSecretRef={"name": "s", "key": "pw"},
        deletionPolicy="Retain",
        secretTemplate={"labels": {"a": "b"}, "annotations": {"c": 1}},
        rotation="2026",
    )
    assert not spec.generated
    assert (spec.effective_secret_name, spec.effective_secret_key) == ("s", "pw")
    assert spec.deletion_policy is DeletionPolicy.RETAIN
    assert dict(spec.secret_labels) == {"a": "b"}
    assert dict(spec.secret_annotations) == {"c": "1"}
    assert spec.rotation == "2026"


def test_applied_from_status() -> None:
    status = {
        "passwordVersion": V1,
        "recordRevision": 12,
        "conditions": [{"type": "Ready", "status": "True"}],
    }
    assert Applied.from_status(status) == Applied(V1, 12, ready=True)
    assert Applied.from_status(None) == Applied()
    assert (
        Applied.from_status({"conditions": [{"type": "Ready", "status": "False"}]}).ready is False
    )
