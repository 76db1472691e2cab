"""Rate limits per API key (API.md "Conventions (additions)"), shared by every instance.

Runs inside :class:`~omnistock.api.auth.ApiKeyAuth` (it needs the caller's key and role): every
``/v1`` request, and a WebSocket upgrade as one request, is counted by ratelimit.lua in Redis.
Passing responses get ``RateLimit-Policy`` and ``RateLimit`` headers
(draft-ietf-httpapi-ratelimit-headers-10); a refused one is a 429 problem with ``Retry-After``.

If Redis does not answer the limiter, the request goes through unchecked (fail open: see
usecases/ratelimits.py); the request's own Redis work answers 503 if it must.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from omnistock.api.errors import PROBLEM_JSON
from omnistock.domain.ratelimit import (
    Decision,
    Policy,
    policy_header,
    retry_after_seconds,
    state_header,
)
from omnistock.domain.roles import Principal, Role
from omnistock.usecases.ratelimits import RateLimits

_encode = msgspec.json.Encoder().encode


def rate_limits(policies: dict[Role, Policy] | None) -> Any:
    """The middleware factory for ``policies`` (None: no limits, no headers)."""
    policy_headers = {
        role: (b"ratelimit-policy", policy_header(role, policy).encode())
        for role, policy in (policies or {}).items()
    }

    def factory(app: ASGIApp) -> ASGIApp:
        if policies is None:
            return app

        def middleware(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
            # A plain function returning the next awaitable: a request decided locally (most of
            # a busy key's) adds no coroutine to the chain its every await passes through.
            who = scope.get("user")
            if not isinstance(who, Principal) or not scope["path"].startswith("/v1"):
                return app(scope, receive, send)
            limits: RateLimits = scope["app"].state.services.usecases.rate_limits
            policy = policies[who.role]
            decision = limits.local(who, policy)
            if decision is None:
                return asked(scope, receive, send, limits, who, policy)
            return answer(scope, receive, send, limits, who, policy, decision)

        async def asked(
            scope: Scope,
            receive: Receive,
            send: Send,
            limits: RateLimits,
            who: Principal,
            policy: Policy,
        ) -> None:
            decision = await limits.ask(who, policy)
            await answer(scope, receive, send, limits, who, policy, decision)

        def answer(
            scope: Scope,
            receive: Receive,
            send: Send,
            limits: RateLimits,
            who: Principal,
            policy: Policy,
            decision: Decision | None,
        ) -> Awaitable[None]:
            role = who.role
            if decision is None:  # not checked (fail open): the full quota
                remaining, reset_us = policy.requests, 0
            else:
                remaining, reset_us = decision.remaining, decision.reset_us
            headers = [
                policy_headers[role],
                (b"ratelimit", state_header(role, remaining, reset_us).encode()),
            ]
            if decision is not None and not decision.allowed:
                limits.refused(who)
                return _refuse(scope, receive, send, who, policy, decision.retry_us, headers)

            async def send_with_headers(message: Message) -> None:
                if message["type"] in ("http.response.start", "websocket.accept"):
                    message["headers"] = [*(message.get("headers") or ()), *headers]
                await send(message)

            return app(scope, receive, send_with_headers)

        return cast(ASGIApp, middleware)

    return factory


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    who: Principal,
    policy: Policy,
    retry_us: int,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """A 429 problem with ``Retry-After`` (for a WebSocket: as its handshake's HTTP answer)."""
    retry = retry_after_seconds(retry_us)
    body = _encode(
        {
            "type": "urn:omnistock:problem:too-many-requests",
            "title": "Too many requests",
            "status": 429,
            "detail": f"this API key ({who.role.value}) is limited to {policy.requests} "
            f"requests per {policy.seconds} s; retry in {retry} s",
            "retry_after_seconds": retry,
        }
    )
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"retry-after", str(retry).encode()),
        *headers,
    ]
    if scope["type"] != ScopeType.WEBSOCKET:
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
    elif "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": 429, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:
        await receive()  # websocket.connect; closing before accept refuses the handshake
        await send({"type": "websocket.close", "code": 1013, "reason": "rate limited"})
