"""pymilvus's generated protobuf modules without the rest of pymilvus, until it is used.

milvus-auth needs only `pymilvus.grpc_gen` (the code protoc generated from Milvus's .proto
files), but importing it runs `pymilvus/__init__` first, which loads pymilvus's client with
pandas and numpy: about 1.5 s and 100 MiB in every proxy worker, operator and CLI process, none
of it used. `defer` puts the `pymilvus` package in place without running its `__init__` (the
package's directory is all `grpc_gen` needs) and runs it, in that same module object, the first
time a name the package itself defines is asked for (`from pymilvus import MilvusClient`). A
process that uses the client still gets all of it, with one copy of every generated module.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from typing import Any

_lock = threading.RLock()


def defer() -> None:
    """Put a deferred `pymilvus` package in place, unless pymilvus is imported already."""
    if "pymilvus" in sys.modules:
        return
    spec = importlib.util.find_spec("pymilvus")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return  # not installed, or not a package: a plain import will say so
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    pending = [True]

    def complete(name: str) -> Any:
        # Module-level __getattr__ (PEP 562): asked only for names the module does not have.
        with _lock:
            if pending:
                pending.clear()
                delattr(package, "__getattr__")
                loader.exec_module(package)
        return getattr(package, name)

    setattr(package, "__getattr__", complete)  # noqa: B010  (a module attribute, not a method)
    sys.modules["pymilvus"] = package
