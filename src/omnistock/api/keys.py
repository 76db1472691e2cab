"""API keys (admin only): create (the secret is shown once), list, delete."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from omnistock.api.auth import principal
from omnistock.api.body import StrictBody
from omnistock.api.limits import KEY_BODY_BYTES
from omnistock.api.openapi import responses
from omnistock.api.schemas import KeyCreateBody
from omnistock.domain.errors import NotFound, ValidationFailed
from omnistock.domain.ids import is_identifier
from omnistock.domain.roles import ApiKey, Role, require_admin
from omnistock.usecases.keys import Keys


class KeyList(msgspec.Struct):
    items: list[ApiKey]


@post(
    "/",
    summary="Create an API key (its secret is in this response only)",
    status_code=201,
    request_max_body_size=KEY_BODY_BYTES,
    responses=responses(403, 413, 422),
)
async def create_key(
    request: Request[Any, Any, Any], data: JSONBody[KeyCreateBody], keys: NamedDependency[Keys]
) -> ApiKey:
    require_admin(principal(request))
    if data.role is Role.STORE and not data.locations:
        raise ValidationFailed("locations", "a store key needs the locations it may write at")
    return await keys.create(data.name, data.role, data.locations)


@get("/", summary="List API keys (without secrets)", responses=responses(403))
async def list_keys(request: Request[Any, Any, Any], keys: NamedDependency[Keys]) -> KeyList:
    require_admin(principal(request))
    return KeyList(items=await keys.listed())


@delete(
    "/{key_id:str}",
    summary="Delete an API key: it stops working at once, everywhere",
    status_code=204,
    responses=responses(403, 404, 422),
)
async def delete_key(
    request: Request[Any, Any, Any],
    key_id: Annotated[str, PathParameter(min_length=1)],
    keys: NamedDependency[Keys],
) -> Response[None]:
    require_admin(principal(request))
    if not is_identifier(key_id):  # (not echoed: a path can be long)
        raise NotFound("API key not found")
    if not await keys.delete(key_id):
        raise NotFound(f"API key {key_id!r} not found")
    return Response(None, status_code=204)


keys_router = Router(
    "/v1/keys", route_handlers=[create_key, list_keys, delete_key], tags=["keys"], dto=StrictBody
)
