"""Checks run before a handler's behaviour, in a handler of the same shape.

The public router wraps each method's handler once with its checks (authentication, then the
privilege check), not as grpc.aio `ServerInterceptor`s: the interceptor chain costs an extra
coroutine and task per call, a measurable share of the proxy's added latency
(bench/overhead.py). A check sees the request when the client sends one message (None for
client-streaming methods); it refuses the call by raising `CallRefused` (errors.py maps it to
its gRPC status) or by `context.abort`.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import grpc

from milvus_auth.proxy.errors import CallRefused

Context = grpc.aio.ServicerContext[Any, Any]
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # the stubs are generic, grpc is not
Check = Callable[[Any, Context], Awaitable[None]]


Behaviour = Callable[..., Any]
Rewrap = Callable[[Behaviour, bool], Behaviour]
"""Makes a new behaviour from a handler's behaviour and whether the client sends one message."""


def guard(handler: Handler, checks: Sequence[Check]) -> Handler:
    """The same handler (shape, (de)serializers) with `checks` awaited in order first."""
    if not checks:
        return handler
    run = _in_order(tuple(checks))
    return rewrapped(
        handler,
        returning=lambda behaviour, unary: _returning(behaviour, run, unary=unary),
        streaming=lambda behaviour, unary: _streaming(behaviour, run, unary=unary),
    )


def rewrapped(handler: Handler, *, returning: Rewrap, streaming: Rewrap) -> Handler:
    """The same handler (shape, (de)serializers) with its behaviour replaced: by `returning`
    for the shapes with one response, by `streaming` for those with a response stream."""
    options = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(returning(handler.unary_unary, True), **options)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            returning(handler.stream_unary, False), **options
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            streaming(handler.unary_stream, True), **options
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            streaming(handler.stream_stream, False), **options
        )
    raise ValueError("a method handler without a behaviour")


def _in_order(checks: tuple[Check, ...]) -> Check:
    async def run(request: Any, context: Context) -> None:
        try:
            for check in checks:
                await check(request, context)
        except CallRefused as refused:
            await context.abort(refused.code, refused.message)

    return run


def _returning(behaviour: Callable[..., Any], check: Check, *, unary: bool) -> Callable[..., Any]:
    async def guarded(request: Any, context: Context) -> Any:
        await check(request if unary else None, context)
        return await behaviour(request, context)

    return guarded


def _streaming(behaviour: Callable[..., Any], check: Check, *, unary: bool) -> Callable[..., Any]:
    # grpc.aio accepts two streaming styles: async generators, and coroutines that call
    # `context.write` (grpc_health's Watch); the wrapper must keep the one it wraps.
    if inspect.isasyncgenfunction(behaviour):

        async def generator(request: Any, context: Context) -> AsyncIterator[Any]:
            await check(request if unary else None, context)
            async for response in behaviour(request, context):
                yield response

        return generator

    async def writer(request: Any, context: Context) -> Any:
        await check(request if unary else None, context)
        return await behaviour(request, context)

    return writer
