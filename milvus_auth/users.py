"""`milvus-auth users`: list, get, create, passwd and delete credential records in etcd.

For cluster operators and scripts. Passwords come from a prompt or a file, never from argv;
nothing here ever prints a hash. Exit codes: 0 ok, 1 user error, 2 etcd unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from milvus_auth.config import (
    CommonSettings,
    ConfigError,
    add_common_arguments,
    common_settings,
    read_secret_file,
)
from milvus_auth.core import (
    CredentialRecord,
    UserNotFound,
    ensure_deletable,
    hash_password,
    validate_username,
)
from milvus_auth.exits import run_to_exit_code
from milvus_auth.store import CredentialStore

Action = Callable[[CredentialStore, CommonSettings, argparse.Namespace], Awaitable[None]]


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `users` and its subcommands."""
    parser = commands.add_parser("users", help="manage credential records in etcd directly")
    actions = parser.add_subparsers(dest="action", required=True)

    def action(name: str, run: Action, help: str, *, password: bool = False) -> None:
        sub = actions.add_parser(name, help=help, description=help)
        if name != "list":
            sub.add_argument("username", help="the Milvus username")
        if password:
            sub.add_argument(
                "--password-file",
                metavar="PATH",
                help="read the password from PATH (`-` for stdin) instead of prompting",
            )
        add_common_arguments(sub)
        sub.set_defaults(run=lambda args: _execute(run, args))

    action("list", _list, "print every username, one per line")
    action("get", _get, "print a user's username, layout, key and revision (never the hash)")
    action("create", _create, "create a user; fails if it exists", password=True)
    action("passwd", _passwd, "set a user's password (no old password needed)", password=True)
    action("delete", _delete, "delete a user and its role mappings (root cannot be deleted)")


def _execute(run: Action, args: argparse.Namespace) -> int:
    settings = common_settings(args)

    async def body() -> None:
        async with CredentialStore(settings.etcd, settings.layout) as store:
            await run(store, settings, args)

    return run_to_exit_code(body, what="user")


async def _list(store: CredentialStore, _: CommonSettings, __: argparse.Namespace) -> None:
    for username in await store.list_usernames():
        print(username)


async def _get(store: CredentialStore, settings: CommonSettings, args: argparse.Namespace) -> None:
    username = validate_username(args.username)
    stored = await store.get(username)
    if stored is None:
        raise UserNotFound(username)
    print(f"username: {username}")
    print(f"layout: {settings.layout.name}")
    print(f"key: {settings.layout.key_for(username)}")
    print(f"revision: {stored.mod_revision}")


async def _create(
    store: CredentialStore, settings: CommonSettings, args: argparse.Namespace
) -> None:
    username = validate_username(args.username)
    password = _read_password(args.password_file)
    settings.password_policy.check(username, password)
    hashed = await asyncio.to_thread(hash_password, password, settings.bcrypt_cost)
    record = CredentialRecord(username, hashed)
    revision = await store.create(record, max_users=settings.max_users)
    print(f"created {username} at revision {revision}")


async def _passwd(
    store: CredentialStore, settings: CommonSettings, args: argparse.Namespace
) -> None:
    username = validate_username(args.username)
    password = _read_password(args.password_file)
    settings.password_policy.check(username, password)
    stored = await store.get(username)
    if stored is None:
        raise UserNotFound(username)
    hashed = await asyncio.to_thread(hash_password, password, settings.bcrypt_cost)
    revision = await store.update(
        stored.record.with_password(hashed), expected_revision=stored.mod_revision
    )
    print(f"updated {username} at revision {revision}")


async def _delete(store: CredentialStore, _: CommonSettings, args: argparse.Namespace) -> None:
    username = validate_username(args.username)
    ensure_deletable(username)
    if await store.delete(username):
        print(f"deleted {username}")
    else:
        print(f"{username} had no record")


def _read_password(path: str | None) -> str:
    if path is not None:
        password = read_secret_file(path)
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise ConfigError("the passwords do not match")
    else:
        raise ConfigError("no terminal to prompt on: give --password-file PATH (- for stdin)")
    return password
