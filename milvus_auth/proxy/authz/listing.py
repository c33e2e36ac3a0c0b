"""List filtering: ShowCollections, ListDatabases and DescribeCollection as Milvus 2.6 answers
them to a user with limited grants.

Milvus filters these in RootCoord; here the upstream answers in full and the proxy keeps only
what the caller may see (visibility.py), keeping the response's parallel columns aligned.
DescribeCollection of a collection the caller cannot see is answered by the proxy, never
forwarded: `not allowed to access collection, collection name: <c>: privilege not permitted`
(code 1401). Only successful responses are filtered; failures pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from milvus_auth.core import ROOT_USERNAME
from milvus_auth.core.errors import CODE_PRIVILEGE_NOT_PERMITTED
from milvus_auth.core.snapshot import PolicySnapshot
from milvus_auth.core.wire import WireError, string_field
from milvus_auth.proxy.authn.identity import Identity, current_identity
from milvus_auth.proxy.authz.cache import PolicyCache
from milvus_auth.proxy.authz.objects import request_bytes
from milvus_auth.proxy.authz.visibility import (
    Visible,
    visible_collections,
    visible_databases,
)
from milvus_auth.proxy.errors import CallRefused
from milvus_auth.proxy.guard import Context, Handler

_MILVUS = "/milvus.proto.milvus.MilvusService/"
SHOW_COLLECTIONS = _MILVUS + "ShowCollections"
LIST_DATABASES = _MILVUS + "ListDatabases"
DESCRIBE_COLLECTION = _MILVUS + "DescribeCollection"
_SHOW_COLUMNS = (
    "collection_names",
    "collection_ids",
    "created_timestamps",
    "created_utc_timestamps",
    "inMemory_percentages",
    "query_service_available",
    "shards_num",
)
_DATABASE_COLUMNS = ("db_names", "created_timestamp", "db_ids")

Behaviour = Callable[[Any, Context], Awaitable[Any]]


def _keep(message: Any, columns: tuple[str, ...], visible: frozenset[str]) -> bytes:
    """`message` with only the rows whose name (the first column) is visible."""
    names = list(getattr(message, columns[0]))
    kept = [i for i, name in enumerate(names) if name in visible]
    for column in columns:
        values = list(getattr(message, column))
        if len(values) != len(names):
            continue
        field = getattr(message, column)
        del field[:]
        field.extend(values[i] for i in kept)
    return bytes(message.SerializeToString())


def filter_collections(response: bytes, visible: Visible) -> bytes:
    """A ShowCollectionsResponse keeping the visible collections."""
    if visible is None:
        return response
    message = milvus_pb2.ShowCollectionsResponse.FromString(response)
    if message.status.code or message.status.error_code:
        return response
    return _keep(message, _SHOW_COLUMNS, visible)


def filter_databases(response: bytes, visible: Visible) -> bytes:
    """A ListDatabasesResponse keeping the visible databases."""
    if visible is None:
        return response
    message = milvus_pb2.ListDatabasesResponse.FromString(response)
    if message.status.code or message.status.error_code:
        return response
    return _keep(message, _DATABASE_COLUMNS, visible)


def not_visible(collection: str) -> bytes:
    """RootCoord's DescribeCollection answer for a collection the caller may not see."""
    status = common_pb2.Status(
        error_code=common_pb2.ErrorCode.UnexpectedError,
        code=CODE_PRIVILEGE_NOT_PERMITTED,
        reason=(
            f"not allowed to access collection, collection name: {collection}: "
            "privilege not permitted"
        ),
    )
    return bytes(milvus_pb2.DescribeCollectionResponse(status=status).SerializeToString())


class ListFilter:
    """Wraps the three methods' forwarding handlers; every other handler is left alone."""

    def __init__(self, cache: PolicyCache, *, root_bound: bool) -> None:
        self._cache = cache
        self._root_bound = root_bound

    def wrap(self, method: str, handler: Handler) -> Handler:
        """`handler`, filtered when `method` is one Milvus filters."""
        if method not in (SHOW_COLLECTIONS, LIST_DATABASES, DESCRIBE_COLLECTION):
            return handler
        if handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            self._filtered(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _filtered(self, method: str, behaviour: Callable[..., Any]) -> Behaviour:
        cache = self._cache
        root_bound = self._root_bound

        async def filtered(request: Any, context: Context) -> Any:
            identity = current_identity()
            if identity is None or (identity.username == ROOT_USERNAME and not root_bound):
                return await behaviour(request, context)  # nothing to hide: no policy needed
            data = request_bytes(request)
            try:
                database = string_field(data, 2) or identity.database
                name = string_field(data, 3) if method == DESCRIBE_COLLECTION else ""
            except WireError:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed request")
            try:
                await cache.current()  # the snapshot below is one the cache vouches for
            except CallRefused as refused:
                await context.abort(refused.code, refused.message)
            snapshot = cache.snapshot
            if snapshot is None:
                return await behaviour(request, context)
            if method == DESCRIBE_COLLECTION:
                visible = visible_collections(
                    snapshot, identity.username, database, root_bound=root_bound
                )
                if name and visible is not None and name not in visible:
                    return not_visible(name)
                return await behaviour(request, context)
            response = await behaviour(request, context)
            return _filter(
                method,
                response,
                snapshot=snapshot,
                identity=identity,
                database=database,
                root_bound=root_bound,
            )

        return filtered


def _filter(
    method: str,
    response: bytes,
    *,
    snapshot: PolicySnapshot,
    identity: Identity,
    database: str,
    root_bound: bool,
) -> bytes:
    if method == LIST_DATABASES:
        return filter_databases(
            response, visible_databases(snapshot, identity.username, root_bound=root_bound)
        )
    return filter_collections(
        response,
        visible_collections(snapshot, identity.username, database, root_bound=root_bound),
    )
