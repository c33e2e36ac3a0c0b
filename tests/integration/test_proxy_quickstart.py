"""The README's promise: `make run`'s script brings the stack up, examples/quickstart.py works
against it, and Ctrl-C (SIGINT) stops every process it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.processes import free_port, port_open, wait_until
from tests.harness.proxy import ProxyProcess

REPO = Path(__file__).resolve().parents[2]


def run_quickstart(uri: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py"), "--uri", uri],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_quickstart_through_a_proxy(proxy: ProxyProcess) -> None:
    done = run_quickstart(proxy.uri)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nearest to 42: [42," in done.stdout
    assert (
        "quickstart_user, holding no role, is refused: "
        "PrivilegeSearch: permission deny to quickstart_user in the `default` database"
    ) in done.stdout
    assert (
        "root granted quickstart_reader Search on quickstart_vectors to quickstart_user; "
        "its search: [42,"
    ) in done.stdout
    assert "a wrong password is refused: auth check failure" in done.stdout
    assert "Quickstart-Pass-1" not in proxy.log()


# As from a terminal: a test run started in the background (`cmd &` without job control)
# ignores SIGINT, its children inherit that, and a shell cannot trap a signal ignored on entry.
_WITH_DEFAULT_SIGINT = (
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])",
)


def test_make_run_script_then_quickstart_then_ctrl_c(tmp_path: Path) -> None:
    ports = {
        name: free_port()
        for name in ("PROXY_PORT", "INTERNAL_PORT", "MILVUS_PORT", "ETCD_PORT", "ETCD_PEER_PORT")
    }
    ports["METRICS_PORT"] = free_port()
    env = {name: str(port) for name, port in ports.items()}
    env.update(RUN_DIR=str(tmp_path / "run"), BIN=str(Path(sys.executable).parent))
    output = tmp_path / "run.out"
    with output.open("w") as out:
        script = subprocess.Popen(
            [*_WITH_DEFAULT_SIGINT, str(REPO / "scripts" / "run-dev.sh")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: "Press Ctrl-C" in output.read_text() or script.poll() is not None,
            timeout=60,
            what="make run",
        )
        assert script.poll() is None, output.read_text()
        done = run_quickstart(f"http://127.0.0.1:{ports['PROXY_PORT']}")
        assert done.returncode == 0, done.stdout + done.stderr
        script.send_signal(signal.SIGINT)
        try:
            script.wait(40)  # the script gives each process 20 s, then kills it
        except subprocess.TimeoutExpired:
            pytest.fail(f"make run did not stop on Ctrl-C:\n{output.read_text()}")
        assert "stopped" in output.read_text()
        for name in ("PROXY_PORT", "INTERNAL_PORT", "MILVUS_PORT", "ETCD_PORT"):
            assert not port_open(ports[name]), f"{name} still open after Ctrl-C"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(script.pid, signal.SIGKILL)  # whatever a failure left running
