"""The password policy in the operator: a weak referenced Secret is WeakPassword and the stored
record is kept; generated passwords pass the strictest policy."""

from __future__ import annotations

import base64
from dataclasses import replace

from milvus_auth.core import verify_password
from milvus_auth.core.passwords import PasswordPolicy
from milvus_auth.operator.config import OperatorConfig
from milvus_auth.store import CredentialStore
from tests.operator.cluster import Cluster, eventually
from tests.operator.conftest import FakeNotifier, StartOperator

STRICT = PasswordPolicy(min_length=12, min_classes=3, min_score=3)
STRONG = "Tangerine-Orbit-47"


def strict(config: OperatorConfig) -> dict[str, object]:
    return {"common": replace(config.common, password_policy=STRICT)}


async def test_a_weak_secret_is_refused_and_the_stored_password_kept(
    cluster: Cluster,
    start_operator: StartOperator,
    operator_config: OperatorConfig,
    store: CredentialStore,
) -> None:
    await start_operator(notifier=FakeNotifier(), **strict(operator_config))
    await cluster.put_secret("gus-password", STRONG)
    await cluster.create_user(
        "gus", {"username": "gus", "passwordSecretRef": {"name": "gus-password"}}
    )
    await eventually(lambda: cluster.reason("gus") == "Applied")
    before = await store.get("gus")
    assert before is not None

    await cluster.put_secret("gus-password", "Password1234!")
    await eventually(lambda: cluster.reason("gus") == "WeakPassword")
    condition = cluster.condition("gus")
    assert condition["status"] == "False"
    assert cluster.condition("gus", "Stalled")["status"] == "True"
    assert "estimated strength" in condition["message"]
    assert "Password1234!" not in str(cluster.status("gus"))
    after = await store.get("gus")
    assert after is not None
    assert after.mod_revision == before.mod_revision
    assert verify_password(STRONG, after.record.encrypted_password)

    await cluster.put_secret("gus-password", "gus-Gus-gus-2024!")
    await eventually(lambda: "must not contain the username" in cluster.condition("gus")["message"])


async def test_generated_passwords_pass_the_strict_policy(
    cluster: Cluster,
    start_operator: StartOperator,
    operator_config: OperatorConfig,
    store: CredentialStore,
) -> None:
    await start_operator(notifier=FakeNotifier(), **strict(operator_config))
    await cluster.create_user("hal", {"username": "hal"})
    await eventually(lambda: cluster.reason("hal") == "Applied")
    secret = cluster.secret("hal-milvus-credentials")
    assert secret is not None
    password = base64.b64decode(secret["data"]["password"]).decode()
    STRICT.check("hal", password)
    stored = await store.get("hal")
    assert stored is not None
    assert verify_password(password, stored.record.encrypted_password)
