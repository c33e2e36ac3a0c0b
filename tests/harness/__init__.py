"""Real processes for tests: etcd, milvus-lite, proxies. Each waits until it answers."""
