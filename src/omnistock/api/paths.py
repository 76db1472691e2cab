"""Request paths as the router should see them."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

_ENCODED_SLASH = re.compile(rb"%2[fF]")


def keep_encoded_slashes(scope: Any) -> None:
    """An id holding an encoded slash (``a%2Fb``) must stay one path segment, so that it fails
    the identifier check (422 naming the parameter) instead of splitting into two segments and
    matching another route or none. The server decodes ``%2F`` into ``/``; undo that here."""
    raw: bytes | None = scope.get("raw_path")
    if raw is not None and _ENCODED_SLASH.search(raw):
        raw = raw.split(b"?", 1)[0]
        scope["path"] = "%2F".join(
            unquote(part.decode("latin-1")) for part in _ENCODED_SLASH.split(raw)
        )
    path = scope.get("path")
    if path and "\x00" in path:
        # No route or file takes a NUL (ids refuse it; a file lookup raises on it, a 500): keep
        # it encoded, so that an id still fails its check and a file is simply not found.
        scope["path"] = path.replace("\x00", "%00")
