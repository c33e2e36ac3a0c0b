"""`milvus-auth users` as a subprocess against a real etcd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from milvus_auth.core import verify_password
from milvus_auth.store import CredentialStore
from tests.harness.cli import run_cli
from tests.harness.processes import EtcdServer, free_port


def run(
    args: list[str], *, etcd: str, meta_root: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        ["users", *args], etcd=etcd, meta_root=meta_root, stdin=stdin, extra=["--bcrypt-cost", "4"]
    )


@pytest.fixture
def cli(etcd: EtcdServer, meta_root: str):  # type: ignore[no-untyped-def]
    def call(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return run(list(args), etcd=etcd.endpoint, meta_root=meta_root, stdin=stdin)

    return call


async def test_create_get_list_passwd_delete(cli, store: CredentialStore, meta_root: str) -> None:  # type: ignore[no-untyped-def]
    created = cli("create", "alice", "--password-file", "-", stdin="first-pw\n")
    assert created.returncode == 0, created.stderr
    stored = await store.get("alice")
    assert stored is not None
    assert stored.record.encrypted_password.startswith("$2a$04$")
    assert verify_password("first-pw", stored.record.encrypted_password)

    got = cli("get", "alice")
    assert got.returncode == 0
    assert f"key: {meta_root}/root-coord/credential/users/alice" in got.stdout
    assert f"revision: {stored.mod_revision}" in got.stdout
    assert "$2a$" not in got.stdout + got.stderr

    assert cli("create", "bob", "--password-file", "-", stdin="bob-pw-1").returncode == 0
    assert cli("list").stdout.split() == ["alice", "bob"]

    assert cli("passwd", "alice", "--password-file", "-", stdin="second-pw").returncode == 0
    stored = await store.get("alice")
    assert stored is not None
    assert verify_password("second-pw", stored.record.encrypted_password)

    deleted = cli("delete", "alice")
    assert deleted.returncode == 0
    assert await store.get("alice") is None
    assert cli("delete", "alice").returncode == 0


def test_password_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    result = cli("create", "carol", "--password-file", str(secret))
    assert result.returncode == 0
    assert "from-a-file" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["create", "1bad", "--password-file", "-"],
            "secret1",
            "invalid user name 1bad, the first character must be a letter, but got 1: "
            "invalid parameter",
        ),
        (
            ["create", "dave", "--password-file", "-"],
            "short",
            "invalid password length: invalid parameter[5 out of range 6 <= value <= 72]",
        ),
        (["delete", "root"], "", "root user cannot be deleted: privilege not permitted"),
        (["get", "nobody"], "", "user not found: nobody"),
        (["passwd", "nobody", "--password-file", "-"], "secret1", "user not found: nobody"),
    ],
)
def test_user_errors_exit_1_with_milvus_message(cli, args, stdin, message) -> None:  # type: ignore[no-untyped-def]
    result = cli(*args, stdin=stdin)
    assert result.returncode == 1
    assert message in result.stderr
    assert stdin not in result.stderr or not stdin


def test_create_existing_is_refused(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("create", "erin", "--password-file", "-", stdin="secret1").returncode == 0
    again = cli("create", "erin", "--password-file", "-", stdin="secret2")
    assert again.returncode == 1
    assert "user already exists: erin" in again.stderr


def test_no_terminal_and_no_file_is_a_user_error(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("create", "frank")
    assert result.returncode == 1
    assert "--password-file" in result.stderr


def test_password_is_never_an_argument(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("create", "gina", "--password", "secret1")
    assert result.returncode == 1
    assert "unrecognized arguments" in result.stderr


def test_etcd_unavailable_exits_2(meta_root: str) -> None:
    result = run(["list"], etcd=f"127.0.0.1:{free_port()}", meta_root=meta_root)
    assert result.returncode == 2
    assert "is unavailable" in result.stderr


def test_help_documents_env() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "milvus_auth.cli", "users", "create", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "MILVUS_AUTH_ETCD_ENDPOINTS" in result.stdout
    assert "--password-file" in result.stdout


async def test_password_policy_refuses_weak_passwords_and_keeps_the_record(
    cli, store: CredentialStore
) -> None:  # type: ignore[no-untyped-def]
    strict = ("--password-min-length", "12", "--password-min-classes", "3")
    weak = cli("create", "carol", "--password-file", "-", *strict, stdin="short-pw\n")
    assert weak.returncode == 1
    assert "weak password" in weak.stderr
    assert "at least 12 bytes" in weak.stderr
    assert "short-pw" not in weak.stderr + weak.stdout
    assert await store.get("carol") is None

    strong = "Tangerine-Orbit-47"
    assert cli("create", "carol", "--password-file", "-", *strict, stdin=strong).returncode == 0
    before = await store.get("carol")
    scored = cli(
        "passwd",
        "carol",
        "--password-file",
        "-",
        "--password-min-score",
        "3",
        stdin="carol-Carol-1!\n",
    )
    assert scored.returncode == 1
    assert "must not contain the username" in scored.stderr
    after = await store.get("carol")
    assert before is not None
    assert after is not None
    assert after.mod_revision == before.mod_revision
    assert verify_password(strong, after.record.encrypted_password)
