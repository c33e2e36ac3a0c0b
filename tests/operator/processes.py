"""`milvus-auth operator` as a real child process against kmock, for the peering tests.

Unlike `OperatorThread`, a process can be killed (SIGKILL): the hard death a standby must
notice by the active operator's peering lifetime running out. Its counters are read from its
Prometheus endpoint.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tests.harness.processes import ServerProcess, free_port
from tests.harness.proxy import milvus_auth_binary
from tests.operator.cluster import NAMESPACE

_PREFIX = "milvus_auth_operator_"


class OperatorProcess(ServerProcess):
    """One operator watching NAMESPACE, with its metrics on a free port; ready when they are."""

    def __init__(
        self,
        workdir: Path,
        *,
        name: str,
        kubeconfig: Path,
        etcd_endpoint: str,
        meta_root: str,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.metrics_port = free_port()
        argv = [
            milvus_auth_binary(),
            "operator",
            *("--kubeconfig", str(kubeconfig), "--namespace", NAMESPACE),
            *("--etcd-endpoints", etcd_endpoint, "--meta-root", meta_root),
            *("--bcrypt-cost", "4", "--metrics-port", str(self.metrics_port)),
            *("--log-level", "debug"),
            *extra_args,
        ]
        super().__init__(
            name,
            argv,
            log_path=workdir / f"{name}.log",
            ready=self._metrics_answer,
            env={"POD_ID": name},  # kopf's peer identity
            start_timeout=90.0,  # importing kopf and kubernetes takes long on a busy machine
        )

    def _metrics_answer(self) -> bool:
        try:
            self.metrics_text()
        except OSError:
            return False
        return True

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())

    def counter(self, name: str) -> float:
        """The sum of every sample of the counter `milvus_auth_operator_<name>_total`."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            sample, _, value = line.rpartition(" ")
            if sample.split("{", 1)[0] == f"{_PREFIX}{name}_total":
                total += float(value)
        return total
