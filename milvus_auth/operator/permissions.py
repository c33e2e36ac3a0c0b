"""Which namespaces may ask for what: the privileged-namespace rule, decided purely.

Anyone who may create a MilvusUser in some namespace must not thereby become Milvus root or
take over a user someone else made. Those requests are privileges, granted only to resources in
the operator's `--privileged-namespaces` (by default the operator's own namespace). Every kind
of resource asks here, so the rule and its wording live in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

PRIVILEGED_FLAG = "--privileged-namespaces"


class Privilege(enum.Enum):
    """Something only a resource in a privileged namespace may ask for (value: what, in words)."""

    ALLOW_ROOT = "set spec.allowRoot"
    ADOPT_USER = "manage a Milvus user that the operator did not create"


@dataclass(frozen=True)
class Permissions:
    """The operator's privileged namespaces (exact names)."""

    privileged_namespaces: frozenset[str] = frozenset()

    def privileged(self, namespace: str) -> bool:
        """Whether resources in `namespace` hold every privilege."""
        return namespace in self.privileged_namespaces

    def refusal(self, namespace: str, wanted: Iterable[Privilege]) -> str | None:
        """Why a resource in `namespace` may not have `wanted` (naming the rule), or None."""
        if self.privileged(namespace):
            return None
        refused = [privilege.value for privilege in wanted]
        if not refused:
            return None
        return (
            f"only resources in a privileged namespace ({PRIVILEGED_FLAG} of the operator) may "
            f"{' or '.join(refused)}; namespace {namespace} is not privileged"
        )
