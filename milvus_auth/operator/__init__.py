"""The kopf operator reconciling MilvusUser resources into credential records."""
