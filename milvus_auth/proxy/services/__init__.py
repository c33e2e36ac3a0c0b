"""What the proxy answers itself: credential and RBAC RPCs, internal cache RPCs and health,
statuses."""
