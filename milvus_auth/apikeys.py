"""`milvus-auth apikeys`: create, list and revoke API keys in etcd directly.

For whoever holds etcd credentials (Kubernetes tenants use `MilvusAPIKey` resources). A key
acts as an existing Milvus user, so that user's roles apply to it. `create` prints the key once,
on stdout, and never again: only a hash is stored. `list` shows ids, names, users and times,
never a secret or a hash. Exit codes: 0 ok, 1 user error, 2 etcd unavailable.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from milvus_auth.config import CommonSettings, add_common_arguments, common_settings
from milvus_auth.core import UserNotFound, validate_username
from milvus_auth.core.apikeys import ApiKeyRecord, generate_api_key, is_key_id, parse_duration
from milvus_auth.core.errors import MilvusError
from milvus_auth.exits import run_to_exit_code
from milvus_auth.store import ApiKeyStore, CredentialStore

Action = Callable[[CommonSettings, argparse.Namespace], Coroutine[Any, Any, None]]
MAX_NAME_LENGTH = 63


class UnknownApiKey(MilvusError):
    """Revoking an id that has no record."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key not found: {key_id[:16]!r}")


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `apikeys` and its subcommands."""
    parser = commands.add_parser("apikeys", help="manage API keys in etcd directly")
    actions = parser.add_subparsers(dest="action", required=True)

    def action(name: str, run: Action, help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=help, description=help)
        add_common_arguments(sub)
        sub.set_defaults(run=lambda args: _execute(run, args))
        return sub

    create = action("create", _create, "issue a key acting as USERNAME; prints it once")
    create.add_argument("--username", required=True, help="the Milvus user the key acts as")
    create.add_argument("--expires-after", type=_duration, help="e.g. 720h; default: never")
    create.add_argument("--name", default="", type=_name, help="a label shown by `list`")
    action("list", _list, "print id, name, username, issued, expires and last use of every key")
    revoke = action("revoke", _revoke, "revoke a key by its id (every proxy refuses it at once)")
    revoke.add_argument("key_id", help="the key's id (the part after `mak_`)")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _name(text: str) -> str:
    if len(text) > MAX_NAME_LENGTH or not text.isprintable():
        raise argparse.ArgumentTypeError(f"at most {MAX_NAME_LENGTH} printable characters")
    return text


def _execute(run: Action, args: argparse.Namespace) -> int:
    settings = common_settings(args)
    return run_to_exit_code(lambda: run(settings, args), what="API key")


async def _create(settings: CommonSettings, args: argparse.Namespace) -> None:
    username = validate_username(args.username)
    async with CredentialStore(settings.etcd, settings.layout) as users:
        if await users.get(username) is None:
            raise UserNotFound(username)
    now = int(time.time())
    key = generate_api_key()
    record = ApiKeyRecord(
        key_id=key.key_id,
        username=username,
        secret_hash=key.secret_hash,
        issued_at=now,
        expires_at=None if args.expires_after is None else now + int(args.expires_after),
        name=args.name,
    )
    async with ApiKeyStore(settings.etcd, settings.layout.meta_root) as store:
        await store.create(record)
    print(key.token)


async def _list(settings: CommonSettings, _: argparse.Namespace) -> None:
    async with ApiKeyStore(settings.etcd, settings.layout.meta_root) as store:
        stored = await store.list()
    print("ID\tNAME\tUSERNAME\tISSUED\tEXPIRES\tLAST USED")
    for item in stored:
        record = item.record
        print(
            "\t".join(
                (
                    record.key_id,
                    record.name or "-",
                    record.username,
                    _when(record.issued_at),
                    _when(record.expires_at),
                    _when(record.last_used_at),
                )
            )
        )


async def _revoke(settings: CommonSettings, args: argparse.Namespace) -> None:
    if not is_key_id(args.key_id):
        raise UnknownApiKey(args.key_id)
    async with ApiKeyStore(settings.etcd, settings.layout.meta_root) as store:
        if not await store.delete(args.key_id):
            raise UnknownApiKey(args.key_id)
    print(f"revoked {args.key_id}")


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
