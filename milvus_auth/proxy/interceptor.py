"""The public port's auth interceptor: every method, Milvus's semantics, no exemptions.

It wraps whatever handler serves a method (the forwarder, the credential RPCs) in a handler of
the same shape that authenticates first, as milvus:internal/proxy/authentication_interceptor.go
does. There is no header, method or source that skips the check (CVE-2025-64513). Failures end
the call with UNAUTHENTICATED and Milvus's exact message; etcd being unreachable for a user the
cache cannot vouch for ends it with UNAVAILABLE, so clients retry instead of giving up.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from milvus_auth.proxy.authenticator import Authenticator, AuthUnavailable
from milvus_auth.proxy.headers import AuthFailure, authorization_values, parse_authorization
from milvus_auth.proxy.logsafe import shown_text

Context = grpc.aio.ServicerContext[Any, Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # the stubs are generic, grpc is not
Check = Callable[[Context], Awaitable[None]]
UNAVAILABLE_MESSAGE = "credential store unavailable, please retry"


class AuthInterceptor:
    """Authenticates every call before its handler runs.

    Applied by the public router to each method's handler once, not as a grpc.aio
    `ServerInterceptor`: the interceptor chain costs an extra coroutine and task per call,
    a measurable share of the proxy's added latency (bench/overhead.py).
    """

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    def wrap(self, method: str, handler: Handler) -> Handler:
        """The handler, authenticating first."""
        return guard(handler, self._checker(method))

    def _checker(self, method: str) -> Check:
        authenticator = self._authenticator
        # The path is the client's choice (unknown methods are forwarded too): logged bounded.
        method = shown_text(method)

        async def check(context: Context) -> None:
            peer = context.peer()
            try:
                values = authorization_values(context.invocation_metadata())
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

        return check


def guard(handler: Handler, check: Check) -> Handler:
    """The same handler (shape, (de)serializers) with `check` awaited before its behaviour."""
    options = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _returning(handler.unary_unary, check), **options
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _returning(handler.stream_unary, check), **options
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _streaming(handler.unary_stream, check), **options
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _streaming(handler.stream_stream, check), **options
        )
    raise ValueError("a method handler without a behaviour")


def _returning(behaviour: Callable[..., Any], check: Check) -> Callable[..., Any]:
    async def guarded(request: Any, context: Context) -> Any:
        await check(context)
        return await behaviour(request, context)

    return guarded


def _streaming(behaviour: Callable[..., Any], check: Check) -> Callable[..., Any]:
    # grpc.aio accepts two streaming styles: async generators, and coroutines that call
    # `context.write` (grpc_health's Watch); the wrapper must keep the one it wraps.
    if inspect.isasyncgenfunction(behaviour):

        async def generator(request: Any, context: Context) -> AsyncIterator[Any]:
            await check(context)
            async for response in behaviour(request, context):
                yield response

        return generator

    async def writer(request: Any, context: Context) -> Any:
        await check(context)
        return await behaviour(request, context)

    return writer
