"""Every boolean flag of every subcommand works as users type it: bare, `=value`, ` value`."""

from __future__ import annotations

import argparse

import pytest

from milvus_auth.cli import build_parser
from milvus_auth.config import parse_bool

REQUIRED = {"proxy": ["--upstream", "127.0.0.1:1"]}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                children = _subparsers(sub)
                found.update({f"{name} {k}": v for k, v in children.items()} or {name: sub})
    return found


def _boolean_flags() -> list[tuple[str, str, str]]:
    flags = []
    for path, sub in _subparsers(build_parser()).items():
        for action in sub._actions:
            if action.type is parse_bool:
                flags.append((path, action.option_strings[0], action.dest))
    return flags


BOOLEAN_FLAGS = _boolean_flags()


def test_the_boolean_flags_are_found() -> None:
    names = {flag for _, flag, _ in BOOLEAN_FLAGS}
    assert {"--all-namespaces", "--auth-enabled", "--insecure-internal-port"} <= names


@pytest.mark.parametrize(("command", "flag", "dest"), BOOLEAN_FLAGS)
def test_each_boolean_flag_both_ways(command: str, flag: str, dest: str) -> None:
    parser = build_parser()
    base = [*command.split(), *REQUIRED.get(command.split(maxsplit=1)[0], [])]
    assert getattr(parser.parse_args([*base, flag]), dest) is True
    assert getattr(parser.parse_args([*base, f"{flag}=false"]), dest) is False
    assert getattr(parser.parse_args([*base, f"{flag}=true"]), dest) is True
    assert getattr(parser.parse_args([*base, flag, "no"]), dest) is False
    with pytest.raises(SystemExit):
        parser.parse_args([*base, f"{flag}=maybe"])
