"""What the proxy answers itself: credential RPCs, internal cache RPCs and health, statuses."""
