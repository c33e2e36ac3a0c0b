"""A small async Kubernetes API client for what kopf does not do: live reads and owned Secrets.

It uses the same credentials kopf logged in with (handed over by the login handler), so the
kubeconfig is found exactly as kopf finds it. Request and response bodies are never logged:
they may hold Secret data.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

JsonObject = dict[str, Any]


class KubeError(Exception):
    """The API server answered with an error status, or could not be reached."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Kubernetes API {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class KubeAccess:
    """The API server's URL and how to authenticate to it."""

    server: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    ssl_context: ssl.SSLContext | None = None


class KubeClient:
    """GET/LIST/POST/PATCH of namespaced objects; 404 on GET is None, not an error."""

    def __init__(self, *, timeout: float = 10.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._access: KubeAccess | None = None
        self._session: aiohttp.ClientSession | None = None

    async def set_access(self, access: KubeAccess) -> None:
        """Use new credentials (after kopf's login or re-login)."""
        if access == self._access:
            return
        await self.close()
        self._access = access

    def _open(self) -> tuple[aiohttp.ClientSession, KubeAccess]:
        if self._access is None:
            raise KubeError(0, "not logged in yet")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=dict(self._access.headers), timeout=self._timeout
            )
        return self._session, self._access

    async def close(self) -> None:
        """Close the HTTP session."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def get(self, path: str) -> JsonObject | None:
        """The object at `path`, or None when it does not exist."""
        return await self._request("GET", path, missing_ok=True)

    async def list(self, path: str, *, label_selector: str | None = None) -> list[JsonObject]:
        """The items of a collection."""
        params = {"labelSelector": label_selector} if label_selector else None
        found = await self._request("GET", path, params=params)
        items = (found or {}).get("items") or []
        return [item for item in items if isinstance(item, dict)]

    async def create(self, path: str, body: JsonObject) -> JsonObject:
        """POST an object to a collection; returns the stored object."""
        created = await self._request("POST", path, json=body)
        assert created is not None
        return created

    async def patch(self, path: str, body: JsonObject) -> JsonObject:
        """JSON merge-patch an object; returns the stored object."""
        patched = await self._request(
            "PATCH", path, json=body, headers={"Content-Type": "application/merge-patch+json"}
        )
        assert patched is not None
        return patched

    async def _request(
        self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> JsonObject | None:
        session, access = self._open()
        url = access.server.rstrip("/") + path
        try:
            async with session.request(
                method, url, ssl=access.ssl_context or True, **kwargs
            ) as response:
                if response.status == 404 and missing_ok:
                    return None
                if response.status >= 400:
                    raise KubeError(response.status, await _reason(response))
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise KubeError(0, f"{method} {path} failed: {type(error).__name__}") from error
        return body if isinstance(body, dict) else {}


async def _reason(response: aiohttp.ClientResponse) -> str:
    # Only the Status object's message: never echo a request body (it may carry a Secret).
    try:
        body = await response.json(content_type=None)
    except (aiohttp.ContentTypeError, ValueError):
        return response.reason or "error"
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or response.reason or "error")[:300]


def namespaced_path(api: str, namespace: str, plural: str, name: str | None = None) -> str:
    """`/api/v1/namespaces/ns/secrets[/name]` or `/apis/group/version/namespaces/...`."""
    base = "/api/v1" if api == "v1" else f"/apis/{api}"
    path = f"{base}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path
