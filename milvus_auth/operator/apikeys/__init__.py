"""MilvusAPIKey: API keys issued into Secrets (spec parses, decide plans, act writes once,
report turns the result into status)."""
