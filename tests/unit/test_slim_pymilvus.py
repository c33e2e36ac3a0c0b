"""pymilvus's generated modules load without its client, and the client still loads on use.

Each check runs in a fresh interpreter: this test process imported pymilvus long ago.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_proxy_loads_milvus_messages_without_pandas_or_the_client() -> None:
    out = _run(
        """
        import sys
        import milvus_auth.proxy.command
        from pymilvus.grpc_gen import milvus_pb2
        milvus_pb2.CreateCredentialRequest(username="u")
        print(sorted(m for m in ("pandas", "numpy", "pymilvus.client") if m in sys.modules))
        """
    )
    assert out == "[]"


def test_the_client_loads_in_full_on_first_use_with_the_same_messages() -> None:
    out = _run(
        """
        import milvus_auth
        from pymilvus.grpc_gen import milvus_pb2
        from pymilvus import MilvusClient, __version__
        import pymilvus
        same = pymilvus.grpc_gen.milvus_pb2.CreateCredentialRequest is milvus_pb2.CreateCredentialRequest
        print(MilvusClient.__name__, bool(__version__), same)
        """
    )
    assert out == "MilvusClient True True"


def test_pymilvus_imported_first_is_left_as_it_is() -> None:
    out = _run(
        """
        import pymilvus
        import milvus_auth
        import sys
        print(sys.modules["pymilvus"] is pymilvus, "MilvusClient" in vars(pymilvus))
        """
    )
    assert out == "True True"
