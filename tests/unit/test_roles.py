"""Role names with Milvus's rules and texts; RefreshPolicyInfoCache op types and keys."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from milvus_auth.core.errors import InvalidParameter, PrivilegeNotPermitted, RbacError
from milvus_auth.core.roles import (
    CacheOp,
    CacheRefresh,
    ensure_managed,
    parse_cache_refresh,
    validate_role_name,
)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        # The texts Milvus 2.3.5 answered for these names (checked on the real server).
        (
            "a-b",
            "role name can only contain numbers, letters, dollars and underscores, found - at 1: invalid parameter",
        ),
        (
            "a" * 300,
            "the length of role name must be not greater than limit: invalid parameter[300 out of range 0 <= value <= 255]",
        ),
        (
            "1bad",
            "the first character of role name must be an underscore or letter: invalid parameter[expected=95][actual=49]",
        ),
        ("  ", "role name should be not empty: invalid parameter[expected=not empty][actual=]"),
        (
            "aé",
            "role name can only contain numbers, letters, dollars and underscores, found Ã at 1: invalid parameter",
        ),
    ],
)
def test_invalid_role_names(name: str, reason: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate_role_name(name)
    assert caught.value.reason == reason
    assert caught.value.code == 1100


@pytest.mark.parametrize("name", ["r1", "_r", "a$b", "R_2$", "a" * 255, " padded "])
def test_valid_role_names(name: str) -> None:
    assert validate_role_name(name) == name.strip()


_VALID = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,254}")


@given(st.text(max_size=300))
def test_role_names_accepted_exactly_by_milvus_rule(raw: str) -> None:
    try:
        name = validate_role_name(raw)
    except InvalidParameter:
        assert not _VALID.fullmatch(raw.strip())
        return
    assert _VALID.fullmatch(name)


@pytest.mark.parametrize("role", ["admin", "public"])
def test_default_roles_are_not_managed(role: str) -> None:
    with pytest.raises(PrivilegeNotPermitted, match=rf"the role\[{role}\] is a default role"):
        ensure_managed(role)
    ensure_managed("reader")


def test_cache_ops_and_keys() -> None:
    assert [op.value for op in CacheOp] == list(range(1, 8))
    bind = CacheRefresh.user_role(CacheOp.ADD_USER_TO_ROLE, "alice", "r1")
    assert bind.key == "alice/r1"
    assert parse_cache_refresh(1, "alice/r1").user_and_role() == ("alice", "r1")
    grant = CacheRefresh.policies(CacheOp.GRANT_PRIVILEGE, ["a", "b"])
    assert grant.key == "a|b"
    assert parse_cache_refresh(3, "a|b").policy_texts() == ["a", "b"]
    assert parse_cache_refresh(7, "") == CacheRefresh(CacheOp.REFRESH)


@pytest.mark.parametrize(("op", "key"), [(0, "x"), (8, "x"), (-1, ""), (1, ""), (6, "")])
def test_bad_cache_requests(op: int, key: str) -> None:
    with pytest.raises(RbacError):
        parse_cache_refresh(op, key)


def test_user_role_key_needs_a_slash() -> None:
    with pytest.raises(RbacError, match="invalid param"):
        parse_cache_refresh(2, "alice").user_and_role()
