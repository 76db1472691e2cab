"""Bearer API keys on every /v1 call (WebSocket: the header or ``?api_key=``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from omnistock.domain.ports import KeyLookup
from omnistock.domain.roles import Principal


def _keys(connection: ASGIConnection[Any, Any, Any, Any]) -> KeyLookup:
    """The process's API-key cache (the lifespan puts the services in the app state)."""
    return cast(KeyLookup, connection.app.state.services.keys)


def principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The caller, set by :class:`ApiKeyAuth`."""
    return cast(Principal, connection.scope["user"])


def _authorization(headers: Iterable[tuple[bytes, bytes]]) -> str:
    # The raw ASGI headers (names are lower-case): cheaper than parsing them all into a mapping.
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
    return ""


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The API key the caller sent: the bearer token (WebSocket: or ``?api_key=``); "" if none."""
    header = _authorization(connection.scope["headers"])
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        secret = ""
        if connection.scope["type"] == ScopeType.WEBSOCKET:
            secret = connection.query_params.get("api_key", "")
    return secret.strip()


class ApiKeyAuth(AbstractAuthenticationMiddleware):
    """Resolves the API key to a principal; 401 when it is missing or unknown."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        secret = presented_key(connection)
        if not secret:
            raise NotAuthorizedException("missing API key: send 'Authorization: Bearer <key>'")
        found = await _keys(connection).principal(secret)
        if found is None:
            raise NotAuthorizedException("unknown or deleted API key")
        return AuthenticationResult(user=found, auth=None)
