"""Secrets out of the logs: a logging filter that masks API keys wherever a record carries one.

uvicorn logs every WebSocket handshake with its query string (``?api_key=...``), and any log line
may quote a URL, a header or an exception that holds a key. The filter sits on the handlers (so
it sees the records of every logger that reaches them) and masks ``api_key=`` values,
``Authorization`` / ``Bearer`` credentials and omnistock's own ``osk_`` keys.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

MASK = "[redacted]"

_SECRETS = re.compile(
    r"(?P<keep>"
    r"\bapi(?:_|%5f)key=|"  # query strings, percent-encoded names too
    r"\bauthorization\b[\"']?\s*[:=,]\s*[\"']?(?:bearer\s+)?|"  # a header in any quoting
    r"\bbearer\s+"
    r")(?P<secret>[^\s&\"',;#)\]}]+)"
    r"|\bosk_[A-Za-z0-9_-]{8,}",  # an omnistock key wherever it appears
    re.IGNORECASE,
)
_PLAIN = (str, int, float, bool, type(None))


def redact(text: str) -> str:
    """``text`` with every API key in it masked."""
    if not _SECRETS.search(text):
        return text
    return _SECRETS.sub(lambda m: (m.group("keep") or "") + MASK, text)


class RedactSecrets(logging.Filter):
    """Masks API keys in a record's message, arguments and traceback; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        args = record.args
        if isinstance(args, tuple):
            if all(isinstance(a, _PLAIN) for a in args):
                # Kept a tuple: uvicorn's access formatter unpacks the arguments.
                record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
            else:
                self._render(record)
        elif args:
            self._render(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True

    @staticmethod
    def _render(record: logging.LogRecord) -> None:
        """Arguments of any type: mask the finished message (only when it holds a secret)."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format is the logging module's to report
            return
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, ()


def install_everywhere() -> None:
    """Put the filter on every handler of every logger configured so far (the root logger and
    Litestar's, which Litestar sets up when the app is made)."""
    loggers = [logging.getLogger()] + [
        x for x in logging.Logger.manager.loggerDict.values() if isinstance(x, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactSecrets) for f in handler.filters):
                handler.addFilter(RedactSecrets())


def uvicorn_log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration with the filter on every handler, and the root logger
    (omnistock's own loggers) at ``level`` on stderr through it too: every worker process
    applies this, so no process logs a key."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": "omnistock.logs.RedactSecrets"}}
    config["formatters"]["plain"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["root"] = {
        "formatter": "plain",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["root"] = {"handlers": ["root"], "level": level.upper()}
    return config
