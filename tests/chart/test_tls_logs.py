"""The chart's TLS on every hop (Secrets or cert-manager Certificates) and the proxy's logs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.conftest import (
    VALUES_DIR,
    Release,
    Render,
    RenderError,
    containers,
    env_of,
    load_yaml,
    needs_helm,
)

pytestmark = needs_helm

INTERNAL_NAME = "mauth-milvus-auth-proxy-internal.milvus.svc"
ISSUER = {"name": "milvus-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}


def mounts(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = containers(deployment)
    return {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}


def volumes(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    return {volume["name"]: volume.get("secret", {}) for volume in spec["volumes"]}


def env(release: Release, component: str) -> dict[str, str]:
    (container,) = containers(release.one("Deployment", f"-{component}"))
    return env_of(container)


def test_nothing_changes_by_default(default_release: Release) -> None:
    assert not default_release.find("Certificate")
    for component in ("proxy", "operator"):
        variables = env(default_release, component)
        assert not [name for name in variables if "TLS" in name or "ACCESS_LOG" in name]
    assert env(default_release, "proxy")["MILVUS_AUTH_FAILED_LOGIN_LOG_BURST"] == "5"
    assert env(default_release, "proxy")["MILVUS_AUTH_FAILED_LOGIN_LOG_INTERVAL"] == "10"


def test_internal_mutual_tls_from_existing_secrets(render: Render) -> None:
    release = render(
        {
            "internalTls": {
                "enabled": True,
                "existingSecret": "proxy-internal-tls",
                "mutual": True,
                "clientSecret": "operator-client-tls",
            }
        }
    )[0]
    proxy, operator = release.one("Deployment", "-proxy"), release.one("Deployment", "-operator")
    proxy_env, operator_env = env(release, "proxy"), env(release, "operator")
    assert proxy_env["MILVUS_AUTH_INTERNAL_TLS_CERT"] == "/etc/milvus-auth/internal-tls/tls.crt"
    assert proxy_env["MILVUS_AUTH_INTERNAL_TLS_KEY"] == "/etc/milvus-auth/internal-tls/tls.key"
    assert proxy_env["MILVUS_AUTH_INTERNAL_TLS_CLIENT_CA"] == "/etc/milvus-auth/internal-tls/ca.crt"
    assert mounts(proxy)["internal-tls"] == "/etc/milvus-auth/internal-tls"
    assert volumes(proxy)["internal-tls"]["secretName"] == "proxy-internal-tls"
    assert operator_env["MILVUS_AUTH_PROXY_TLS_CA"] == "/etc/milvus-auth/internal-tls-ca/ca.crt"
    assert operator_env["MILVUS_AUTH_PROXY_TLS_SERVER_NAME"] == INTERNAL_NAME
    assert (
        operator_env["MILVUS_AUTH_PROXY_TLS_CERT"] == "/etc/milvus-auth/internal-tls-client/tls.crt"
    )
    assert (
        operator_env["MILVUS_AUTH_PROXY_TLS_KEY"] == "/etc/milvus-auth/internal-tls-client/tls.key"
    )
    # The operator gets the proxies' CA, never their private key.
    ca_volume = volumes(operator)["internal-tls-ca"]
    assert ca_volume["secretName"] == "proxy-internal-tls"
    assert ca_volume["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    assert volumes(operator)["internal-tls-client"]["secretName"] == "operator-client-tls"
    assert set(mounts(operator)) >= {"internal-tls-ca", "internal-tls-client"}
    # gRPC probes cannot speak TLS: the proxy's probes become TCP checks of the internal port.
    (container,) = containers(proxy)
    assert container["readinessProbe"]["tcpSocket"] == {"port": "internal"}
    assert container["livenessProbe"]["tcpSocket"] == {"port": "internal"}
    assert "grpc" not in container["readinessProbe"]
    assert not release.find("Certificate")


def test_tls_everywhere_from_cert_manager(render: Render) -> None:
    release = render(load_yaml(VALUES_DIR / "tls-everywhere.yaml"))[0]
    certificates = {cert["metadata"]["name"]: cert["spec"] for cert in release.find("Certificate")}
    assert set(certificates) == {
        "mauth-milvus-auth-proxy-public-tls",
        "mauth-milvus-auth-proxy-internal-tls",
        "mauth-milvus-auth-operator-client-tls",
        "mauth-milvus-auth-proxy-upstream-tls",
    }
    for name, spec in certificates.items():
        assert spec["secretName"] == name
        assert spec["issuerRef"] == {
            "name": "milvus-ca",
            "kind": "Issuer",
            "group": "cert-manager.io",
        }
    assert certificates["mauth-milvus-auth-proxy-internal-tls"]["dnsNames"] == [INTERNAL_NAME]
    assert certificates["mauth-milvus-auth-proxy-internal-tls"]["usages"] == ["server auth"]
    assert certificates["mauth-milvus-auth-operator-client-tls"]["usages"] == ["client auth"]
    assert certificates["mauth-milvus-auth-proxy-upstream-tls"]["usages"] == ["client auth"]
    assert "milvus.example.com" in certificates["mauth-milvus-auth-proxy-public-tls"]["dnsNames"]
    proxy = release.one("Deployment", "-proxy")
    proxy_env = env(release, "proxy")
    assert volumes(proxy)["tls"]["secretName"] == "mauth-milvus-auth-proxy-public-tls"
    assert volumes(proxy)["internal-tls"]["secretName"] == "mauth-milvus-auth-proxy-internal-tls"
    assert volumes(proxy)["upstream-tls"]["secretName"] == "mauth-milvus-auth-proxy-upstream-tls"
    assert proxy_env["MILVUS_AUTH_UPSTREAM_TLS"] == "true"
    assert proxy_env["MILVUS_AUTH_UPSTREAM_CA"] == "/etc/milvus-auth/upstream-tls/ca.crt"
    assert proxy_env["MILVUS_AUTH_UPSTREAM_CERT"] == "/etc/milvus-auth/upstream-tls/tls.crt"
    assert proxy_env["MILVUS_AUTH_UPSTREAM_KEY"] == "/etc/milvus-auth/upstream-tls/tls.key"
    assert proxy_env["MILVUS_AUTH_UPSTREAM_SERVER_NAME"] == "milvus.milvus.svc"
    assert proxy_env["MILVUS_AUTH_ACCESS_LOG"] == "-"
    assert proxy_env["MILVUS_AUTH_ACCESS_LOG_SAMPLE_RATE"] == "0.1"
    assert proxy_env["MILVUS_AUTH_FAILED_LOGIN_LOG_BURST"] == "3"
    operator = release.one("Deployment", "-operator")
    assert (
        volumes(operator)["internal-tls-client"]["secretName"]
        == "mauth-milvus-auth-operator-client-tls"
    )


def test_upstream_tls_with_system_roots_needs_no_secret(render: Render) -> None:
    release = render({"proxy": {"upstreamTls": {"enabled": True}}})[0]
    proxy_env = env(release, "proxy")
    assert proxy_env["MILVUS_AUTH_UPSTREAM_TLS"] == "true"
    assert "MILVUS_AUTH_UPSTREAM_CA" not in proxy_env
    assert "MILVUS_AUTH_UPSTREAM_CERT" not in proxy_env
    assert "upstream-tls" not in volumes(release.one("Deployment", "-proxy"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"internalTls": {"enabled": True}}, "internalTls.existingSecret"),
        (
            {"internalTls": {"enabled": True, "existingSecret": "s", "mutual": True}},
            "internalTls.clientSecret",
        ),
        ({"proxy": {"tls": {"enabled": True}}}, "proxy.tls.existingSecret"),
        (
            {"internalTls": {"enabled": True, "certManager": {"enabled": True}}},
            "issuerRef.name",
        ),
        ({"proxy": {"accessLog": {"sampleRate": 2}}}, "sampleRate"),
        ({"proxy": {"failedLoginLog": {"interval": 0}}}, "interval"),
    ],
)
def test_tls_and_log_values_that_cannot_work_are_refused(
    render: Render, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(RenderError, match=message):
        render(values)


def test_cluster_issuer_is_passed_through(render: Render) -> None:
    values = {
        "internalTls": {"enabled": True, "certManager": {"enabled": True, "issuerRef": ISSUER}}
    }
    (certificate,) = render(values)[0].find("Certificate")
    assert certificate["spec"]["issuerRef"] == ISSUER
