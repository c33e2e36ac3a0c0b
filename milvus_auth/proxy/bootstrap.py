"""Root bootstrap at proxy start: create `root` from --root-password-file if it has no record.

Milvus creates root with the password `Milvus` on its first start (milvus#33058: settable only
then). milvus-auth never invents a password: with authentication on and no root record, the
operator must give one, or the proxy refuses to start. An existing root is never overwritten, so
every proxy of a deployment can be given the same file; when several start at once, the first
create wins and the others see `UserExists`.
"""

from __future__ import annotations

import asyncio
import logging

from milvus_auth.core import (
    ROOT_USERNAME,
    CredentialRecord,
    InvalidParameter,
    MalformedRecord,
    UserExists,
    hash_password,
    validate_password,
)
from milvus_auth.core.passwords import PasswordPolicy
from milvus_auth.store import CredentialStore

log = logging.getLogger(__name__)


class BootstrapError(Exception):
    """The proxy cannot start safely; the message tells the operator what to do."""


async def bootstrap_root(
    store: CredentialStore,
    *,
    password: str | None,
    auth_enabled: bool,
    bcrypt_cost: int,
    password_policy: PasswordPolicy | None = None,
) -> None:
    """Make sure root has a record; raise `BootstrapError` when it cannot be made.

    `EtcdUnavailable` propagates: whether to wait for etcd is the caller's decision.
    """
    if password is not None:
        # Checked even when root exists: a wrong file should fail loudly at every start.
        try:
            validate_password(password)
        except InvalidParameter as error:
            raise BootstrapError(f"the root password file is unusable: {error.reason}") from error
    try:
        existing = await store.get(ROOT_USERNAME)
    except MalformedRecord:
        log.warning("root bootstrap: root's record is malformed; left unchanged")
        return
    if existing is not None:
        log.info("root bootstrap: root already has a record; left unchanged")
        return
    if password is None:
        if auth_enabled:
            raise BootstrapError(
                "authentication is on but etcd has no root user: give its initial password "
                "with --root-password-file PATH or MILVUS_AUTH_ROOT_PASSWORD_FILE"
            )
        log.warning("root bootstrap: no root user and no --root-password-file (auth is off)")
        return
    # The policy applies to the password root is about to get, not to a file that is ignored
    # because root exists (a stricter policy must not stop proxies of a running deployment).
    try:
        (password_policy or PasswordPolicy()).check(ROOT_USERNAME, password)
    except InvalidParameter as error:
        raise BootstrapError(f"the root password file is unusable: {error.reason}") from error
    hashed = await asyncio.to_thread(hash_password, password, bcrypt_cost)
    try:
        await store.create(CredentialRecord(ROOT_USERNAME, hashed))
    except UserExists:
        log.info("root bootstrap: another process created root first; left unchanged")
        return
    log.info("root bootstrap: created root from the root password file")
