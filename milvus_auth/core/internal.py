"""Names shared by the proxy's internal port and its callers (the operator, probes)."""

from __future__ import annotations

# gRPC metadata key carrying the shared internal token, when `--internal-token-file` is set.
INTERNAL_TOKEN_METADATA = "milvus-auth-internal-token"  # noqa: S105  (a key name, not a token)
