"""The kopf wiring (the only package importing kopf): handlers are a few lines each.

For MilvusUsers and MilvusRoles alike, create, resume and update share one reconcile (id
`reconcile`); a timer re-checks every resource each resync period (drift repair); deletion sits
behind the `auth.milvus.io/finalizer`. This module holds the lifecycle, the MilvusUsers and
their Secrets; `roles` the MilvusRoles; `apikeys` the MilvusAPIKeys; `common` what they share.
Secrets labelled `auth.milvus.io/watch: "true"` (selected by the API server, not in the
client) are watched with an event handler that never writes to the Secret: it marks the
MilvusUsers using it (annotation `trigger.auth.milvus.io/secret-version`), which kopf sees as
an update and reconciles at once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import kopf
import yaml

from milvus_auth.config import ConfigError
from milvus_auth.operator.handlers import patching
from milvus_auth.operator.handlers.apikeys import register_apikeys
from milvus_auth.operator.handlers.common import REMOVAL_RETRIES, backoff, record
from milvus_auth.operator.handlers.roles import register_roles
from milvus_auth.operator.kube import KubeAccess, KubeError, namespaced_path
from milvus_auth.operator.resources import API_VERSION, GROUP, USER_PLURAL, VERSION
from milvus_auth.operator.runtime import OperatorRuntime
from milvus_auth.operator.secrets import WATCH_LABEL, secret_version
from milvus_auth.operator.status import Applied, Outcome, Reason
from milvus_auth.operator.users.decide import Removal
from milvus_auth.operator.users.spec import UserSpec
from milvus_auth.store import EtcdUnavailable

log = logging.getLogger(__name__)
USERS = (GROUP, VERSION, USER_PLURAL)
# Not under `auth.milvus.io/`: kopf leaves its own storage prefix out of the diff it reacts to.
TRIGGER_ANNOTATION = f"trigger.{GROUP}/secret-version"
SECRET_SELECTOR = f"{WATCH_LABEL}=true"


def configure(settings: kopf.OperatorSettings, runtime: OperatorRuntime) -> None:
    """Finalizer, progress and diff-base under the project's domain; events only for warnings."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    # kopf turns log lines into Events at this level; the handlers post their own Events
    # with `kopf.event`, which this level does not filter.
    settings.posting.level = logging.WARNING
    # Exact namespaces need no namespace listing (less RBAC); patterns are refused in config.
    settings.scanning.disabled = not runtime.config.all_namespaces
    # The `labels=` filter of the Secret handler runs in the client: without a server-side
    # selector the operator would list, watch and hold every Secret it may read.
    settings.watching.label_selectors["v1", "secrets"] = SECRET_SELECTOR
    # Peering (--peering): keep-alives are not logged; a peer silent for the lifetime is dead.
    settings.peering.stealth = True
    settings.peering.lifetime = runtime.config.peering_lifetime
    # Without a server-side timeout a silently dropped watch connection is never noticed.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # kopf retries 5xx and lost connections; a 409 or a 422 from a validation race it drops.
    patching.install(settings, runtime.metrics)


def build_registry(runtime: OperatorRuntime) -> kopf.OperatorRegistry:
    """Every handler of the operator, bound to one runtime."""
    registry = kopf.OperatorRegistry()
    _register_lifecycle(registry, runtime)
    _register_users(registry, runtime)
    _register_secrets(registry, runtime)
    register_roles(registry, runtime)
    register_apikeys(registry, runtime)
    return registry


def _register_lifecycle(registry: kopf.OperatorRegistry, runtime: OperatorRuntime) -> None:
    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings, runtime)
        await runtime.open()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await runtime.close()

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        kubeconfig = runtime.config.kubeconfig
        try:
            info = _login_with_file(kubeconfig) if kubeconfig else kopf.login_via_client(**kwargs)
        except ConfigError as error:
            raise kopf.PermanentError(str(error)) from None  # retrying cannot fix the file
        if info is not None:
            ssl = info.as_ssl_context() if info.server.startswith("https") else None
            await runtime.kube.set_access(KubeAccess(info.server, info.as_http_headers(), ssl))
        return info


def _login_with_file(path: str) -> kopf.ConnectionInfo:
    """Credentials from an explicit kubeconfig file (kopf's own login reads only the default)."""
    import kubernetes  # noqa: PLC0415  (only needed with --kubeconfig)

    client = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_kube_config(
            config_file=path, client_configuration=client, persist_config=False
        )
    except (kubernetes.config.ConfigException, yaml.YAMLError, ValueError, OSError) as error:
        raise ConfigError(f"--kubeconfig {path}: {error}") from None
    header = client.get_api_key_with_prefix("BearerToken") or client.get_api_key_with_prefix(
        "authorization"
    )
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=client.host,
        ca_path=client.ssl_ca_cert,
        insecure=not client.verify_ssl,
        username=client.username or None,
        password=client.password or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=client.cert_file,
        private_key_path=client.key_file,
    )


def _register_users(registry: kopf.OperatorRegistry, runtime: OperatorRuntime) -> None:
    @kopf.on.resume(*USERS, id="reconcile", registry=registry)
    @kopf.on.create(*USERS, id="reconcile", registry=registry)
    @kopf.on.update(*USERS, id="reconcile", registry=registry)
    async def reconcile_user(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
        await _reconcile_user(runtime, body, patch, retry)

    @kopf.timer(
        *USERS,
        id="resync",
        interval=runtime.config.resync_period,
        initial_delay=runtime.config.resync_period,
        registry=registry,
    )
    async def resync_user(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        await _reconcile_user(runtime, body, patch, int(kwargs.get("retry") or 0))

    @kopf.on.delete(*USERS, id="remove", registry=registry)
    async def remove_user(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
        spec = UserSpec.from_body(body)
        applied = Applied.from_status(body.get("status"))
        give_up = retry >= REMOVAL_RETRIES
        try:
            result = await runtime.users.remove(spec, applied, give_up=give_up)
        except EtcdUnavailable as error:
            message = f"deletion waits for etcd: {error}"
            outcome = Outcome(Reason.ETCD_UNAVAILABLE, message)
            record(body, patch, outcome)
            delay = backoff(Reason.ETCD_UNAVAILABLE, retry)
            raise kopf.TemporaryError(message, delay=delay) from None
        if not result.done and not give_up:
            raise kopf.TemporaryError(result.message, delay=backoff(Reason.PROXIES_PENDING, retry))
        if not result.done:
            kopf.event(
                body,
                type="Warning",
                reason="ProxiesPending",
                message=f"finalizer removed; {result.message}",
            )
        if result.removal is Removal.DELETE:
            kopf.event(
                body,
                type="Normal",
                reason="Deleted",
                message=f"deleted Milvus user {spec.username}",
            )
        else:
            kopf.event(
                body,
                type="Normal",
                reason="Retained",
                message=f"kept Milvus user: {result.removal.value}",
            )


def _register_secrets(registry: kopf.OperatorRegistry, runtime: OperatorRuntime) -> None:
    @kopf.index(*USERS, id="users_by_secret", registry=registry)
    async def users_by_secret(body: kopf.Body, **_: Any) -> dict[tuple[str, str], tuple[str, ...]]:
        spec = UserSpec.from_body(body)
        applied = Applied.from_status(body.get("status")).password_version or ""
        marked = body.metadata.annotations.get(TRIGGER_ANNOTATION, "")
        return {(spec.namespace, spec.effective_secret_name): (spec.name, applied, marked)}

    @kopf.on.event("v1", "secrets", labels={WATCH_LABEL: "true"}, registry=registry)
    async def secret_changed(type: str, body: kopf.Body, **kwargs: Any) -> None:
        users_by_secret: kopf.Index[tuple[str, str], tuple[str, ...]] = kwargs["users_by_secret"]
        namespace, name = body.metadata.namespace or "", body.metadata.name or ""
        version = f"deleted:{body.metadata.uid}" if type == "DELETED" else secret_version(body)
        for user, applied, marked in users_by_secret.get((namespace, name), []):
            if version in {applied, marked}:
                continue
            path = namespaced_path(API_VERSION, namespace, USER_PLURAL, user)
            change = {"metadata": {"annotations": {TRIGGER_ANNOTATION: version}}}
            try:
                await runtime.kube.patch(path, change)
            except KubeError as error:
                # The resync timer still picks the change up; say why it was not immediate.
                log.warning("cannot mark %s/%s for Secret %s: %s", namespace, user, name, error)


async def _reconcile_user(
    runtime: OperatorRuntime, body: kopf.Body, patch: kopf.Patch, retry: int
) -> None:
    if body.metadata.deletion_timestamp:
        return  # the resync timer may still tick while `remove` runs: never re-create the user
    spec = UserSpec.from_body(body)
    applied = Applied.from_status(body.get("status"))
    outcome = await runtime.users.reconcile(spec, applied)
    record(body, patch, outcome)
    if not outcome.ready and not outcome.stalled:
        raise kopf.TemporaryError(outcome.message, delay=backoff(outcome.reason, retry))


async def run_operator(
    runtime: OperatorRuntime,
    *,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
) -> None:
    """Run kopf with this runtime until `stop_flag` is set (or forever)."""
    config = runtime.config
    if config.kubeconfig:
        _login_with_file(config.kubeconfig)  # a broken file is a usage error, before kopf starts
    await kopf.operator(
        registry=build_registry(runtime),
        clusterwide=config.all_namespaces,
        namespaces=list(config.namespaces),
        standalone=config.peering is None,
        peering_name=config.peering,  # a name makes peering mandatory: paused until it is seen
        priority=config.peering_priority,
        liveness_endpoint=config.liveness,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
