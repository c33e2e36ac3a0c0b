"""The chart as Helm installs it (into kmock, see render.py): objects, security, wiring, secrets."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from tests.chart.conftest import (
    CHART,
    VALUES_FILES,
    Release,
    Render,
    RenderError,
    containers,
    env_of,
    load_all,
    load_yaml,
    needs_helm,
)

pytestmark = needs_helm

KUBERNETES_VERSION = "1.30.0"


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def secret_text(secret: dict[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def test_default_install_creates_the_whole_system(default_release: Release) -> None:
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in default_release.objects}
    assert kinds == {
        ("CustomResourceDefinition", "milvususers.auth.milvus.io"),
        ("CustomResourceDefinition", "milvusroles.auth.milvus.io"),
        ("CustomResourceDefinition", "milvusapikeys.auth.milvus.io"),
        ("ServiceAccount", "mauth-milvus-auth-operator"),
        ("Role", "mauth-milvus-auth-operator"),
        ("RoleBinding", "mauth-milvus-auth-operator"),
        ("Role", "mauth-milvus-auth-operator-proxies"),
        ("RoleBinding", "mauth-milvus-auth-operator-proxies"),
        ("Secret", "mauth-milvus-auth-internal-token"),
        ("Secret", "mauth-milvus-auth-root-password"),
        ("Deployment", "mauth-milvus-auth-operator"),
        ("Deployment", "mauth-milvus-auth-proxy"),
        ("Service", "mauth-milvus-auth-proxy"),
        ("Service", "mauth-milvus-auth-proxy-internal"),
        ("PodDisruptionBudget", "mauth-milvus-auth-proxy"),
        ("NetworkPolicy", "mauth-milvus-auth-proxy"),
        ("NetworkPolicy", "mauth-milvus-auth-operator"),
    }


@pytest.mark.parametrize(
    "values_file", [None, *VALUES_FILES], ids=lambda p: getattr(p, "name", "defaults")
)
def test_every_rendered_object_passes_kubernetes_schema(
    render: Render, values_file: Path | None
) -> None:
    release = render(load_yaml(values_file) if values_file else {})[0]
    assert release.objects
    for obj in release.objects:
        if obj["apiVersion"].startswith(
            ("monitoring.coreos.com/", "cert-manager.io/", "kopf.dev/")
        ):
            continue  # prometheus-operator's, cert-manager's and kopf's CRD schemas are not bundled
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def cli_help(subcommand: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`milvus-auth SUBCOMMAND --help` under `env`: each MILVUS_AUTH_* value must parse."""
    return subprocess.run(
        [sys.executable, "-m", "milvus_auth.cli", subcommand, "--help"],
        env={"PATH": os.environ.get("PATH", ""), "COLUMNS": "400", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "values_file", [None, *VALUES_FILES], ids=lambda p: getattr(p, "name", "defaults")
)
def test_environment_matches_the_real_flags(render: Render, values_file: Path | None) -> None:
    # The chart configures both processes through MILVUS_AUTH_* variables; each must be a
    # documented flag of the subcommand, and its value must parse with that flag's type.
    release = render(load_yaml(values_file) if values_file else {})[0]
    for deployment in release.find("Deployment"):
        (container,) = containers(deployment)
        (subcommand,) = container["args"]
        env = env_of(container)
        result = cli_help(subcommand, env)
        assert result.returncode == 0, result.stderr
        documented = set(re.findall(r"env\s+(MILVUS_AUTH_\w+)", result.stdout))
        chart_vars = {name for name in env if name.startswith("MILVUS_AUTH_")}
        assert chart_vars <= documented, chart_vars - documented


def test_a_bad_setting_is_refused_by_the_process() -> None:
    # Guards the test above: the process does check the values it is given.
    result = cli_help("proxy", {"MILVUS_AUTH_RATE_LIMIT_USER_BURST": "many"})
    assert result.returncode != 0
    assert "MILVUS_AUTH_RATE_LIMIT_USER_BURST" in result.stderr


def test_pods_are_locked_down(default_release: Release) -> None:
    for deployment in default_release.find("Deployment"):
        spec = pod_spec(deployment)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] > 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in containers(deployment):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"]
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert "/tmp" in mounts  # the only writable path


def test_no_secret_is_passed_in_the_environment(render: Render) -> None:
    values = load_yaml(Path(__file__).parents[2] / "examples/k8s/values-production.yaml")
    for deployment in render(values)[0].find("Deployment"):
        for container in containers(deployment):
            for name, value in env_of(container).items():
                if name.startswith("MILVUS_AUTH_PASSWORD_MIN_"):  # the policy, not a password
                    continue
                if any(word in name for word in ("PASSWORD", "TOKEN", "KEY")):
                    assert name.endswith("_FILE") or name.endswith("_KEY"), name
                    assert value.startswith("/etc/milvus-auth/"), name


def test_password_policy_is_strict_by_default_and_can_be_milvus_own(render: Render) -> None:
    for deployment in render({})[0].find("Deployment"):
        (container,) = containers(deployment)
        env = env_of(container)
        assert env["MILVUS_AUTH_PASSWORD_MIN_LENGTH"] == "12"
        assert env["MILVUS_AUTH_PASSWORD_MIN_CLASSES"] == "3"
        assert env["MILVUS_AUTH_PASSWORD_MIN_SCORE"] == "3"
        assert env["MILVUS_AUTH_MAX_USERS"] == "100"  # the same limit on proxies and operator
    lenient = {"passwordPolicy": {"minLength": 6, "minClasses": 0, "minScore": -1}}
    for deployment in render(lenient)[0].find("Deployment"):
        (container,) = containers(deployment)
        assert "MILVUS_AUTH_PASSWORD_MIN_SCORE" not in env_of(container)


def test_operator_runs_alone_with_kopf_liveness(default_release: Release) -> None:
    operator = default_release.one("Deployment", "-operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = containers(operator)
    assert container["args"] == ["operator"]
    env = env_of(container)
    assert env["MILVUS_AUTH_NAMESPACE"] == "milvus"  # namespaced by default: the release's
    assert "MILVUS_AUTH_ALL_NAMESPACES" not in env
    assert "MILVUS_AUTH_PEERING" not in env  # standalone
    assert env["MILVUS_AUTH_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    probe = container["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    assert probe["port"] == "health"
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]


def test_operator_finds_proxies_through_the_internal_headless_service(
    default_release: Release,
) -> None:
    internal = default_release.one("Service", "-proxy-internal")
    assert internal["spec"]["clusterIP"] == "None"
    assert [port["name"] for port in internal["spec"]["ports"]] == ["internal"]
    assert internal["spec"]["ports"][0]["port"] == 19529
    proxy = default_release.one("Deployment", "-proxy")
    assert internal["spec"]["selector"] == proxy["spec"]["selector"]["matchLabels"]
    (operator,) = containers(default_release.one("Deployment", "-operator"))
    assert env_of(operator)["MILVUS_AUTH_PROXY_SERVICE"] == f"milvus/{internal['metadata']['name']}"
    rules = default_release.one("Role", "-proxies")["rules"]
    assert rules == [
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["list"],  # listed on every change, never watched or read by name
        }
    ]


def test_proxy_probes_use_grpc_health_on_the_internal_port(default_release: Release) -> None:
    proxy = default_release.one("Deployment", "-proxy")
    (container,) = containers(proxy)
    assert container["args"] == ["proxy"]
    assert container["readinessProbe"]["grpc"] == {"port": 19529}
    assert container["livenessProbe"]["grpc"] == {"port": 19529}
    assert pod_spec(proxy)["automountServiceAccountToken"] is False
    env = env_of(container)
    assert env["MILVUS_AUTH_PORT"] == "19530"
    assert env["MILVUS_AUTH_INTERNAL_PORT"] == "19529"
    # Reachable by the operator's pod, and only with the generated token (the proxy refuses
    # to start with the internal port off loopback and no token).
    assert env["MILVUS_AUTH_INTERNAL_HOST"] == "0.0.0.0"
    assert env["MILVUS_AUTH_INTERNAL_TOKEN_FILE"]
    assert env["MILVUS_AUTH_AUTH_ENABLED"] == "true"
    assert env["MILVUS_AUTH_AUTHORIZATION_ENABLED"] == "true"
    assert env["MILVUS_AUTH_ROOT_SHOULD_BIND_ROLE"] == "false"
    assert env["MILVUS_AUTH_UPSTREAM"] == "milvus:19530"
    affinity = pod_spec(proxy)["affinity"]["podAntiAffinity"]
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"]


def test_only_the_operator_reaches_the_internal_port(default_release: Release) -> None:
    policy = default_release.one("NetworkPolicy", "-proxy")
    proxy_labels = default_release.one("Deployment", "-proxy")["spec"]["template"]["metadata"]
    operator_labels = default_release.one("Deployment", "-operator")["spec"]["template"]["metadata"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= proxy_labels["labels"].items()
    rules = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["spec"]["ingress"]}
    assert rules["grpc"] is None  # clients: anyone, unless networkPolicy.publicFrom is set
    (peer,) = rules["internal"]
    assert peer["podSelector"]["matchLabels"].items() <= operator_labels["labels"].items()
    assert "namespaceSelector" not in peer
    assert rules["metrics"] == [{"podSelector": {}}]  # the release's namespace only


def test_the_operator_pod_admits_only_probes_and_same_namespace_scrapes(
    render: Render, default_release: Release
) -> None:
    policy = default_release.one("NetworkPolicy", "-operator")
    operator = default_release.one("Deployment", "-operator")
    labels = operator["spec"]["template"]["metadata"]["labels"]
    assert policy["metadata"]["namespace"] == "milvus"
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["spec"]["ingress"]}
    assert rules == {"health": None, "metrics": [{"podSelector": {}}]}
    (container,) = containers(operator)
    assert {port["name"] for port in container["ports"]} == set(rules)

    prometheus = [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    release = render({"networkPolicy": {"metricsFrom": prometheus}})[0]
    for suffix in ("-proxy", "-operator"):
        ingress = release.one("NetworkPolicy", suffix)["spec"]["ingress"]
        (metrics,) = [rule for rule in ingress if rule["ports"][0]["port"] == "metrics"]
        assert metrics["from"] == prometheus
    without_metrics = render({"metrics": {"enabled": False}})[0]
    ingress = without_metrics.one("NetworkPolicy", "-operator")["spec"]["ingress"]
    assert [rule["ports"][0]["port"] for rule in ingress] == ["health"]


def test_generated_secrets_are_random_and_kept_on_upgrade(render: Render) -> None:
    first, upgraded = render({}, {"proxy": {"replicaCount": 3}})
    for suffix, key in (("-root-password", "password"), ("-internal-token", "token")):
        secret = first.one("Secret", suffix)
        value = secret_text(secret, key)
        assert len(value) >= 32
        assert value != "Milvus"
        assert secret_text(upgraded.one("Secret", suffix), key) == value
    assert first.one("Secret", "-root-password")["metadata"]["annotations"] == {
        "helm.sh/resource-policy": "keep"
    }
    other = render({})[0]
    assert secret_text(other.one("Secret", "-root-password"), "password") != secret_text(
        first.one("Secret", "-root-password"), "password"
    )


def test_existing_secrets_are_mounted_not_generated(render: Render) -> None:
    values = load_yaml(Path(__file__).parents[2] / "examples/k8s/values-production.yaml")
    release = render(values)[0]
    assert release.find("Secret") == []
    proxy = release.one("Deployment", "-proxy")
    volumes = {
        volume["name"]: volume["secret"]["secretName"]
        for volume in pod_spec(proxy)["volumes"]
        if "secret" in volume
    }
    assert volumes == {
        "internal-token": "milvus-auth-internal-token",
        "etcd-auth": "milvus-auth-etcd",
        "etcd-tls": "milvus-auth-etcd-tls",
        "root-password": "milvus-root-password",
        "tls": "milvus-auth-proxy-tls",
    }
    env = env_of(containers(proxy)[0])
    assert env["MILVUS_AUTH_ETCD_USER"] == "milvus-auth"
    assert env["MILVUS_AUTH_SUPER_USERS"] == "platform_admin"
    assert "replicas" not in proxy["spec"]  # the HorizontalPodAutoscaler owns it
    assert release.one("HorizontalPodAutoscaler")["spec"]["minReplicas"] == 3
    assert release.one("ServiceMonitor")["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_namespaced_scope_grants_roles_only_in_watched_namespaces(render: Render) -> None:
    release = render(load_yaml(Path(__file__).parent / "values/minimal-namespaced.yaml"))[0]
    assert release.find("ClusterRole") == []
    assert release.find("ClusterRoleBinding") == []
    roles = {role["metadata"]["namespace"]: role for role in release.find("Role", "-operator")}
    assert set(roles) == {"team-a", "team-b"}
    verbs = {
        verb
        for rule in roles["team-a"]["rules"]
        if rule["resources"] == ["secrets"]
        for verb in rule["verbs"]
    }
    assert verbs == {"get", "list", "watch"}  # generatedSecrets: false
    (container,) = containers(release.one("Deployment", "-operator"))
    env = env_of(container)
    assert env["MILVUS_AUTH_NAMESPACE"] == "team-a,team-b"
    assert "MILVUS_AUTH_ALL_NAMESPACES" not in env
    assert release.find("CustomResourceDefinition") == []
    assert release.find("NetworkPolicy") == []


def test_operator_rbac_is_namespaced_by_default(default_release: Release) -> None:
    assert default_release.find("ClusterRole") == []
    assert default_release.find("ClusterRoleBinding") == []
    role = default_release.one("Role", "-operator")
    assert role["metadata"]["namespace"] == "milvus"
    binding = default_release.one("RoleBinding", "-operator")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (subject,) = binding["subjects"]
    assert subject["namespace"] == "milvus"


def test_privileged_namespaces_default_to_the_operators_own(render: Render) -> None:
    (container,) = containers(render({})[0].one("Deployment", "-operator"))
    env = {item["name"]: item for item in container["env"]}
    assert env["MILVUS_AUTH_OPERATOR_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    assert "MILVUS_AUTH_PRIVILEGED_NAMESPACES" not in env
    release = render({"operator": {"privilegedNamespaces": ["ops", "platform"]}})[0]
    (container,) = containers(release.one("Deployment", "-operator"))
    assert env_of(container)["MILVUS_AUTH_PRIVILEGED_NAMESPACES"] == "ops,platform"


def test_namespace_databases_become_one_variable(render: Render) -> None:
    (container,) = containers(render({})[0].one("Deployment", "-operator"))
    assert "MILVUS_AUTH_NAMESPACE_DATABASES" not in env_of(container)
    values = {"namespaceDatabases": {"team-b": ["ml"], "team-a": ["analytics", "shared"]}}
    (container,) = containers(render({"operator": values})[0].one("Deployment", "-operator"))
    assert env_of(container)["MILVUS_AUTH_NAMESPACE_DATABASES"] == (
        "team-a=analytics,shared;team-b=ml"
    )
    with pytest.raises(RenderError):
        render({"operator": {"namespaceDatabases": {"team-a": ["*"]}}})


def test_cluster_scope_may_write_only_what_it_needs(render: Render) -> None:
    release = render({"operator": {"scope": "cluster"}})[0]
    (container,) = containers(release.one("Deployment", "-operator"))
    assert env_of(container)["MILVUS_AUTH_ALL_NAMESPACES"] == "true"
    rules = release.one("ClusterRole")["rules"]
    writes = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        if verb in {"create", "update", "patch", "delete", "deletecollection", "*"}
    }
    assert writes == {
        ("auth.milvus.io", "milvususers", "patch"),
        ("auth.milvus.io", "milvususers/status", "patch"),
        ("auth.milvus.io", "milvususers/finalizers", "update"),
        ("auth.milvus.io", "milvusroles", "patch"),
        ("auth.milvus.io", "milvusroles/status", "patch"),
        ("auth.milvus.io", "milvusapikeys", "patch"),
        ("auth.milvus.io", "milvusapikeys/status", "patch"),
        ("auth.milvus.io", "milvusapikeys/finalizers", "update"),
        ("", "secrets", "create"),
        ("", "secrets", "patch"),
        ("", "events", "create"),
    }
    assert not any("kopf.dev" in rule["apiGroups"] for rule in rules)  # standalone


def test_peering_adds_its_object_and_rbac(render: Render) -> None:
    release = render({"operator": {"scope": "cluster", "peering": "milvus-auth"}})[0]
    (container,) = containers(release.one("Deployment", "-operator"))
    env = env_of(container)
    assert env["MILVUS_AUTH_PEERING"] == "milvus-auth"
    assert env["MILVUS_AUTH_PEERING_LIFETIME"] == "15"
    identity = next(item for item in container["env"] if item["name"] == "POD_ID")
    assert identity["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    rules = release.one("ClusterRole")["rules"]
    assert {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings"],
        "verbs": ["get", "list", "watch", "patch"],
    } in rules
    (peering,) = release.find("ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert peering["metadata"]["name"] == "milvus-auth"
    assert "namespace" not in peering["metadata"]
    assert release.find("KopfPeering") == []


def test_two_replicas_run_a_hot_standby_peering_in_every_watched_namespace(
    render: Render,
) -> None:
    values = {"operator": {"replicas": 2, "watchNamespaces": ["team-a", "team-b"]}}
    release = render(values)[0]
    operator = release.one("Deployment", "-operator")
    assert operator["spec"]["replicas"] == 2
    assert operator["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    (container,) = containers(operator)
    name = operator["metadata"]["name"]
    assert env_of(container)["MILVUS_AUTH_PEERING"] == name  # the default peering name
    peerings = release.find("KopfPeering")
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings} == {
        ("team-a", name),
        ("team-b", name),
    }
    for role in release.find("Role", "-operator"):
        assert {
            "apiGroups": ["kopf.dev"],
            "resources": ["kopfpeerings"],
            "verbs": ["get", "list", "watch", "patch"],
        } in role["rules"]


def test_kopf_peering_crds_ship_in_the_crds_folder() -> None:
    crds = load_all(CHART / "crds" / "kopf-peering.yaml")
    assert {(crd["spec"]["names"]["kind"], crd["spec"]["scope"]) for crd in crds} == {
        ("KopfPeering", "Namespaced"),
        ("ClusterKopfPeering", "Cluster"),
    }
    assert {crd["spec"]["group"] for crd in crds} == {"kopf.dev"}


def test_extra_flags_become_variables_but_never_twice(render: Render) -> None:
    release = render({"operator": {"extraFlags": {"kubeconfig": "/etc/kube/config"}}})[0]
    (container,) = containers(release.one("Deployment", "-operator"))
    assert env_of(container)["MILVUS_AUTH_KUBECONFIG"] == "/etc/kube/config"
    with pytest.raises(RenderError, match="already sets MILVUS_AUTH_ETCD_TIMEOUT"):
        render({"proxy": {"extraFlags": {"etcd-timeout": 10}}})


def test_crd_can_be_left_out_or_unprotected(render: Render) -> None:
    assert render({"crds": {"enabled": False}})[0].find("CustomResourceDefinition") == []
    for crd in render({"crds": {"keep": False}})[0].find("CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})


def test_operator_can_update_stock_milvus_proxies(render: Render) -> None:
    values = load_yaml(Path(__file__).parent / "values/operator-for-stock-milvus.yaml")
    release = render(values)[0]
    assert release.find("Deployment", "-proxy") == []
    (container,) = containers(release.one("Deployment", "-operator"))
    env = env_of(container)
    assert env["MILVUS_AUTH_PROXY_SERVICE"] == "milvus/milvus-proxy-internal"
    assert env["MILVUS_AUTH_ETCD_CA"] == "/etc/milvus-auth/etcd-tls/ca.crt"
    assert "MILVUS_AUTH_ETCD_CERT" not in env
    assert release.one("Role", "-proxies")["metadata"]["namespace"] == "milvus"


def test_notes_tell_the_next_steps(default_release: Release) -> None:
    notes = default_release.notes
    assert "mauth-milvus-auth-proxy.milvus.svc:19530" in notes
    assert "mauth-milvus-auth-root-password" in notes
    assert "kind: MilvusUser" in notes


@pytest.mark.parametrize(
    "values",
    [
        {"proxy": {"replicaCount": "two"}},
        {"unknown": True},
        {"etcd": {"tls": {"enabled": True}}},
    ],
    ids=str,
)
def test_helm_refuses_bad_values(render: Render, values: dict[str, Any]) -> None:
    with pytest.raises(RenderError, match="schema"):
        render(values)
