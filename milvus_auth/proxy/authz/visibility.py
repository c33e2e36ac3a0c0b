"""Which databases and collections a user may see, as Milvus 2.6's RootCoord decides it.

`getCurrentUserVisibleDatabases` / `getCurrentUserVisibleCollections` (root_coord.go) read the
user's stored roles (never `public`) and their grants: `admin` sees everything; a database is
visible when any grant names it (a `*` database: all); a collection is visible in a database
when a Collection grant, a custom group or a Collection* built-in group names it there (or
`*`), and a Global `All` grant makes every collection visible. None means "everything".
Pure: it reads a snapshot, nothing else.
"""

from __future__ import annotations

from milvus_auth.core import ROOT_USERNAME
from milvus_auth.core.privileges import ANY, ObjectType, api_name
from milvus_auth.core.roles import ADMIN_ROLE, PUBLIC_ROLE
from milvus_auth.core.snapshot import PolicySnapshot

_COLLECTION_GROUPS = frozenset({"CollectionReadOnly", "CollectionReadWrite", "CollectionAdmin"})

Visible = frozenset[str] | None
"""Names a user may see; None when it may see every one."""


def _roles(snapshot: PolicySnapshot, user: str, root_bound: bool) -> frozenset[str] | None:
    """The user's stored roles, None when it sees everything (root, admin)."""
    if user == ROOT_USERNAME and not root_bound:
        return None
    roles = snapshot.roles_of(user)
    return None if ADMIN_ROLE in roles else roles - {PUBLIC_ROLE}


def visible_databases(snapshot: PolicySnapshot, user: str, *, root_bound: bool) -> Visible:
    """The databases `ListDatabases` shows the user."""
    roles = _roles(snapshot, user, root_bound)
    if roles is None:
        return None
    found: set[str] = set()
    for grant in snapshot.grants:
        if grant.target.role in roles:
            if grant.target.database == ANY:
                return None
            found.add(grant.target.database)
    return frozenset(found)


def visible_collections(
    snapshot: PolicySnapshot, user: str, database: str, *, root_bound: bool
) -> Visible:
    """The collections of `database` that `ShowCollections` shows the user."""
    roles = _roles(snapshot, user, root_bound)
    if roles is None:
        return None
    found: set[str] = set()
    for grant in snapshot.grants:
        target = grant.target
        if target.role not in roles or target.database not in (database, ANY):
            continue
        privilege = api_name(grant.privilege)
        if target.object_type is ObjectType.GLOBAL and privilege == "All":
            return None
        collection_scoped = (
            target.object_type is ObjectType.COLLECTION
            or privilege in snapshot.groups
            or privilege in _COLLECTION_GROUPS
        )
        if not collection_scoped:
            continue
        if target.name == ANY:
            return None
        found.add(target.name)
    return frozenset(found)
