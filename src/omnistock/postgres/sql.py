"""Named SQL blocks: a ``-- name: foo`` line starts block ``foo`` in a ``.sql`` file."""

from __future__ import annotations

from importlib import resources


def load_queries(filename: str) -> dict[str, str]:
    """Parse ``omnistock/postgres/<filename>`` into ``{name: sql}``."""
    text = (resources.files("omnistock.postgres") / filename).read_text()
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("-- name:"):
            current = blocks.setdefault(line.split(":", 1)[1].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in blocks.items()}
