"""The authenticating gRPC proxy in front of Milvus."""
