"""Domain errors as Milvus's statuses, for every RPC family the proxy answers itself.

Milvus answers two ways. A refused *call* is a gRPC status (UNAUTHENTICATED from the auth
interceptor, PERMISSION_DENIED from the privilege interceptor, UNAVAILABLE when the proxy
cannot decide); a refused *request* is a `common.Status` in the response body, whose legacy
`error_code` depends on which component refused it. Both mappings live here.
"""

from __future__ import annotations

import grpc
from pymilvus.grpc_gen import common_pb2

from milvus_auth.core import (
    CredentialError,
    InvalidParameter,
    OldPasswordMismatch,
    PrivilegeNotPermitted,
)
from milvus_auth.core.errors import MilvusError

_ErrorCode = common_pb2.ErrorCode


class StoreUnavailable(CredentialError):
    """etcd could not be read or written; the message is etcd's, never a secret."""


# Milvus's proxy answers with merr.Status (legacy IllegalArgument for parameters, else
# UnexpectedError); what RootCoord refuses carries the RPC's own legacy <X>Failure.
_PROXY_SIDE: dict[type[MilvusError], int] = {
    InvalidParameter: _ErrorCode.IllegalArgument,
    OldPasswordMismatch: _ErrorCode.UnexpectedError,
    PrivilegeNotPermitted: _ErrorCode.UnexpectedError,
}


def failure_status(error: MilvusError, rootcoord_code: int) -> common_pb2.Status:
    """The `common.Status` Milvus answers for `error` in an RPC whose failure code is given."""
    legacy = _PROXY_SIDE.get(type(error), rootcoord_code)
    return common_pb2.Status(error_code=legacy, code=error.code, reason=error.reason)


class CallRefused(Exception):
    """A call the proxy ends with a gRPC status code instead of a response."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermissionDenied(CallRefused):
    """The privilege check refused: `<PrivilegeX>: permission deny to <user> in the `<db>`
    database`, Milvus 2.6's text."""

    code = grpc.StatusCode.PERMISSION_DENIED


class PolicyUnavailable(CallRefused):
    """The policy cache cannot be trusted and etcd cannot be read: retry later."""

    code = grpc.StatusCode.UNAVAILABLE


class MalformedRequest(CallRefused):
    """The request's bytes cannot be read (truncated, bad UTF-8 in a name): never an allow."""

    code = grpc.StatusCode.INVALID_ARGUMENT
