"""Grants and where Milvus keeps them: RBAC etcd keys, grantee ids and casbin policy strings.

Keys follow milvus-io/milvus `internal/metastore/kv/rootcoord/kv_catalog.go` (tenant `""`);
object names, policies and ids follow `pkg/util/funcutil/policy.go` and `pkg/util/crypto`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from milvus_auth.core.errors import RbacError
from milvus_auth.core.layout import DEFAULT_META_ROOT
from milvus_auth.core.privileges import (
    ANY,
    ObjectType,
    metastore_name,
    object_type_for,
    parse_object_type,
    stored_name,
    validate_v1,
    validate_v2,
)

DEFAULT_DB = "default"


def combine_object_name(database: str, name: str) -> str:
    """`CombineObjectName`: `<db>.<name>`, an empty database being `default`."""
    return f"{database or DEFAULT_DB}.{name}"


def split_object_name(combined: str) -> tuple[str, str]:
    """`SplitObjectName`: the database and name; a legacy name without `.` is in `default`."""
    database, dot, name = combined.partition(".")
    return (database, name) if dot else (DEFAULT_DB, combined)


def policy_object(object_type: ObjectType | str, database: str, name: str) -> str:
    """`PolicyForResource`: `<ObjectType>-<db>.<name>`, casbin's object."""
    return f"{object_type}-{combine_object_name(database, name)}"


def grantee_id(relative_key: str) -> str:
    """`crypto.MD5`: hex md5 of the grant key (relative to the meta root), characters 8..24."""
    return hashlib.md5(relative_key.encode(), usedforsecurity=False).hexdigest()[8:24]


@dataclass(frozen=True)
class Policy:
    """One casbin policy line: role, `<Type>-<db>.<name>`, stored privilege name."""

    role: str
    object: str
    privilege: str

    def to_json(self) -> str:
        """`PolicyForPrivilege`: Go's `Sprintf` of the three values (Milvus does not escape)."""
        return f'{{"PType":"p","V0":"{self.role}","V1":"{self.object}","V2":"{self.privilege}"}}'

    @classmethod
    def parse(cls, text: str) -> Policy:
        """Parse a policy as the proxy's casbin adapter does; anything else is an error."""
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as error:
            raise RbacError(f"invalid policy: {text[:200]!r}") from error
        if not isinstance(value, dict) or value.get("PType") != "p":
            raise RbacError(f"invalid policy: {text[:200]!r}")
        fields = [value.get(name) for name in ("V0", "V1", "V2")]
        if not all(isinstance(field, str) and field for field in fields):
            raise RbacError(f"invalid policy: {text[:200]!r}")
        role, obj, privilege = (str(field) for field in fields)
        return cls(role, obj, privilege)


@dataclass(frozen=True)
class GrantTarget:
    """What a grant key names: a role's privileges on one object in one database."""

    role: str
    object_type: ObjectType
    database: str
    name: str

    @property
    def object_name(self) -> str:
        """`<db>.<name>` as the key stores it."""
        return combine_object_name(self.database, self.name)

    def policy(self, stored_privilege: str) -> Policy:
        """The casbin policy granting `stored_privilege` on this target."""
        resource = policy_object(self.object_type, self.database, self.name)
        return Policy(self.role, resource, stored_privilege)


@dataclass(frozen=True)
class PlannedGrant:
    """A validated grant or revoke: the target and the privilege name to store."""

    target: GrantTarget
    privilege: str


def plan_v1(
    role: str,
    privilege: str,
    *,
    object_type: str,
    object_name: str,
    database: str,
    custom_groups: Collection[str],
) -> PlannedGrant:
    """OperatePrivilege v1: the object type is the caller's and must allow the privilege; a
    Global grant (other than a built-in group) is always on `*`."""
    parsed = parse_object_type(object_type)
    validate_v1(privilege, parsed, custom_groups)
    builtin_group = (metastore_name(privilege) or "").startswith("PrivilegeGroup")
    if parsed is ObjectType.GLOBAL and not builtin_group:
        object_name = ANY
    target = GrantTarget(role, parsed, database or DEFAULT_DB, object_name)
    return PlannedGrant(target, stored_name(privilege, custom_groups))


def plan_v2(
    role: str,
    privilege: str,
    *,
    database: str,
    collection: str,
    custom_groups: Mapping[str, Sequence[str]],
) -> PlannedGrant:
    """OperatePrivilege v2 (OperatePrivilegeV2): any privilege or group whose level fits the
    database and collection; the object type stored is the privilege's (`GetObjectType`)."""
    validate_v2(privilege, database=database, collection=collection, custom_groups=custom_groups)
    target = GrantTarget(role, object_type_for(privilege), database or DEFAULT_DB, collection)
    return PlannedGrant(target, stored_name(privilege, custom_groups))


@dataclass(frozen=True)
class RbacLayout:
    """Milvus's RBAC key names under one meta root (`<rootPath>/meta`)."""

    meta_root: str = DEFAULT_META_ROOT

    @property
    def root(self) -> str:
        """The meta root without surrounding slashes."""
        return self.meta_root.strip("/")

    def _key(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    @property
    def users_prefix(self) -> str:
        """`root-coord/credential/users/`: credential records (a user must exist to be bound)."""
        return self._key("root-coord/credential/users/")

    @property
    def roles_prefix(self) -> str:
        """`root-coord/credential/roles/<role>` = ""."""
        return self._key("root-coord/credential/roles/")

    @property
    def mappings_prefix(self) -> str:
        """`root-coord/credential/user-role-mapping/<user>/<role>` = ""."""
        return self._key("root-coord/credential/user-role-mapping/")

    @property
    def grants_prefix(self) -> str:
        """`root-coord/credential/grantee-privileges/<role>/<Type>/<db>.<name>` = grantee id."""
        return self._key("root-coord/credential/grantee-privileges/")

    @property
    def grantee_ids_prefix(self) -> str:
        """`root-coord/credential/grantee-id/<id>/<stored privilege>` = grantor."""
        return self._key("root-coord/credential/grantee-id/")

    @property
    def groups_prefix(self) -> str:
        """`root-coord/privilege-group/<group>` = PrivilegeGroupInfo protobuf (2.5+)."""
        return self._key("root-coord/privilege-group/")

    def role_key(self, role: str) -> str:
        """The key of a role."""
        return self.roles_prefix + role

    def mapping_key(self, user: str, role: str) -> str:
        """The key binding a user to a role."""
        return f"{self.mappings_prefix}{user}/{role}"

    def grant_key(self, target: GrantTarget) -> str:
        """The key holding a target's grantee id."""
        return f"{self.grants_prefix}{target.role}/{target.object_type}/{target.object_name}"

    def legacy_grant_key(self, target: GrantTarget) -> str:
        """The pre-database key of a target (`<role>/<Type>/<name>`), still honoured for
        `default`."""
        return f"{self.grants_prefix}{target.role}/{target.object_type}/{target.name}"

    def grantee_id_for(self, target: GrantTarget) -> str:
        """The id a stock RootCoord stores for a new grant key."""
        return grantee_id(self.grant_key(target)[len(self.root) + 1 :])

    def privilege_key(self, grantee: str, stored_privilege: str) -> str:
        """The key holding one privilege's grantor under a grantee id."""
        return f"{self.grantee_ids_prefix}{grantee}/{stored_privilege}"

    def group_key(self, group: str) -> str:
        """The key of a custom privilege group."""
        return self.groups_prefix + group

    def parse_grant_key(self, key: str) -> GrantTarget:
        """The target a grant key names; legacy keys without `<db>.` are in `default`."""
        role, _, rest = _under(key, self.grants_prefix).partition("/")
        type_name, _, combined = rest.partition("/")
        if not role or not combined:
            raise RbacError(f"malformed grant key {key}")
        database, name = split_object_name(combined)
        return GrantTarget(role, parse_object_type(type_name), database, name)

    def parse_mapping_key(self, key: str) -> tuple[str, str]:
        """The user and role of a mapping key."""
        user, _, role = _under(key, self.mappings_prefix).partition("/")
        if not user or not role:
            raise RbacError(f"malformed user-role mapping key {key}")
        return user, role

    def parse_privilege_key(self, key: str) -> tuple[str, str]:
        """The grantee id and stored privilege name of a grantee-id key."""
        grantee, _, privilege = _under(key, self.grantee_ids_prefix).partition("/")
        if not grantee or not privilege:
            raise RbacError(f"malformed grantee-id key {key}")
        return grantee, privilege

    def name_under(self, key: str, prefix: str) -> str:
        """The last segment of a role or group key."""
        return _under(key, prefix)


def _under(key: str, prefix: str) -> str:
    if not key.startswith(prefix):
        raise RbacError(f"key {key} is not under {prefix}")
    return key[len(prefix) :]
