"""API keys: the format, its parser, the stored record and durations."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from milvus_auth.core.apikeys import (
    API_KEY_FAILURE,
    ApiKey,
    ApiKeyRecord,
    InvalidApiKey,
    generate_api_key,
    hash_secret,
    is_key_id,
    parse_api_key,
    parse_duration,
)


def test_generated_keys_parse_back_and_never_contain_a_colon() -> None:
    seen = set()
    for _ in range(200):
        key = generate_api_key()
        assert ":" not in key.token
        assert key.token.startswith("mak_")
        assert parse_api_key(key.token) == key
        assert is_key_id(key.key_id)
        seen.add(key.key_id)
    assert len(seen) == 200


def test_the_secret_is_256_bits_and_never_in_a_repr() -> None:
    key = generate_api_key()
    assert len(key.secret) == 43  # token_urlsafe(32): 256 bits
    assert key.secret not in repr(key)
    record = ApiKeyRecord(key.key_id, "etl", key.secret_hash, issued_at=1)
    assert key.secret_hash not in repr(record)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "mak_",
        "mak__",
        "x" * 100_000,
        "mak_0123456789abcdef_" + "é" * 43,
        "mak_0123456789ABCDEF_" + "a" * 43,
        "mak_0123456789abcde_" + "a" * 44,
        "mk_0123456789abcdef_" + "a" * 44,
        "mak_0123456789abcdef" + "a" * 44,
        "mak_0123456789abcdef_" + "a:" * 21 + "a",
    ],
)
def test_malformed_keys_are_refused_with_milvus_text(token: str) -> None:
    with pytest.raises(InvalidApiKey) as refused:
        parse_api_key(token)
    assert refused.value.reason == API_KEY_FAILURE


@given(st.text(max_size=120))
def test_any_text_parses_or_gets_the_one_refusal(token: str) -> None:
    parsed: ApiKey | str
    try:
        parsed = parse_api_key(token)
    except InvalidApiKey as error:
        parsed = error.reason
    assert parsed == API_KEY_FAILURE or (isinstance(parsed, ApiKey) and parsed.token == token)


def test_a_record_matches_only_its_own_key() -> None:
    key = generate_api_key()
    record = ApiKeyRecord(key.key_id, "etl", key.secret_hash, issued_at=100, expires_at=200)
    assert record.matches(key)
    assert not record.matches(ApiKey(key.key_id, generate_api_key().secret))
    # A hash copied to another id does not work there: it is bound to its id.
    other = generate_api_key()
    assert not ApiKeyRecord(other.key_id, "etl", key.secret_hash, issued_at=1).matches(
        ApiKey(other.key_id, key.secret)
    )
    assert hash_secret(key.key_id, key.secret) == key.secret_hash
    assert not record.expired(199.9)
    assert record.expired(200)
    assert not ApiKeyRecord(key.key_id, "etl", key.secret_hash, issued_at=1).expired(10**12)


def test_records_round_trip_and_keep_unknown_fields() -> None:
    record = ApiKeyRecord("0123456789abcdef", "etl", "ab" * 32, issued_at=5, name="nightly")
    value = json.loads(record.encode())
    value["future_field"] = {"x": 1}
    decoded = ApiKeyRecord.decode("0123456789abcdef", json.dumps(value).encode())
    assert decoded == record
    assert json.loads(decoded.used_at(60).encode())["future_field"] == {"x": 1}
    assert decoded.used_at(60).used_at(30).last_used_at == 60  # never backwards


@pytest.mark.parametrize(
    "value",
    [b"", b"[]", b"{}", b'{"username": "u"}', b'{"username":"u","secret_sha256":"x",'
     b'"issued_at":"yesterday"}', b"\xff", b'{"username":"u","secret_sha256":"x",'
     b'"issued_at":1,"expires_at":"soon"}', b'{"username":"../root","secret_sha256":"x",'
     b'"issued_at":1}', b'{"username":"etl\\n","secret_sha256":"x","issued_at":1}'],
)  # fmt: skip
def test_malformed_records_are_value_errors(value: bytes) -> None:
    with pytest.raises(ValueError):
        ApiKeyRecord.decode("0123456789abcdef", value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("720h", 720 * 3600), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400), ("250ms", 0.25)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0h", "10", "h", "1d", "-1h", "1h 30m", "1h30"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
