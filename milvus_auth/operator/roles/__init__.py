"""MilvusRole: declared Milvus roles and grants (spec parses, decide plans, act writes once)."""
