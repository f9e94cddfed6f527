"""What an adapter keeps between processes: the cache it is handed, and how secrets go in it.

Each ``segsync sync`` is a new process: without a cache it would pay for an
OAuth token and a describe every time (docs/crm-apis.md, "Fixed costs"). The
adapters take any object with :class:`Cache`'s three methods (the state
store has them; ``connector.crm`` does not import the store) and keep plain
strings under keys of their own.

A token is a secret: :class:`SecretBox` encrypts it (Fernet: AES-128-CBC
with an HMAC-SHA256) under a key derived with HKDF-SHA256 from the
connection's own credentials, so the cached value is useless to anyone who
cannot already obtain a token, and it no longer opens once the credentials
change (a rotated secret simply means one new token).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

#: HKDF salt: fixed, versioned (a new scheme gets a new salt and old entries stop opening).
_SALT = b"segsync connector cache v1"

T = TypeVar("T")


class Cache(Protocol):
    """Plain strings by key, each with the time it was last known good."""

    def cache_get(self, key: str) -> tuple[str, datetime] | None:
        """The value under ``key`` and its stamp (None: nothing kept)."""

    def cache_put(self, key: str, value: str, stamp: datetime) -> None:
        """Keep ``value`` under ``key`` (replacing any)."""

    def cache_drop(self, key: str) -> None:
        """Forget the value under ``key``."""


def cache_key(kind: str, *parts: str | None) -> str:
    """``kind:<digest>``: a key naming the connection without spelling out its settings."""
    digest = hashlib.sha256("\n".join(p or "" for p in parts).encode()).hexdigest()[:40]
    return f"{kind}:{digest}"


class SecretBox:
    """Encrypts and decrypts cached values with a key only the credentials' holder can derive.

    Args:
        material: the connection's secrets (client secret, private key, refresh
            token); at least one must be non-empty.
        context: what the key is for (the cache key): a different context
            derives a different key.

    """

    def __init__(self, material: Iterable[str | None], context: str) -> None:
        secret = "\n".join(m for m in material if m).encode()
        if not secret:
            raise ValueError("a SecretBox needs secret material")
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=_SALT, info=context.encode()
        ).derive(secret)
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def __repr__(self) -> str:
        return "SecretBox(***)"

    def seal(self, plain: str) -> str:
        """``plain`` encrypted and authenticated, as text."""
        return self._fernet.encrypt(plain.encode()).decode("ascii")

    def open(self, sealed: str, max_age: float | None = None) -> str | None:
        """The plain text; None when altered, sealed under other credentials, or too old.

        ``max_age``: seconds since it was sealed.
        """
        try:
            ttl = None if max_age is None else int(max_age)
            return self._fernet.decrypt(sealed.encode("ascii"), ttl=ttl).decode()
        except (InvalidToken, ValueError, UnicodeError):
            return None


def safely(what: str, fn: Callable[..., T], *args: Any) -> T | None:
    """Call a cache method; a failing cache costs a call, never the run (logged, no values)."""
    try:
        return fn(*args)
    except Exception as exc:  # the store may be down: the CRM call is the fallback
        log.warning("connector cache: %s failed (%s); going without", what, type(exc).__name__)
        return None
