"""The public port's auth check: every method, Milvus's semantics, no exemptions.

It runs before whatever handler serves a method (the forwarder, the proxy's own services), as
milvus:internal/proxy/authentication_interceptor.go does. There is no header, method or source
that skips the check (CVE-2025-64513). Failures end the call with UNAUTHENTICATED and Milvus's
exact message; etcd being unreachable for a user the cache cannot vouch for ends it with
UNAVAILABLE, so clients retry instead of giving up. A proved caller becomes the call's
`Identity` (identity.py), the only form in which anything further in sees who is calling.
"""

from __future__ import annotations

from typing import Any

import grpc

from milvus_auth.proxy.authn.authenticator import Authenticator
from milvus_auth.proxy.authn.headers import (
    AuthFailure,
    authorization_values,
    parse_authorization,
)
from milvus_auth.proxy.authn.identity import Identity, Proof, bind_identity, header_database
from milvus_auth.proxy.authn.verifier import AuthUnavailable
from milvus_auth.proxy.guard import Check, Context
from milvus_auth.proxy.logsafe import shown_text

UNAVAILABLE_MESSAGE = "credential store unavailable, please retry"


class AuthInterceptor:
    """Authenticates every call before its handler runs and binds the caller's identity."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    def check_for(self, method: str) -> Check:
        """The check to run before `method`'s handler."""
        authenticator = self._authenticator
        # The path is the client's choice (unknown methods are forwarded too): logged bounded.
        method = shown_text(method)

        async def check(_: Any, context: Context) -> None:
            peer = context.peer()
            metadata = context.invocation_metadata()
            try:
                values = authorization_values(metadata)
                try:
                    credentials = parse_authorization(values)
                except AuthFailure as failure:
                    authenticator.header_refused(failure, peer=peer, method=method)
                    raise
                await authenticator.authenticate(credentials, peer=peer, method=method)
            except AuthFailure as failure:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, failure.message)
            except AuthUnavailable:
                await context.abort(grpc.StatusCode.UNAVAILABLE, UNAVAILABLE_MESSAGE)
            bind_identity(Identity(credentials.username, Proof.PASSWORD, header_database(metadata)))

        return check
