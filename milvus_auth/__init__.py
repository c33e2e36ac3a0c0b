"""milvus-auth: Milvus users as Kubernetes objects, enforced by an authenticating gRPC proxy."""

__version__ = "0.1.0"
