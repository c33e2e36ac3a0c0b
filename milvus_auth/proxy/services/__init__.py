"""What the proxy answers itself instead of forwarding: Milvus's RBAC RPCs."""
