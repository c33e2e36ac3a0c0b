"""The CRD and the example manifests: offline schema checks, kubectl, Argo CD health."""

from __future__ import annotations

import asyncio
import copy
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import lupa
import pytest
import yaml

from milvus_auth.core.passwords import PasswordPolicy
from milvus_auth.operator.roles.decide import desired_grants
from milvus_auth.operator.roles.spec import RoleSpec
from tests.chart.conftest import CHART, EXAMPLES, ROOT, load_all, needs_helm
from tests.chart.kube import kubernetes_api

CRD_FILE = ROOT / "crds" / "milvususer.yaml"
ROLE_CRD_FILE = ROOT / "crds" / "milvusrole.yaml"
KEY_CRD_FILE = ROOT / "crds" / "milvusapikey.yaml"
CRD_FILES = (CRD_FILE, ROLE_CRD_FILE, KEY_CRD_FILE)
KUBERNETES_VERSION = "1.30.0"
# Kubernetes objects, as opposed to Helm values and the users directory's kustomization.yaml.
USER_FILES = sorted(
    set((EXAMPLES / "users").glob("*.yaml")) - {EXAMPLES / "users/kustomization.yaml"}
)
ROLE_FILES = sorted(
    set((EXAMPLES / "roles").glob("*.yaml")) - {EXAMPLES / "roles/kustomization.yaml"}
)
KEY_FILES = sorted(
    set((EXAMPLES / "apikeys").glob("*.yaml")) - {EXAMPLES / "apikeys/kustomization.yaml"}
)
MANIFESTS = sorted(
    {*EXAMPLES.glob("*.yaml"), *USER_FILES, *ROLE_FILES, *KEY_FILES}
    - set(EXAMPLES.glob("values-*.yaml"))
)
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def crd() -> dict[str, Any]:
    (document,) = load_all(CRD_FILE)
    return document


def user_schema() -> dict[str, Any]:
    (version,) = crd()["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def milvus_users() -> list[dict[str, Any]]:
    return [obj for path in USER_FILES for obj in load_all(path) if obj["kind"] == "MilvusUser"]


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda path: path.name)
def test_chart_crd_is_a_byte_for_byte_copy(path: Path) -> None:
    # The chart's template adds only labels and the keep policy (test_render checks that).
    assert (CHART / "files" / "crds" / path.name).read_bytes() == path.read_bytes()


def test_crd_passes_kubernetes_schema_and_has_cel_rules() -> None:
    document = crd()
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    assert document["spec"]["names"]["shortNames"] == ["mvu"]
    spec = user_schema()["properties"]["spec"]
    assert spec["x-kubernetes-validations"]
    assert spec["properties"]["username"]["x-kubernetes-validations"] == [
        {"rule": "self == oldSelf", "message": "spec.username is immutable"}
    ]


@needs_helm
@pytest.mark.parametrize("path", CRD_FILES, ids=lambda path: path.name)
def test_chart_template_renders_the_crd(default_release: Any, path: Path) -> None:
    (source,) = load_all(path)
    rendered = copy.deepcopy(
        default_release.one("CustomResourceDefinition", source["metadata"]["name"])
    )
    assert rendered["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}
    helm_labels = set(rendered["metadata"]["labels"]) - set(source["metadata"]["labels"])
    assert helm_labels == {
        "helm.sh/chart",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/version",
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/part-of",
    }
    for label in helm_labels:
        del rendered["metadata"]["labels"][label]
    assert rendered == source


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_core_objects_pass_kubernetes_schema(path: Path) -> None:
    for obj in load_all(path):
        if obj["apiVersion"] in {"v1", "apps/v1"}:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def cel_rules(schema: dict[str, Any], value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, rule, value) for every x-kubernetes-validations rule that applies to `value`."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield path, rule["rule"], value
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                yield from cel_rules(sub, value[name], f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from cel_rules(schema["items"], item, f"{path}[{index}]")


def cel(rule: str, value: Any, old: Any) -> bool:
    environment = celpy.Environment()
    program = environment.program(environment.compile(rule))
    activation = {"self": celpy.json_to_cel(value), "oldSelf": celpy.json_to_cel(old)}
    return bool(program.evaluate(activation))


def role_schema() -> dict[str, Any]:
    (document,) = load_all(ROLE_CRD_FILE)
    (version,) = document["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def broken_rules(
    user: dict[str, Any], old: dict[str, Any] | None = None, schema: dict[str, Any] | None = None
) -> list[str]:
    """The CEL rules `user` breaks, as an update of `old` (or of itself: an unchanged apply)."""
    schema = schema or user_schema()
    previous = {path: value for path, _, value in cel_rules(schema, old or user)}
    return [
        f"{path}: {rule}"
        for path, rule, value in cel_rules(schema, user)
        if not cel(rule, value, previous.get(path, value))
    ]


@pytest.mark.parametrize("user", milvus_users(), ids=lambda user: user["metadata"]["name"])
def test_example_users_pass_the_crd_schema(user: dict[str, Any]) -> None:
    jsonschema.validate(user, user_schema())
    assert broken_rules(user) == []


@pytest.mark.parametrize(
    ("spec", "old_spec"),
    [
        ({"username": "root"}, None),
        ({"username": "root", "allowRoot": False}, None),
        ({"username": "ci", "rotation": "2", "passwordSecretRef": {"name": "s"}}, None),
        ({"username": "bob"}, {"username": "alice"}),
    ],
    ids=["root-without-allowRoot", "root-allowRoot-false", "rotation-with-secret", "rename"],
)
def test_crd_cel_rules_refuse_what_the_schema_cannot(
    spec: dict[str, Any], old_spec: dict[str, Any] | None
) -> None:
    user = {"apiVersion": "auth.milvus.io/v1alpha1", "kind": "MilvusUser", "spec": spec}
    jsonschema.validate(user, user_schema())  # structurally fine...
    old = {**user, "spec": old_spec} if old_spec else None
    assert broken_rules(user, old)  # ...but the API server's CEL rules refuse it


def test_examples_cover_the_three_kinds_of_user() -> None:
    users = {user["spec"]["username"]: user["spec"] for user in milvus_users()}
    assert users["root"]["allowRoot"] is True
    assert any("passwordSecretRef" not in spec for spec in users.values())
    referenced = {
        spec["passwordSecretRef"]["name"] for spec in users.values() if "passwordSecretRef" in spec
    }
    secrets = {
        obj["metadata"]["name"]: obj
        for path in USER_FILES
        for obj in load_all(path)
        if obj["kind"] == "Secret"
    }
    assert referenced <= set(secrets)
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    policy = PasswordPolicy(
        min_length=values["passwordPolicy"]["minLength"],
        min_classes=values["passwordPolicy"]["minClasses"],
        min_score=values["passwordPolicy"]["minScore"],
    )
    for spec in users.values():
        if "passwordSecretRef" in spec:
            secret = secrets[spec["passwordSecretRef"]["name"]]
            assert secret["metadata"]["labels"]["auth.milvus.io/watch"] == "true"
            # Applied as they are with the chart's defaults, the examples become Ready.
            policy.check(spec["username"], secret["stringData"]["password"])


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"username": "9lives"},
        {"username": "a" * 33},
        {"username": "alice", "deletionPolicy": "Orphan"},
        {"username": "alice", "passwordSecretRef": {"key": "password"}},
        {"username": "alice", "allowRoot": "yes"},
    ],
    ids=str,
)
def test_crd_schema_rejects_bad_users(spec: dict[str, Any]) -> None:
    user = {"apiVersion": "auth.milvus.io/v1alpha1", "kind": "MilvusUser", "spec": spec}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(user, user_schema())


def test_role_crd_passes_kubernetes_schema_and_has_cel_rules() -> None:
    (document,) = load_all(ROLE_CRD_FILE)
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    assert document["spec"]["names"]["shortNames"] == ["mvr"]
    assert document["spec"]["names"]["categories"] == ["milvus"]
    (version,) = document["spec"]["versions"]
    columns = [column["name"] for column in version["additionalPrinterColumns"]]
    assert columns == ["Role", "Ready", "Grants", "Proxies", "Reason", "Age"]
    (user_version,) = crd()["spec"]["versions"]
    roles = [c for c in user_version["additionalPrinterColumns"] if c["name"] == "Roles"]
    assert roles == [
        {
            "name": "Roles",
            "type": "string",
            "priority": 1,
            "description": "Milvus roles spec.roles binds (authoritative when set)",
            "jsonPath": ".spec.roles",
        }
    ]


def _role(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "auth.milvus.io/v1alpha1", "kind": "MilvusRole", "spec": spec}


_READER = {"privileges": ["Search"], "database": "analytics", "collection": "docs"}


@pytest.mark.parametrize(
    ("spec", "old_spec"),
    [
        ({"roleName": "admin"}, None),
        ({"roleName": "public"}, None),
        ({"roleName": "b"}, {"roleName": "a"}),
        ({"roleName": "r", "grants": [{"privileges": ["ClusterReadOnly"]}]}, None),
        (
            {"roleName": "r", "grants": [{"privileges": ["ClusterAdmin"], "database": "*"}]},
            None,
        ),
        (
            {
                "roleName": "r",
                "grants": [{"privileges": ["DatabaseReadOnly"], "collection": "docs"}],
            },
            None,
        ),
    ],
    ids=[
        "admin",
        "public",
        "rename",
        "cluster-group-default-db",
        "cluster-group-one-db",
        "database-group-one-collection",
    ],
)
def test_role_crd_cel_rules_refuse_what_the_schema_cannot(
    spec: dict[str, Any], old_spec: dict[str, Any] | None
) -> None:
    role = _role(spec)
    jsonschema.validate(role, role_schema())
    old = _role(old_spec) if old_spec else None
    assert broken_rules(role, old, role_schema())


def test_role_crd_cel_rules_accept_valid_grants() -> None:
    role = _role(
        {
            "roleName": "docs_reader",
            "grants": [
                _READER,
                {"privileges": ["ClusterReadOnly"], "database": "*", "collection": "*"},
                {"privileges": ["DatabaseReadOnly"], "database": "analytics"},
            ],
        }
    )
    jsonschema.validate(role, role_schema())
    assert broken_rules(role, None, role_schema()) == []


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"roleName": "9role"},
        {"roleName": "a-b"},
        {"roleName": "r", "grants": [{"privileges": []}]},
        {"roleName": "r", "grants": [{"database": "db"}]},
        {"roleName": "r", "grants": [{"privileges": ["Search"], "database": "a.b"}]},
        {"roleName": "r", "deletionPolicy": "Orphan"},
    ],
    ids=str,
)
def test_role_crd_schema_rejects_bad_roles(spec: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_role(spec), role_schema())


ROLE_EXAMPLES = sorted((EXAMPLES / "roles").glob("*.yaml"))


def role_examples(kind: str) -> list[dict[str, Any]]:
    return [obj for path in ROLE_EXAMPLES for obj in load_all(path) if obj.get("kind") == kind]


@pytest.mark.parametrize("role", role_examples("MilvusRole"), ids=lambda r: r["metadata"]["name"])
def test_example_roles_pass_the_crd_schema_and_milvus_rules(role: dict[str, Any]) -> None:
    jsonschema.validate(role, role_schema())
    assert broken_rules(role, None, role_schema()) == []
    # The CRD's defaults, then the operator's own check (Milvus's v2 grant rules).
    for grant in role["spec"]["grants"]:
        grant.setdefault("database", "default")
        grant.setdefault("collection", "*")
    assert desired_grants(RoleSpec.from_body(role), {})


def test_example_users_name_only_declared_roles() -> None:
    declared = {role["spec"]["roleName"] for role in role_examples("MilvusRole")}
    users = role_examples("MilvusUser")
    assert users
    for user in users:
        jsonschema.validate(user, user_schema())
        assert set(user["spec"]["roles"]) <= declared
    listed = load_all(EXAMPLES / "roles" / "kustomization.yaml")[0]["resources"]
    assert sorted(listed) == sorted(p.name for p in ROLE_EXAMPLES if p.name != "kustomization.yaml")


def test_user_roles_refuse_public_and_bad_names() -> None:
    user = {"apiVersion": "auth.milvus.io/v1alpha1", "kind": "MilvusUser"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**user, "spec": {"username": "u", "roles": ["a-b"]}}, user_schema())
    listed = {**user, "spec": {"username": "u", "roles": ["docs_reader", "public"]}}
    jsonschema.validate(listed, user_schema())
    assert broken_rules(listed) == [".spec.roles[1]: self != 'public'"]


def kustomize(directory: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize examples/k8s/<directory>` builds."""
    built = subprocess.run(
        [str(KUBECTL), "kustomize", str(EXAMPLES / directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [doc for doc in yaml.safe_load_all(built) if doc]


@needs_kubectl
def test_users_directory_builds_with_kustomize() -> None:
    objects = kustomize("users")
    assert {obj["metadata"]["namespace"] for obj in objects} == {"milvus"}
    assert sorted(obj["kind"] for obj in objects) == [
        "MilvusUser",
        "MilvusUser",
        "MilvusUser",
        "Secret",
        "Secret",
    ]


@needs_kubectl
def test_roles_directory_builds_with_kustomize() -> None:
    objects = kustomize("roles")
    assert {obj["metadata"]["namespace"] for obj in objects} == {"milvus"}
    assert sorted(obj["kind"] for obj in objects) == ["MilvusRole"] * 3 + ["MilvusUser"] * 3


@needs_kubectl
@pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")  # kmock 0.8
async def test_kubectl_accepts_every_manifest(tmp_path: Path) -> None:
    # kubectl's client-side dry run needs API discovery, served here by kmock; schemas are
    # checked by the tests above (kmock serves no OpenAPI, hence --validate=false).
    async with kubernetes_api(tmp_path) as kubeconfig:
        for path in [*CRD_FILES, *MANIFESTS]:
            process = await asyncio.create_subprocess_exec(
                str(KUBECTL),
                f"--kubeconfig={kubeconfig}",
                "create",
                "--dry-run=client",
                "--validate=false",
                "-o",
                "yaml",
                "-f",
                str(path),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
            assert process.returncode == 0, f"{path.name}: {stderr.decode()}"
            printed = [doc for doc in yaml.safe_load_all(stdout) if doc]
            expected = load_all(path)
            listed = printed[0].get("items", printed) if len(printed) == 1 else printed
            assert [obj["kind"] for obj in listed] == [obj["kind"] for obj in expected]


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((EXAMPLES / "argocd-health.lua").read_text(encoding="utf-8"))
    return str(result.status), str(result.message)


def user_with(conditions: list[dict[str, str]], *, observed: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "alice", "generation": 2},
        "spec": {"username": "alice"},
        "status": {"observedGeneration": observed, "conditions": conditions},
    }


@pytest.mark.parametrize(
    ("obj", "status", "message"),
    [
        ({"metadata": {"name": "a", "generation": 1}}, "Progressing", "Waiting"),
        (
            user_with([{"type": "Ready", "status": "True", "reason": "Applied"}]),
            "Healthy",
            "Applied",
        ),
        (
            user_with([{"type": "Ready", "status": "True", "reason": "Applied"}], observed=1),
            "Progressing",
            "not seen",
        ),
        (
            user_with(
                [
                    {"type": "Ready", "status": "False", "reason": "Conflict"},
                    {"type": "Stalled", "status": "True", "reason": "Conflict", "message": "x"},
                ]
            ),
            "Degraded",
            "Conflict: x",
        ),
        (
            user_with(
                [
                    {"type": "Ready", "status": "False", "reason": "ProxiesPending"},
                    {"type": "Reconciling", "status": "True", "reason": "ProxiesPending"},
                ]
            ),
            "Progressing",
            "ProxiesPending",
        ),
    ],
    ids=["no-status", "ready", "stale-generation", "stalled", "proxies-pending"],
)
def test_argocd_health_check(obj: dict[str, Any], status: str, message: str) -> None:
    got_status, got_message = health(obj)
    assert got_status == status
    assert message in got_message


def test_argocd_health_check_reads_roles_alike() -> None:
    stalled = [
        {"type": "Ready", "status": "False", "reason": "NotPermitted"},
        {"type": "Stalled", "status": "True", "reason": "NotPermitted", "message": "only ..."},
    ]
    role = {
        "metadata": {"name": "reader", "generation": 1},
        "spec": {"roleName": "docs_reader"},
        "status": {"observedGeneration": 1, "conditions": stalled},
    }
    assert health(role) == ("Degraded", "NotPermitted: only ...")


@pytest.mark.parametrize(
    ("prefix", "username", "allowed"),
    [
        ("team_a_", "team_a_reports", True),
        ("team_a_", "team_b_reports", False),
        ("team_a_", "root", False),
        ("team_a_", "bob", False),
        ("team_b_", "team_b_etl", True),
    ],
)
def test_multi_tenant_policy_keeps_usernames_in_their_namespace(
    prefix: str, username: str, allowed: bool
) -> None:
    policy, binding = load_all(EXAMPLES / "multi-tenant" / "username-prefix-policy.yaml")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    (selected,) = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    label = selected["key"]
    namespace = {"metadata": {"name": "team", "labels": {label: prefix}}}
    user = {"metadata": {"namespace": "team"}, "spec": {"username": username}}
    environment = celpy.Environment()

    def evaluate(expression: str, activation: dict[str, Any]) -> Any:
        return environment.program(environment.compile(expression)).evaluate(activation)

    (variable,) = policy["spec"]["variables"]
    activation = {
        "object": celpy.json_to_cel(user),
        "namespaceObject": celpy.json_to_cel(namespace),
    }
    activation["variables"] = celpy.json_to_cel(
        {"prefix": str(evaluate(variable["expression"], activation))}
    )
    (validation,) = policy["spec"]["validations"]
    assert bool(evaluate(validation["expression"], activation)) is allowed
