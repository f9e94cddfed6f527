"""Structured logging for the service: JSON lines off a terminal, readable lines on one.

Every record carries the context the sync code passes as ``extra=``
(``run_id``, ``crm``, ``object``, ``connection``, ``job``) when present.
:class:`SecretFilter` runs on the handler, before any formatter, and replaces
every configured secret value in the message and in the traceback with
``[redacted]``: the one place that guarantees a token never reaches a log,
whatever a library put into an exception message. Record payloads are never
logged by segsync itself (only ids and counts), so this is a second line of
defence, not the first.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from pydantic import BaseModel, SecretStr
from sqlalchemy.engine import make_url

from connector.config import Settings

#: The record attributes that carry a run's context, in display order.
CONTEXT_KEYS = ("connection", "crm", "object", "run_id", "job")
REDACTED = "[redacted]"
# Shorter values are not treated as secrets: redacting "1" or "ab" everywhere
# would mangle every log line and protect nothing.
_MIN_SECRET_LENGTH = 4


def collect_secrets(settings: Settings) -> list[str]:
    """Every secret value the settings hold: SecretStr fields, ``*_file`` secrets, passwords.

    File secrets are read here (a file that cannot be read is skipped: the
    adapter reports it when it needs the value).
    """
    found: list[str] = []

    def walk(model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
            elif isinstance(value, BaseModel):
                walk(value)
            elif isinstance(value, dict):
                for item in value.values():
                    if isinstance(item, BaseModel):
                        walk(item)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, BaseModel):
                        walk(item)
            if name.endswith("_file") and value is not None and hasattr(model, "secret"):
                try:
                    secret = model.secret(name.removesuffix("_file"))
                except Exception:  # unreadable: nothing to redact yet
                    secret = None
                if secret:
                    found.append(secret)

    walk(settings)
    try:
        password = make_url(settings.store.url).password
    except Exception:
        password = None
    if password:
        found.append(str(password))
    return sorted({s for s in found if len(s) >= _MIN_SECRET_LENGTH}, key=lambda s: (-len(s), s))


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ``[redacted]`` (longest first)."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class SecretFilter(logging.Filter):
    """Replaces configured secret values in a record's message and traceback."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Redact these values too (a token obtained at run time, say)."""
        merged = set(self._secrets) | {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}
        self._secrets = sorted(merged, key=lambda s: (-len(s), s))

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place; never drops a record."""
        if not self._secrets:
            return True
        message = record.getMessage()
        record.msg = redact(message, self._secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if isinstance(value, str):
                setattr(record, key, redact(value, self._secrets))
        return True


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: getattr(record, key)
        for key in CONTEXT_KEYS
        if getattr(record, key, None) not in (None, "")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_context(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = record.exc_text
        return json.dumps(document, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger [connection crm object run=N]: message`` for people."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(context)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as a readable line (and its traceback)."""
        context = _context(record)
        parts = [str(context[k]) for k in ("connection", "crm", "object") if k in context]
        if "run_id" in context:
            parts.append(f"run={context['run_id']}")
        if "job" in context and not parts:
            parts.append(str(context["job"]))
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)


def configure_logging(
    secrets: Iterable[str] = (),
    *,
    level: int = logging.INFO,
    stream: TextIO | None = None,
    json_lines: bool | None = None,
) -> logging.Handler:
    """Send every log record to ``stream`` (stderr), redacted and formatted.

    Replaces the root logger's handlers, so it is called once, at start.

    Args:
        secrets: values never to print (see :func:`collect_secrets`).
        level: the root level.
        stream: where to write (default: stderr, resolved now).
        json_lines: force JSON (True) or text (False); default JSON unless
            the stream is a terminal.

    Returns:
        The installed handler (its :class:`SecretFilter` is ``handler.filters[0]``).

    """
    out = stream if stream is not None else sys.stderr
    if json_lines is None:
        json_lines = not (hasattr(out, "isatty") and out.isatty())
    handler = logging.StreamHandler(out)
    handler.addFilter(SecretFilter(secrets))
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # APScheduler logs every tick at INFO ("Running job …"); keep that for -v.
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))
    # Alembic announces its dialect at every start; only problems matter here.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    return handler
