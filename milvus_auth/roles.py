"""`milvus-auth roles`: list, get, create, delete, grant, revoke, bind and unbind, on etcd.

Writes the same keys a stock RootCoord writes, with Milvus's validations and texts. It never
changes `admin` (hard-wired in Milvus), `public` (re-granted at every Milvus start) or root's
roles. Running Milvus proxies cache policy: after a change, send them `RefreshPolicyInfoCache`
(or let a milvus-auth proxy's etcd watch pick it up). Exit codes: 0 ok, 1 user error, 2 etcd
unavailable.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from milvus_auth.config import add_common_arguments, common_settings
from milvus_auth.core.credentials import validate_username
from milvus_auth.core.errors import RoleNotFound
from milvus_auth.core.grants import PlannedGrant, RbacLayout, plan_v1, plan_v2
from milvus_auth.core.privileges import api_name
from milvus_auth.core.roles import (
    ensure_managed,
    ensure_managed_binding,
    validate_object_name,
    validate_role_name,
)
from milvus_auth.core.snapshot import PolicySnapshot
from milvus_auth.exits import run_to_exit_code
from milvus_auth.store import PolicyStore

Action = Callable[[PolicyStore, argparse.Namespace], Awaitable[None]]


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `roles` and its subcommands."""
    parser = commands.add_parser("roles", help="manage Milvus roles and grants in etcd directly")
    actions = parser.add_subparsers(dest="action", required=True)

    def action(name: str, run: Action, help: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = actions.add_parser(name, help=help, description=help)
        if name != "list":
            sub.add_argument("role", help="the role name")
        add_common_arguments(sub)
        sub.set_defaults(run=lambda args: _execute(run, args))
        return sub

    action("list", _list, "print every role, one per line")
    action("get", _get, "print a role's users and grants")
    action("create", _create, "create a role; fails if it exists")
    delete = action("delete", _delete, "delete a role with its bindings")
    delete.add_argument("--force", action="store_true", help="also drop its grants (force_drop)")
    for name, run, verb in (("grant", _grant, "grant"), ("revoke", _revoke, "revoke")):
        sub = action(name, run, f"{verb} a privilege or privilege group")
        _grant_arguments(sub)
    for name, run, help in (
        ("bind", _bind, "bind a user to the role (the user must exist)"),
        ("unbind", _unbind, "unbind a user from the role"),
    ):
        action(name, run, help).add_argument("username", help="the Milvus username")


def _grant_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("privilege", help="API name (Search, CollectionReadOnly, a group, *)")
    parser.add_argument(
        "--object-type",
        help="Global, Collection or User, for v1 semantics (OperatePrivilege); without it, v2 "
        "semantics (OperatePrivilegeV2): the type follows the privilege, groups are allowed",
    )
    parser.add_argument("--object-name", default="*", help="collection or user name, or *")
    parser.add_argument("--database", default="default", help="database name, or *")
    parser.add_argument("--grantor", default="root", help="the grantor Milvus records")


def _execute(run: Action, args: argparse.Namespace) -> int:
    settings = common_settings(args)

    async def body() -> None:
        async with PolicyStore(settings.etcd, RbacLayout(settings.layout.meta_root)) as store:
            await run(store, args)

    return run_to_exit_code(body, what="role")


async def _list(store: PolicyStore, _: argparse.Namespace) -> None:
    for role in await store.list_roles():
        print(role)


async def _get(store: PolicyStore, args: argparse.Namespace) -> None:
    role = validate_role_name(args.role)
    snapshot = await store.snapshot()
    if role not in snapshot.roles:
        raise RoleNotFound(role)
    print(f"role: {role}")
    print(f"users: {', '.join(sorted(snapshot.users_of(role)))}")
    for grant in snapshot.grants_of(role):
        target = grant.target
        print(
            f"grant: {target.object_type} {target.object_name} {api_name(grant.privilege)} "
            f"(grantor {grant.grantor})"
        )


async def _create(store: PolicyStore, args: argparse.Namespace) -> None:
    role = validate_role_name(args.role)
    await store.create_role(role)
    print(f"created role {role}")


async def _delete(store: PolicyStore, args: argparse.Namespace) -> None:
    role = validate_role_name(args.role)
    ensure_managed(role)
    await store.drop_role(role, force=args.force)
    print(f"deleted role {role}")


def _plan(args: argparse.Namespace, snapshot: PolicySnapshot) -> PlannedGrant:
    role = validate_role_name(args.role)
    ensure_managed(role)
    if role not in snapshot.roles:
        raise RoleNotFound(role)
    object_name = validate_object_name(args.object_name)
    groups = {name: group.privileges for name, group in snapshot.groups.items()}
    if args.object_type is None:
        return plan_v2(
            role, args.privilege, database=args.database, collection=object_name,
            custom_groups=groups,
        )  # fmt: skip
    return plan_v1(
        role, args.privilege, object_type=args.object_type, object_name=object_name,
        database=args.database, custom_groups=groups,
    )  # fmt: skip


async def _grant(store: PolicyStore, args: argparse.Namespace) -> None:
    planned = _plan(args, await store.snapshot())
    new = await store.grant(planned.target, planned.privilege, validate_username(args.grantor))
    print(f"{'granted' if new else 'already granted'}: {_describe(planned)}")


async def _revoke(store: PolicyStore, args: argparse.Namespace) -> None:
    planned = _plan(args, await store.snapshot())
    done = await store.revoke(planned.target, planned.privilege)
    print(f"{'revoked' if done else 'was not granted'}: {_describe(planned)}")


def _describe(planned: PlannedGrant) -> str:
    target = planned.target
    return f"{target.role} {target.object_type} {target.object_name} {planned.privilege}"


async def _bind(store: PolicyStore, args: argparse.Namespace) -> None:
    role, username = validate_role_name(args.role), validate_username(args.username)
    ensure_managed_binding(username, role)
    await store.bind(username, role)
    print(f"bound {username} to {role}")


async def _unbind(store: PolicyStore, args: argparse.Namespace) -> None:
    role, username = validate_role_name(args.role), validate_username(args.username)
    ensure_managed_binding(username, role)
    done = await store.unbind(username, role)
    print(f"{'unbound' if done else 'was not bound'}: {username} from {role}")
