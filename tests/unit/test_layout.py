"""Key layouts and record encoding, byte for byte."""

from __future__ import annotations

import pytest

from milvus_auth.core import CredentialRecord, KeyLayout, LayoutName, MalformedRecord

HASH = "$2a$10$" + "b" * 53


def test_milvus_defaults() -> None:
    layout = KeyLayout()
    assert layout.key_for("alice") == "by-dev/meta/root-coord/credential/users/alice"
    assert layout.encode(CredentialRecord("alice", HASH)) == (
        b'{"encrypted_password":"' + HASH.encode() + b'"}'
    )


def test_mep27() -> None:
    layout = KeyLayout(LayoutName.MEP27, "prefix/")
    assert layout.key_for("alice") == "prefix/credentials/users/alice"
    assert layout.encode(CredentialRecord("alice", HASH)) == (
        b'{"password":"' + HASH.encode() + b'"}'
    )


def test_decode_keeps_unknown_fields_in_order() -> None:
    layout = KeyLayout()
    key = layout.key_for("alice")
    raw = b'{"encrypted_password":"x","time_tick":7,"description":"ops"}'
    record = layout.decode(key, raw)
    assert record.username == "alice"
    assert record.encrypted_password == "x"
    assert layout.encode(record.with_password(HASH)) == (
        b'{"encrypted_password":"' + HASH.encode() + b'","time_tick":7,"description":"ops"}'
    )


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[]", b'{"password":"x"}', b'{"encrypted_password":""}', b"\xff"]
)
def test_malformed_records(raw: bytes) -> None:
    layout = KeyLayout()
    with pytest.raises(MalformedRecord, match="malformed credential record"):
        layout.decode(layout.key_for("alice"), raw)


def test_repr_hides_hash() -> None:
    record = CredentialRecord("alice", HASH, {"time_tick": 1})
    assert HASH not in repr(record)
    assert "alice" in repr(record)


def test_username_of_rejects_foreign_keys() -> None:
    with pytest.raises(ValueError, match="not under"):
        KeyLayout().username_of("other/alice")
