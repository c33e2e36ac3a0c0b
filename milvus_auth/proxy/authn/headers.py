"""The `authorization` header as Milvus reads it, and Milvus's exact UNAUTHENTICATED messages.

milvus:internal/proxy/authentication_interceptor.go: the first value of the lowercase
`authorization` metadata key is padded standard base64 of `username:password`, split at the
FIRST colon (passwords may contain colons). A decoded value without a colon is an API key.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from milvus_auth.core.apikeys import API_KEY_FAILURE

AUTHORIZATION_METADATA = "authorization"

MISSING_AUTHORIZATION = "missing authorization in header"
INVALID_TOKEN_FORMAT = "invalid token format"  # noqa: S105  (Milvus's message)
AUTH_CHECK_FAILURE = "auth check failure, please check username and password are correct"
# util.PasswordHolder: what Milvus's proxy puts in place of the password once an API key proved
# the caller (`authorization = base64("<user>:___")`); the key itself never goes further.
PASSWORD_HOLDER = "___"  # noqa: S105  (Milvus's placeholder, not a password)


class AuthFailure(Exception):
    """A call Milvus would refuse with UNAUTHENTICATED; `message` is Milvus's exact text.

    `reason` is a short machine word for logs and metrics (never sent to the client).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


@dataclass(frozen=True)
class Credentials:
    """A username and password taken from a header; the password never appears in a repr."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ApiKeyToken:
    """A decoded token without a colon: what Milvus hands its API-key hook. Bytes that are not
    UTF-8 are replaced, so the token stays text and simply matches no key."""

    text: str = field(repr=False)


def read_authorization(values: Sequence[str]) -> Credentials | ApiKeyToken:
    """The credentials or API key in the `authorization` values, or `AuthFailure` (never
    anything else)."""
    if not values:
        raise AuthFailure(MISSING_AUTHORIZATION, "missing_authorization")
    token = values[0]
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as error:
        raise AuthFailure(INVALID_TOKEN_FORMAT, "invalid_token_format") from error
    username, colon, password = raw.partition(b":")
    if not colon:
        return ApiKeyToken(raw.decode("utf-8", errors="replace"))
    try:
        return Credentials(username.decode("utf-8"), password.decode("utf-8"))
    except UnicodeDecodeError as error:
        # No stored user can have a non-UTF-8 name or password: the same answer as a wrong one.
        raise AuthFailure(AUTH_CHECK_FAILURE, "invalid_credentials") from error


def authorization_values(metadata: Iterable[tuple[str, str | bytes]] | None) -> list[str]:
    """Every text value of the `authorization` key, in order (binary values cannot be tokens)."""
    return [
        value
        for key, value in metadata or ()
        if key == AUTHORIZATION_METADATA and isinstance(value, str)
    ]


def parse_authorization(values: Sequence[str]) -> Credentials:
    """The credentials in the `authorization` values; an API key, like every other bad value,
    is an `AuthFailure` with Milvus's text (for callers that take passwords only)."""
    found = read_authorization(values)
    if isinstance(found, ApiKeyToken):
        raise AuthFailure(API_KEY_FAILURE, "api_key")
    return found


@functools.lru_cache(maxsize=4096)
def api_key_user_authorization(username: str) -> str:
    """The `authorization` value Milvus forwards for a caller an API key proved:
    base64 of `<user>:___`."""
    return base64.b64encode(f"{username}:{PASSWORD_HOLDER}".encode()).decode()
