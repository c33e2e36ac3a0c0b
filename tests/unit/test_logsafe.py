"""What log lines may show of client text: Milvus-valid usernames, else a marker; bounded text."""

from __future__ import annotations

import pytest

from milvus_auth.core import InvalidParameter, validate_username
from milvus_auth.proxy.logsafe import (
    INVALID,
    MAX_SHOWN_TEXT,
    shown_text,
    shown_username,
    valid_username,
)

NAMES = [
    "alice",
    "a",
    "A_b.c-d9",
    "a" * 32,
    "a" * 33,
    "",
    " alice",
    "alice ",
    "alice\n",
    "9lives",
    "_x",
    "ali ce",
    "Secret-Pass!42",
    "ålice",
    "alice\x1b[2J",
    "x" * 180_000,
]


@pytest.mark.parametrize("name", NAMES)
def test_valid_is_exactly_milvus_rule_on_the_name_as_sent(name: str) -> None:
    try:
        milvus_accepts = validate_username(name) == name
    except InvalidParameter:
        milvus_accepts = False
    assert valid_username(name) is milvus_accepts


def test_only_valid_names_are_shown() -> None:
    assert shown_username("alice") == "'alice'"
    assert shown_username("Secret-Pass!42") == INVALID
    assert shown_username("x" * 180_000) == INVALID
    assert shown_username("alice\nFAKE LOG LINE") == INVALID
    assert shown_username(None) == "None"


def test_free_text_is_escaped_and_bounded() -> None:
    assert shown_text("/milvus.proto.milvus.MilvusService/Connect") == (
        "'/milvus.proto.milvus.MilvusService/Connect'"
    )
    long = shown_text("\n" * 100_000)
    assert "\n" not in long
    assert len(long) < 3 * MAX_SHOWN_TEXT
    assert long.endswith("(100000 chars)")
