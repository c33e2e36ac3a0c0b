"""Benchmarks of the proxy; `python -m bench` (or `make bench`) runs them all."""
