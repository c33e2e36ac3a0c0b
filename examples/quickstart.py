"""Quickstart: users and data through milvus-auth with nothing but pymilvus.

Start the stack with `make run` (etcd, milvus-lite and the proxy on 127.0.0.1:19530, root's
dev password `Milvus`), then run `.venv/bin/python examples/quickstart.py`. It connects as root,
creates a user and a collection, inserts and searches as root, shows that the new user, who
holds no role yet, is refused the search (Milvus's PERMISSION_DENIED), then gives it a role
that may search that collection (pymilvus's own role calls) and searches as the user, shows
that a wrong password is refused, and cleans up after itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from pymilvus import MilvusClient, MilvusException

USER = "quickstart_user"
USER_PASSWORD = "Quickstart-Pass-1"  # noqa: S105  (a demo password, created and dropped here)
WRONG_PASSWORD = "not-the-password"  # noqa: S105
COLLECTION = "quickstart_vectors"
ROLE = "quickstart_reader"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the walkthrough; 0 when every step behaved as documented."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", default="http://127.0.0.1:19530", help="the proxy's address")
    parser.add_argument("--root-password", default="Milvus", help="root's password (dev default)")
    args = parser.parse_args(argv)

    root = MilvusClient(uri=args.uri, user="root", password=args.root_password, timeout=10)
    print(f"connected to {args.uri} as root (server {root.get_server_version()})")
    if USER in root.list_users():
        root.drop_user(USER)
    root.create_user(USER, USER_PASSWORD)
    print(f"root created user {USER}; users now: {sorted(root.list_users())}")

    if root.has_collection(COLLECTION):
        root.drop_collection(COLLECTION)
    root.create_collection(COLLECTION, dimension=4)
    rows = [{"id": i, "vector": [float(i), 1.0, 0.5, 0.25]} for i in range(100)]
    inserted = root.insert(COLLECTION, rows)["insert_count"]
    query = [[42.0, 1.0, 0.5, 0.25]]
    hits = root.search(COLLECTION, data=query, limit=3)
    nearest = [hit["id"] for hit in hits[0]]
    print(f"root created {COLLECTION}, inserted {inserted} rows, nearest to 42: {nearest}")

    user = MilvusClient(uri=args.uri, user=USER, password=USER_PASSWORD, timeout=10)
    try:
        try:
            user.search(COLLECTION, data=query, limit=3)
        except grpc.RpcError as denied:
            print(f"{USER}, holding no role, is refused: {denied.details()}")
        else:
            print(f"ERROR: {USER} searched without a grant", file=sys.stderr)
            return 1
        granted = _grant_and_search(root, user, query)
        print(f"root granted {ROLE} Search on {COLLECTION} to {USER}; its search: {granted}")
    finally:
        user.close()
        root.drop_collection(COLLECTION)
        if ROLE in root.list_roles():
            root.drop_role(ROLE, force_drop=True)

    try:
        MilvusClient(uri=args.uri, user=USER, password=WRONG_PASSWORD, timeout=10)
    except MilvusException as refused:
        cause = refused.__cause__
        reason = cause.details() if isinstance(cause, grpc.RpcError) else refused.message
        print(f"a wrong password is refused: {reason}")
    else:
        print("ERROR: a wrong password was accepted", file=sys.stderr)
        return 1
    finally:
        root.drop_user(USER)
        root.close()
    return 0 if nearest and nearest[0] == 42 else 1


def _grant_and_search(root: MilvusClient, user: MilvusClient, query: list[list[float]]) -> object:
    """Root makes a role that may search the collection and gives it to the user, who then
    searches; the proxy enforces the grant before answering root."""
    if ROLE in root.list_roles():
        root.drop_role(ROLE, force_drop=True)
    root.create_role(ROLE)
    root.grant_privilege(ROLE, "Collection", "Search", COLLECTION)
    root.grant_role(USER, ROLE)
    return [hit["id"] for hit in user.search(COLLECTION, data=query, limit=3)[0]]


if __name__ == "__main__":
    sys.exit(main())
