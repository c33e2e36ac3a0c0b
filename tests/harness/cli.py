"""`milvus-auth <command>` as a subprocess against an etcd and a meta root, as an operator runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence


def run_cli(
    command: Sequence[str],
    *,
    etcd: str,
    meta_root: str,
    stdin: str = "",
    extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run `python -m milvus_auth.cli <command> --etcd-endpoints ... --meta-root ... <extra>`."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "milvus_auth.cli",
            *command,
            *("--etcd-endpoints", etcd, "--meta-root", meta_root, "--etcd-timeout", "2"),
            *extra,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
