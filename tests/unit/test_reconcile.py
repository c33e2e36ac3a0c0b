"""Table tests of the operator's pure decisions: spec checks, record writes, notify, removal."""

from __future__ import annotations

from typing import Any

import pytest

from milvus_auth.operator.reconcile import (
    Applied,
    DeletionPolicy,
    Removal,
    UserSpec,
    Write,
    check_spec,
    decide_notify,
    decide_removal,
    decide_write,
)

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


@pytest.mark.parametrize(
    ("spec", "applied", "holder", "expected"),
    [
        ({}, Applied(V1, 5), "ns/mu", Removal.DELETE),
        ({}, Applied(V1, 5), None, Removal.DELETE),
        ({"deletionPolicy": "Retain"}, Applied(V1, 5), "ns/mu", Removal.RETAIN),
        ({"username": "root", "allowRoot": True}, Applied(V1, 5), "ns/mu", Removal.KEEP_ROOT),
        ({}, Applied(), "ns/mu", Removal.NEVER_WRITTEN),
        ({}, Applied(V1, 5), "ns/other", Removal.NOT_OWNED),
    ],
)
def test_decide_removal(
    spec: dict[str, Any], applied: Applied, holder: str | None, expected: Removal
) -> None:
    assert decide_removal(_spec(**spec), applied, claim_holder=holder) is expected


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
