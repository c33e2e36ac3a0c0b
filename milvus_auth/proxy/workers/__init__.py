"""`--workers N`: N proxy processes behind one public port, one internal port and one metrics
endpoint, kept alive and stopped together by a supervisor (see supervisor.py)."""
