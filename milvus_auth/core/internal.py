"""Names shared by the proxy's internal port and its callers (the operator, probes)."""

from __future__ import annotations

# gRPC metadata key carrying the shared internal token, when `--internal-token-file` is set.
INTERNAL_TOKEN_METADATA = "milvus-auth-internal-token"  # noqa: S105  (a key name, not a token)

# `MsgBase.properties` key of an UpdateCredentialCache request: the etcd revision of the record
# the digest belongs to. With it, the etcd watch event of that same write does not drop the
# pre-warmed entry (it would otherwise, when it arrives after the RPC). Stock RootCoord omits it.
RECORD_REVISION_PROPERTY = "milvus-auth-record-revision"

# milvus-auth's own API-key cache service on the internal port (milvus_auth/protos/apikeys.proto).
# A stock Milvus answers UNIMPLEMENTED: it holds no API keys.
API_KEY_CACHE_SERVICE = "milvus_auth.v1.ApiKeyCache"
INVALIDATE_API_KEY_CACHE_METHOD = f"/{API_KEY_CACHE_SERVICE}/InvalidateApiKeyCache"
