"""May they: the policy cache, the privilege decision, object names, list filtering.

For the proxy's RBAC services: after writing RBAC keys to etcd, call the `PolicyRefresher`
(`await refresher.refresh()`) the server hands them, so this proxy enforces the change at once;
other proxies follow through the etcd watch.
"""

from milvus_auth.proxy.authz.cache import PolicyCache, PolicyRefresher
from milvus_auth.proxy.authz.coherence import PolicyCoherence
from milvus_auth.proxy.authz.decision import Bypass
from milvus_auth.proxy.authz.interceptor import PrivilegeInterceptor
from milvus_auth.proxy.authz.listing import ListFilter

__all__ = [
    "Bypass",
    "ListFilter",
    "PolicyCache",
    "PolicyCoherence",
    "PolicyRefresher",
    "PrivilegeInterceptor",
]
