"""The operator's long-lived clients: opened at kopf start-up, closed at clean-up.

Kept apart from the kopf handlers so that tests can hand in their own notifier and read the
metrics of the very operator they run.
"""

from __future__ import annotations

from milvus_auth.core.grants import RbacLayout
from milvus_auth.operator.apikeys.act import ApiKeyNotifier, ApiKeyReconciler
from milvus_auth.operator.config import OperatorConfig
from milvus_auth.operator.kube import KubeClient
from milvus_auth.operator.metrics import OperatorMetrics
from milvus_auth.operator.notify import Notifier, ProxyNotifier
from milvus_auth.operator.permissions import Permissions
from milvus_auth.operator.roles.act import RoleReconciler
from milvus_auth.operator.users.act import UserReconciler
from milvus_auth.store import ApiKeyStore, ClaimStore, CredentialStore, PolicyStore

ROLE_CLAIMS = "role-claims"


class OperatorRuntime:
    """etcd stores and claims, the Kubernetes client and status guard, the proxy notifier,
    the reconcilers."""

    def __init__(
        self,
        config: OperatorConfig,
        *,
        notifier: Notifier | None = None,
        key_notifier: ApiKeyNotifier | None = None,
    ) -> None:
        self.config = config
        self.metrics = OperatorMetrics()
        self.kube = KubeClient()
        self._notifier_override = notifier
        self._key_notifier_override = key_notifier
        self._keys: ApiKeyStore | None = None
        self._apikeys: ApiKeyReconciler | None = None
        self._proxy_notifier: ProxyNotifier | None = None
        self._store: CredentialStore | None = None
        self._policy: PolicyStore | None = None
        self._users: UserReconciler | None = None
        self._roles: RoleReconciler | None = None
        self.permissions = Permissions(config.privileged_namespaces, config.namespace_databases)

    @property
    def users(self) -> UserReconciler:
        """The MilvusUser reconciler; only between `open` and `close`."""
        if self._users is None:
            raise RuntimeError("the operator runtime is not open")
        return self._users

    @property
    def roles(self) -> RoleReconciler:
        """The MilvusRole reconciler; only between `open` and `close`."""
        if self._roles is None:
            raise RuntimeError("the operator runtime is not open")
        return self._roles

    @property
    def apikeys(self) -> ApiKeyReconciler:
        """The MilvusAPIKey reconciler; only between `open` and `close`."""
        if self._apikeys is None:
            raise RuntimeError("the operator runtime is not open")
        return self._apikeys

    async def open(self) -> None:
        """Create the clients (etcd connects lazily, so a down etcd does not stop start-up)."""
        common = self.config.common
        self._store = CredentialStore(common.etcd, common.layout)
        claims = ClaimStore(self._store.connection, common.layout.meta_root)
        self._policy = PolicyStore(common.etcd, RbacLayout(common.layout.meta_root))
        proxies = self._proxy_notifier = ProxyNotifier(
            kube=self.kube,
            service=self.config.proxy_service,
            token=self.config.internal_token,
            timeout=self.config.proxy_timeout,
            metrics=self.metrics,
            tls=self.config.proxy_tls,
        )
        notifier = self._notifier_override or proxies
        self._users = UserReconciler(
            store=self._store,
            claims=claims,
            kube=self.kube,
            notifier=notifier,
            metrics=self.metrics,
            bcrypt_cost=common.bcrypt_cost,
            permissions=self.permissions,
            password_policy=common.password_policy,
            max_users=common.max_users,
            policy=self._policy,
        )
        self._roles = RoleReconciler(
            policy=self._policy,
            claims=ClaimStore(self._policy.connection, common.layout.meta_root, kind=ROLE_CLAIMS),
            notifier=notifier,
            metrics=self.metrics,
            permissions=self.permissions,
        )
        self._keys = ApiKeyStore(common.etcd, common.layout.meta_root)
        self._apikeys = ApiKeyReconciler(
            keys=self._keys,
            users=self._store,
            claims=claims,
            policy=self._policy,
            kube=self.kube,
            notifier=self._key_notifier_override or proxies,
            metrics=self.metrics,
            permissions=self.permissions,
        )
        if self.config.metrics_port is not None:
            self.metrics.serve(self.config.metrics_port)

    async def close(self) -> None:
        """Close every client; safe to call twice."""
        self._users = None
        self._roles = None
        self._apikeys = None
        if self._keys is not None:
            await self._keys.close()
            self._keys = None
        if self._proxy_notifier is not None:
            await self._proxy_notifier.close()
            self._proxy_notifier = None
        if self._store is not None:
            await self._store.close()
            self._store = None
        if self._policy is not None:
            await self._policy.close()
            self._policy = None
        await self.kube.close()
        self.metrics.stop()
