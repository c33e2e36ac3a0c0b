"""Milvus's username and password rules, with its codes and reason texts."""

from __future__ import annotations

import pytest

from milvus_auth.core import (
    InvalidParameter,
    PrivilegeNotPermitted,
    ensure_deletable,
    validate_password,
    validate_username,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "alice"),
        ("  alice\t", "alice"),
        ("A", "A"),
        ("a_1", "a_1"),
        ("a.b-c", "a.b-c"),
        ("x" * 32, "x" * 32),
        ("root", "root"),
    ],
)
def test_valid_usernames(raw: str, expected: str) -> None:
    assert validate_username(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "username must be not empty: invalid parameter"),
        ("   ", "username must be not empty: invalid parameter"),
        (
            "x" * 33,
            f"invalid username {'x' * 33} with length 33, "
            "the length of username must be less than 32: invalid parameter",
        ),
        (
            "1abc",
            "invalid user name 1abc, the first character must be a letter, but got 1: "
            "invalid parameter",
        ),
        (
            "_abc",
            "invalid user name _abc, the first character must be a letter, but got _: "
            "invalid parameter",
        ),
        (
            "ab c",
            "invalid user name ab c, the user name can only include underscore, letters and "
            "numbers, but got  : invalid parameter",
        ),
        (
            "ab/c",
            "invalid user name ab/c, the user name can only include underscore, letters and "
            "numbers, but got /: invalid parameter",
        ),
        (
            "abé",
            "invalid user name abé, the user name can only include underscore, letters and "
            "numbers, but got é: invalid parameter",
        ),
    ],
)
def test_invalid_usernames(raw: str, reason: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate_username(raw)
    assert caught.value.code == 1100
    assert caught.value.reason == reason


def test_username_length_counts_bytes() -> None:
    # 31 letters and one two-byte character: 33 bytes, refused for length first.
    with pytest.raises(InvalidParameter, match="with length 33"):
        validate_username("a" * 31 + "é")


@pytest.mark.parametrize("password", ["secret", "x" * 72, "p:ss:word", "pässwd"])
def test_valid_passwords(password: str) -> None:
    validate_password(password)


@pytest.mark.parametrize(
    ("password", "size"), [("", 0), ("12345", 5), ("x" * 73, 73), ("é" * 37, 74)]
)
def test_invalid_passwords(password: str, size: int) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate_password(password)
    assert caught.value.code == 1100
    assert caught.value.reason == (
        f"invalid password length: invalid parameter[{size} out of range 6 <= value <= 72]"
    )


def test_root_cannot_be_deleted() -> None:
    ensure_deletable("alice")
    with pytest.raises(PrivilegeNotPermitted) as caught:
        ensure_deletable("root")
    assert caught.value.code == 1401
    assert caught.value.reason == "root user cannot be deleted: privilege not permitted"
