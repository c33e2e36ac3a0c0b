"""MilvusUser: the spec parsed once, pure decisions, one writer, a pure report of the outcome."""
