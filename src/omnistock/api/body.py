"""JSON request bodies, decoded strictly: straight from bytes into the handler's Struct.

Litestar's own decoding converts leniently (``"qty": "1"`` becomes 1, ``"lat": "nan"`` a NaN), and
the contract says a wrong type is a 422. :class:`StrictBody` is set as the ``dto`` of the routers
whose handlers take a JSON ``data`` body: it decodes with one cached msgspec decoder per handler
(no lenient conversion, no intermediate dicts) and reports failures as 422 naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
from litestar.dto import AbstractDTO, DTOConfig, DTOFieldDefinition
from litestar.typing import FieldDefinition

from omnistock.domain.errors import ValidationFailed
from omnistock.domain.ids import IDENTIFIER_PATTERN, TEXT_PATTERN

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.dto._backend import DTOBackend
    from litestar.openapi.spec import Reference, Schema

_AT_PATH = re.compile(r" - at `\$\.?(.*)`$")
_MISSING = re.compile(r"^Object missing required field `(.*)`$")
_PATTERNS = {  # msgspec names the regex a string failed; say what it means instead
    IDENTIFIER_PATTERN: "must be 1-128 characters of A-Z a-z 0-9 . _ : -",
    TEXT_PATTERN: "must not contain control characters",
}


def humane(message: str) -> str:
    """``Expected `str` matching regex '...'`` in words, for the patterns the API uses."""
    for pattern, words in _PATTERNS.items():
        if message.startswith("Expected `str` matching regex") and repr(pattern) in message:
            return words
    return message


def validation_error(exc: msgspec.MsgspecError) -> ValidationFailed:
    """A msgspec decode error as a 422 naming the field (``lines[0].qty``; ``body`` for the whole)."""
    text = str(exc)
    match = _AT_PATH.search(text)
    path = match.group(1) if match else ""
    message = humane(_AT_PATH.sub("", text))
    missing = _MISSING.match(message)
    if missing:  # name the missing field itself, not the object that lacks it
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
        message = "is required"
    elif isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        message = f"malformed JSON: {message}"
    return ValidationFailed(path or "body", message)


def _integral_floats(value: Any) -> Any:
    """``value`` with every float that has no fractional part (``10.0``) as an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral_floats(v) for k, v in value.items()}
    return value


def check_utf8(raw: bytes) -> None:
    """Raise UnicodeDecodeError unless ``raw`` is UTF-8. msgspec checks the strings it keeps but
    skips unknown members unchecked, so ``{"\xff": 1}`` would pass as ``{}``: JSON is UTF-8."""
    if not raw.isascii():  # (the common case costs one fast scan)
        raw.decode()


def decode(decoder: msgspec.json.Decoder[Any], raw: bytes) -> Any:
    """``raw`` decoded by ``decoder``; a 422 naming the field when it does not fit.

    JSON has one number type: ``10.0`` is the integer 10 (as JSON Schema, and so the OpenAPI
    document, says), so an integer field takes it; ``10.5`` or ``"10"`` is still a 422."""
    try:
        check_utf8(raw)
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        if "got `float`" not in str(exc):
            raise validation_error(exc) from None
        try:  # rare: only bodies that spell an integer with a fraction come this way
            return msgspec.convert(
                _integral_floats(msgspec.json.decode(raw)), decoder.type, strict=True
            )
        except msgspec.MsgspecError as again:
            raise validation_error(again) from None
    except msgspec.MsgspecError as exc:
        raise validation_error(exc) from None
    except UnicodeDecodeError:
        raise ValidationFailed("body", "malformed JSON: not UTF-8") from None
    except RecursionError:
        raise ValidationFailed("body", "malformed JSON: nested too deeply") from None


class StrictBody(AbstractDTO[Any]):
    """A data-only DTO: each handler's ``data`` annotation gets its own strict JSON decoder."""

    config: ClassVar[DTOConfig] = DTOConfig()
    _decoders: ClassVar[dict[str, msgspec.json.Decoder[Any]]] = {}
    # Litestar recomputes handler_id (a str() of the handler) on each access: look it up once
    # per handler. Keyed by the handler itself (held, so an id can never be reused by another).
    _by_handler: ClassVar[dict[object, msgspec.json.Decoder[Any]]] = {}

    @classmethod
    def create_for_field_definition(
        cls,
        field_definition: FieldDefinition,
        handler_id: str,
        backend_cls: type[DTOBackend] | None = None,
    ) -> None:
        if field_definition.name == "data":
            cls._decoders[handler_id] = msgspec.json.Decoder(field_definition.annotation)

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        # msgspec's own schema of the type the decoder above enforces: they cannot disagree.
        from omnistock.api.openapi import body_schema

        return body_schema(field_definition.raw)

    def decode_bytes(self, value: bytes) -> Any:
        handler = self.asgi_connection.route_handler
        decoder = self._by_handler.get(handler)
        if decoder is None:
            decoder = self._by_handler[handler] = self._decoders[handler.handler_id]
        return decode(decoder, value)

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        raise ValidationFailed("body", "send a JSON body (Content-Type: application/json)")

    @classmethod
    def is_supported_model_type_field(cls, field_definition: FieldDefinition) -> bool:
        return False  # request bodies only: responses are encoded as usual

    @classmethod
    def generate_field_definitions(
        cls, model_type: type[Any]
    ) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False
