"""milvus-auth: Milvus users as Kubernetes objects, enforced by an authenticating gRPC proxy."""

from milvus_auth import slim_pymilvus

__version__ = "0.1.0"

# Before anything imports pymilvus: its generated protobuf modules without its client.
slim_pymilvus.defer()
