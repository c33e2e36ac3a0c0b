"""The `authorization` header: Milvus's parsing rules and messages, and no other exception."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from milvus_auth.proxy.authn.headers import (
    API_KEY_FAILURE,
    AUTH_CHECK_FAILURE,
    INVALID_TOKEN_FORMAT,
    MISSING_AUTHORIZATION,
    ApiKeyToken,
    AuthFailure,
    Credentials,
    api_key_user_authorization,
    authorization_values,
    parse_authorization,
    read_authorization,
)

MESSAGES = {MISSING_AUTHORIZATION, INVALID_TOKEN_FORMAT, AUTH_CHECK_FAILURE, API_KEY_FAILURE}


def encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def outcome(values: list[str]) -> Credentials | AuthFailure:
    """The parsed credentials or the failure: anything else propagates and fails the test."""
    try:
        return parse_authorization(values)
    except AuthFailure as failure:
        return failure


def test_username_and_password_split_at_the_first_colon() -> None:
    parsed = parse_authorization([encode(b"alice:pa:ss:word")])
    assert parsed == Credentials("alice", "pa:ss:word")


def test_only_the_first_value_counts() -> None:
    parsed = parse_authorization([encode(b"alice:first"), encode(b"bob:second")])
    assert parsed == Credentials("alice", "first")


def test_empty_parts_are_kept_for_the_authenticator_to_refuse() -> None:
    assert parse_authorization([encode(b":")]) == Credentials("", "")


def test_repr_hides_the_password() -> None:
    assert "s3cret-value" not in repr(Credentials("alice", "s3cret-value"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], MISSING_AUTHORIZATION),
        (["not base64!"], INVALID_TOKEN_FORMAT),
        ([encode(b"alice:pw")[:-1]], INVALID_TOKEN_FORMAT),  # padding is required, as in Go
        (["caf\u00e9"], INVALID_TOKEN_FORMAT),
        ([encode(b"an-api-key")], API_KEY_FAILURE),
        ([""], API_KEY_FAILURE),  # decodes to nothing: no colon, so an API key in Milvus
        ([encode(b"\xff\xfe:pw")], AUTH_CHECK_FAILURE),
        ([encode(b"alice:\xff")], AUTH_CHECK_FAILURE),
    ],
)
def test_milvus_messages(values: list[str], message: str) -> None:
    with pytest.raises(AuthFailure) as refused:
        parse_authorization(values)
    assert refused.value.message == message


def test_binary_and_other_keys_are_not_authorization() -> None:
    metadata = [("authorization-bin", b"x"), ("dbname", "db"), ("authorization", "tok")]
    assert authorization_values(metadata) == ["tok"]
    assert authorization_values(None) == []


@given(st.lists(st.text(max_size=200), max_size=4))
def test_any_text_parses_or_fails_with_a_milvus_message(values: list[str]) -> None:
    result = outcome(values)
    assert isinstance(result, Credentials) or result.message in MESSAGES


@given(st.binary(max_size=300))
def test_any_decoded_bytes_parse_or_fail_with_a_milvus_message(raw: bytes) -> None:
    result = outcome([encode(raw)])
    if isinstance(result, AuthFailure):
        assert result.message in {API_KEY_FAILURE, AUTH_CHECK_FAILURE}
    else:
        assert (result.username + ":" + result.password).encode() == raw


def test_a_64_kib_value_is_handled() -> None:
    big = encode(b"u:" + b"p" * 65536)
    assert len(parse_authorization([big]).password) == 65536
    with pytest.raises(AuthFailure):
        parse_authorization(["!" * 65536])


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"mak_0123456789abcdef_secret", "mak_0123456789abcdef_secret"),
        (b"", ""),
        (b"mak_\xff\xfe", "mak_\ufffd\ufffd"),  # not UTF-8: still a token, matching no key
    ],
)
def test_colon_less_tokens_are_api_keys(raw: bytes, text: str) -> None:
    token = read_authorization([encode(raw)])
    assert token == ApiKeyToken(text)
    assert text not in repr(token) or not text


def test_an_api_key_caller_goes_upstream_as_milvus_sends_it() -> None:
    assert base64.b64decode(api_key_user_authorization("etl")) == b"etl:___"
