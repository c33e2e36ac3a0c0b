"""The privilege check on the public port: after authentication, before any handler.

For a method in Milvus's table (`core.privilege_table`, generated from its proto options) the
check reads the object name(s) from the request bytes, takes the policy the cache vouches for,
and decides (decision.py). A denial ends the call with PERMISSION_DENIED and Milvus 2.6's text;
the handler (the forwarder to the upstream, or a local service) never runs. Methods without a
row are not checked, as in Milvus, when Milvus's proto declares them without one
(`UNCHECKED_METHODS`, gRPC health); a method the table does not know at all (a path newer than
this build, or made up) is refused to everyone but root: an upstream that knows it would run it
unchecked. A cache that cannot be trusted and an etcd that cannot be read
end the call with UNAVAILABLE, never with an allow.
"""

from __future__ import annotations

import logging
from typing import Any

from milvus_auth.core.privilege_table import METHOD_PRIVILEGES, UNCHECKED_METHODS
from milvus_auth.proxy.authn.identity import current_identity
from milvus_auth.proxy.authz.cache import PolicyCache
from milvus_auth.proxy.authz.decision import Bypass, allowed, denial
from milvus_auth.proxy.authz.note import Decision, note_decision
from milvus_auth.proxy.authz.objects import ObjectReader, request_bytes
from milvus_auth.proxy.errors import PermissionDenied
from milvus_auth.proxy.guard import Check, Context
from milvus_auth.proxy.logsafe import shown_text, shown_username

log = logging.getLogger(__name__)

_MILVUS = "/milvus.proto.milvus.MilvusService/"
_HEALTH = "/grpc.health.v1.Health/"
USER_MANAGEMENT = frozenset(
    _MILVUS + method
    for method in ("CreateCredential", "UpdateCredential", "DeleteCredential", "ListCredUsers")
)


class PrivilegeInterceptor:
    """Checks each call's privilege against the policy cache."""

    def __init__(self, cache: PolicyCache, bypass: Bypass) -> None:
        self._cache = cache
        self._bypass = bypass

    def check_for(self, method: str) -> Check | None:
        """The check for `method`; None when Milvus checks no privilege there."""
        rule = METHOD_PRIVILEGES.get(method)
        if rule is None:
            if method in UNCHECKED_METHODS or method.startswith(_HEALTH):
                return None
            return self._unknown(method)
        reader = ObjectReader.for_rule(rule)
        cache = self._cache
        bypass = self._bypass
        user_management = method in USER_MANAGEMENT
        shown_method = shown_text(method)

        async def check(request: Any, _: Context) -> None:
            identity = current_identity()
            if identity is None or request is None:
                # Only reachable through a wiring mistake or a client-streaming call to a
                # checked method (none exist): refused, never waved through.
                raise PermissionDenied(f"method {shown_method} is not authorized")
            data = request_bytes(request)
            name = reader.name(data)
            names = reader.names(data)
            granted_role = reader.granted_role(data)
            if bypass.passes(identity, user_management=user_management):
                note_decision(Decision.BYPASS)
                return
            policy = cache.ready() or await cache.current()
            if allowed(policy, cache.permits, identity, rule, name, names, granted_role):
                note_decision(Decision.ALLOWED)
                return
            note_decision(Decision.DENIED)
            log.info(
                "permission denied user=%s method=%s privilege=%s db=%s",
                shown_username(identity.username),
                shown_method,
                rule.privilege,
                shown_text(identity.database),
            )
            raise PermissionDenied(denial(identity, rule))

        return check

    def _unknown(self, method: str) -> Check:
        bypass = self._bypass
        shown_method = shown_text(method)

        async def check(_: Any, __: Context) -> None:
            identity = current_identity()
            if identity is not None and bypass.passes(identity, user_management=False):
                note_decision(Decision.BYPASS)
                return
            note_decision(Decision.DENIED)
            user = "" if identity is None else identity.username
            log.info(
                "permission denied user=%s method=%s unknown", shown_username(user), shown_method
            )
            raise PermissionDenied(f"method {shown_method} is not authorized")

        return check
