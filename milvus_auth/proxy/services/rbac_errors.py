"""How the RBAC RPCs fail: Milvus 2.6's error texts, codes and the `common.Status` they become.

Milvus checks an RBAC request twice: its proxy validates names (failures answer `merr.Status`:
legacy `error_code` IllegalArgument for code 1100, UnexpectedError otherwise, `detail` = the
text), then RootCoord checks the request against its records (failures answer
`StatusWithErrorCode`: the RPC's own legacy `<X>Failure` code, the full error chain as reason).
`proxy_stage` marks the first kind; everything else is the second. `rbac_status` is the one
place that turns a refusal into a status.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pymilvus.grpc_gen import common_pb2

from milvus_auth.core.errors import (
    CODE_PARAMETER_INVALID,
    CODE_UNEXPECTED,
    MilvusError,
)

CODE_PRIVILEGE_GROUP_INVALID = 1402
_ErrorCode = common_pb2.ErrorCode


class Refused(MilvusError):
    """A refusal with an explicit merr code (the reason is the whole error chain)."""

    def __init__(self, reason: str, code: int = CODE_UNEXPECTED) -> None:
        super().__init__(reason)
        self.code = code


class ProxyRefusal(Exception):
    """A refusal from Milvus's proxy-side validation (answered with `merr.Status`)."""

    def __init__(self, error: MilvusError) -> None:
        super().__init__(error.reason)
        self.error = error


def invalid(message: str) -> Refused:
    """`merr.WrapErrParameterInvalidMsg`: `<message>: invalid parameter`, code 1100."""
    return Refused(f"{message}: invalid parameter", CODE_PARAMETER_INVALID)


def wrapped(prefix: str, error: MilvusError) -> Refused:
    """`errors.Wrap(err, prefix)`: the text gains the prefix, the code stays the cause's."""
    return Refused(f"{prefix}: {error.reason}", error.code)


@contextmanager
def proxy_stage() -> Iterator[None]:
    """Within this block a refusal is the proxy's (its validation), not RootCoord's."""
    try:
        yield
    except MilvusError as error:
        raise ProxyRefusal(error) from error


@contextmanager
def wrapping(prefix: str) -> Iterator[None]:
    """Within this block every refusal is wrapped with `prefix`, as RootCoord wraps it."""
    try:
        yield
    except MilvusError as error:
        raise wrapped(prefix, error) from error


def rbac_status(error: MilvusError, *, failure_code: int | None) -> common_pb2.Status:
    """The status Milvus 2.6 answers: `failure_code` None for a proxy-side refusal
    (`merr.Status`), else the RPC's legacy failure code (`StatusWithErrorCode`)."""
    if failure_code is None:
        legacy = (
            _ErrorCode.IllegalArgument
            if error.code == CODE_PARAMETER_INVALID
            else _ErrorCode.UnexpectedError
        )
        return common_pb2.Status(
            error_code=legacy, code=error.code, reason=error.reason, detail=error.reason
        )
    return common_pb2.Status(error_code=failure_code, code=error.code, reason=error.reason)
