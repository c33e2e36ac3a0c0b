"""The public port's auth check: every method, Milvus's semantics, no exemptions.

It runs before whatever handler serves a method (the forwarder, the proxy's own services), as
milvus:internal/proxy/authentication_interceptor.go does. There is no header, method or source
that skips the check (CVE-2025-64513). Failures end the call with UNAUTHENTICATED and Milvus's
exact message; etcd being unreachable for a user the cache cannot vouch for ends it with
UNAVAILABLE, so clients retry instead of giving up. A proved caller becomes the call's
`Identity` (identity.py), the only form in which anything further in sees who is calling.
A token without a colon is an API key (apikey_auth.py): the caller is then the key's user.
"""

from __future__ import annotations

from typing import Any

import grpc

from milvus_auth.proxy.authn.apikey_auth import ApiKeyAuthenticator
from milvus_auth.proxy.authn.authenticator import Authenticator
from milvus_auth.proxy.authn.headers import (
    ApiKeyToken,
    AuthFailure,
    authorization_values,
    read_authorization,
)
from milvus_auth.proxy.authn.identity import Identity, Proof, bind_identity, header_database
from milvus_auth.proxy.authn.verifier import AuthUnavailable
from milvus_auth.proxy.guard import Check, Context
from milvus_auth.proxy.logsafe import shown_text

UNAVAILABLE_MESSAGE = "credential store unavailable, please retry"


class AuthInterceptor:
    """Authenticates every call before its handler runs and binds the caller's identity."""

    def __init__(self, authenticator: Authenticator, api_keys: ApiKeyAuthenticator) -> None:
        self._authenticator = authenticator
        self._api_keys = api_keys

    def check_for(self, method: str) -> Check:
        """The check to run before `method`'s handler."""
        authenticator = self._authenticator
        api_keys = self._api_keys
        # The path is the client's choice (unknown methods are forwarded too): logged bounded.
        method = shown_text(method)

        async def check(_: Any, context: Context) -> None:
            peer = context.peer()
            metadata = context.invocation_metadata()
            try:
                values = authorization_values(metadata)
                try:
                    credentials = read_authorization(values)
                except AuthFailure as failure:
                    authenticator.header_refused(failure, peer=peer, method=method)
                    raise
                if isinstance(credentials, ApiKeyToken):
                    username = await api_keys.authenticate(
                        credentials.text, peer=peer, method=method
                    )
                    proof = Proof.API_KEY
                else:
                    await authenticator.authenticate(credentials, peer=peer, method=method)
                    username, proof = credentials.username, Proof.PASSWORD
            except AuthFailure as failure:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, failure.message)
            except AuthUnavailable:
                await context.abort(grpc.StatusCode.UNAVAILABLE, UNAVAILABLE_MESSAGE)
            bind_identity(Identity(username, proof, header_database(metadata)))

        return check
