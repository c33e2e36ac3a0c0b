"""The password policy: Milvus's rule by default, stricter rules that name what failed."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from milvus_auth.config import ConfigError, add_common_arguments, common_settings
from milvus_auth.core import InvalidParameter
from milvus_auth.core.passwords import (
    STRICTEST,
    PasswordPolicy,
    WeakPassword,
    character_classes,
    generate_password,
)

STRICT = PasswordPolicy(min_length=12, min_classes=3, min_score=3)


def settings_from(argv: list[str], environ: dict[str, str] | None = None) -> PasswordPolicy:
    parser = argparse.ArgumentParser()
    add_common_arguments(parser, environ=environ or {})
    return common_settings(parser.parse_args(argv)).password_policy


def test_default_is_milvus_rule_only() -> None:
    policy = PasswordPolicy()
    policy.check("alice", "abcdef")  # 6 bytes, one class, guessable: Milvus takes it
    policy.check("alice", "alice1")  # containing the username is fine without a score
    with pytest.raises(InvalidParameter, match="invalid password length") as caught:
        policy.check("alice", "abc")
    assert not isinstance(caught.value, WeakPassword)


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("Ab1!short", "at least 12 bytes are required"),
        ("abcdefghijklmn", "at least 3 of lowercase letters"),
        ("ALLUPPERCASE123", "at least 3 of"),
        ("Password1234!", "estimated strength"),
        ("Alice-Secret-9x!", "must not contain the username"),
        ("xALICEx#9qZ!rT", "must not contain the username"),
    ],
)
def test_strict_policy_names_the_rule(password: str, rule: str) -> None:
    with pytest.raises(WeakPassword) as caught:
        STRICT.check("alice", password)
    assert rule in caught.value.reason
    assert password not in caught.value.reason
    assert caught.value.code == 1100
    assert caught.value.reason.startswith("weak password: invalid parameter[")


@pytest.mark.parametrize("password", ["Xk9#mQ2!vL7@pR", "tangerine-Orbit-quietly-47"])
def test_strong_passwords_pass(password: str) -> None:
    STRICT.check("alice", password)


def test_character_classes() -> None:
    assert character_classes("abc") == 1
    assert character_classes("aB") == 2
    assert character_classes("aB3") == 3
    assert character_classes("aB3 ") == 4
    assert character_classes("ßÉ٣") == 3  # Unicode letters and digits count as theirs


@pytest.mark.parametrize(
    "kwargs", [{"min_length": 5}, {"min_classes": 5}, {"min_score": 5}, {"min_score": -1}]
)
def test_impossible_policies_are_refused(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PasswordPolicy(**kwargs)


@given(st.text(max_size=80), st.text(max_size=40))
def test_any_input_passes_or_gets_a_reason_without_the_password(rest: str, username: str) -> None:
    password = "\N{SNOWMAN}" + rest  # a character no reason text has, so a leak is visible
    reason = ""
    try:
        STRICT.check(username, password)
    except InvalidParameter as error:
        reason = error.reason
    assert "\N{SNOWMAN}" not in reason


def test_flags_and_environment() -> None:
    assert settings_from([]) == PasswordPolicy()
    assert settings_from(
        ["--password-min-length", "12", "--password-min-classes", "3", "--password-min-score", "3"]
    ) == PasswordPolicy(12, 3, 3)
    assert settings_from([], {"MILVUS_AUTH_PASSWORD_MIN_SCORE": "2"}).min_score == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["--password-min-length", "5"],
        ["--password-min-classes", "9"],
        ["--password-min-score", "x"],
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        settings_from(argv)
    assert argv[0] in capsys.readouterr().err


def test_bad_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="MILVUS_AUTH_PASSWORD_MIN_CLASSES"):
        settings_from([], {"MILVUS_AUTH_PASSWORD_MIN_CLASSES": "7"})


@pytest.mark.parametrize("username", ["a", "abc", "Tan", "reporting"])
def test_generated_passwords_pass_the_strictest_policy(username: str) -> None:
    for _ in range(50):
        password = generate_password(username)
        STRICTEST.check(username, password)
        assert len(password) == 32


def test_short_usernames_may_appear_by_chance() -> None:
    STRICT.check("ab", "ab-Tangerine-Orbit-47")  # two letters: too short to count
    with pytest.raises(WeakPassword):
        STRICT.check("abc", "abc-Tangerine-Orbit-47")
