"""Opaque, signed cursors: a JSON payload and its HMAC-SHA256 under a server secret.

`CursorSigner.sign(payload)` makes `<base64url payload>.<base64url mac>`; `open(text)`
returns the payload only when the mac is the signer's, else raises ApiError 400 (a
tampered, truncated or foreign cursor). The secret is a file created on first use
(`secret_from_file`): 32 random bytes, mode 0600, written aside and linked into place, so
servers sharing a lake agree on it and a restart keeps cursors valid.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from eventpipe.api.errors import ApiError

log = logging.getLogger(__name__)

SECRET_BYTES = 32
MAC_BYTES = 16  # 128 bits of HMAC-SHA256
MAX_CURSOR_CHARS = 8_192
SECRET_FILE = Path("_secrets") / "cursor.key"
"""Where the secret is kept, relative to the lake folder (beside its catalog)."""


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secret_from_file(path: str | os.PathLike[str]) -> bytes:
    """The secret in the file `path`, created (with its folder) when there is none."""
    path = Path(path)
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(secrets.token_bytes(SECRET_BYTES))
            out.flush()
            os.fsync(out.fileno())
        # Atomic, and never replaces a secret another server made meanwhile.
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    secret = path.read_bytes()
    if len(secret) < SECRET_BYTES:
        raise ValueError(f"the cursor secret {path} is damaged ({len(secret)} bytes)")
    return secret


class CursorSigner:
    """Signs payloads into cursors and opens cursors back, under one secret: `secret`, or
    what `secret` returns when first needed (so no file is made before a cursor is)."""

    def __init__(self, secret: bytes | Callable[[], bytes], parameter: str = "cursor") -> None:
        self._source = secret
        self._secret: bytes | None = None
        self._lock = threading.Lock()
        self.parameter = parameter

    @classmethod
    def for_folder(cls, folder: str | os.PathLike[str] | None) -> CursorSigner:
        """A signer with the secret of `folder` (a lake: `SECRET_FILE` in it), or, without
        a folder, a random secret of this process (its cursors end with it)."""
        if folder is None:
            log.warning("no lake folder for the cursor secret: cursors end with this process")
            return cls(secrets.token_bytes(SECRET_BYTES))
        return cls(lambda: secret_from_file(Path(folder) / SECRET_FILE))

    def _key(self) -> bytes:
        with self._lock:
            if self._secret is None:
                source = self._source
                secret = source if isinstance(source, bytes) else source()
                if len(secret) < SECRET_BYTES:
                    raise ValueError(f"a cursor secret has at least {SECRET_BYTES} bytes")
                self._secret = secret
            return self._secret

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key(), body, hashlib.sha256).digest()[:MAC_BYTES]

    def sign(self, payload: dict[str, Any]) -> str:
        """The cursor of `payload` (JSON-serialisable)."""
        body = orjson.dumps(payload)
        return f"{_encode(body)}.{_encode(self._mac(body))}"

    def open(self, cursor: str) -> dict[str, Any]:
        """The payload of `cursor`; ApiError 400 naming the parameter unless this signer
        made it."""
        if len(cursor) > MAX_CURSOR_CHARS:
            raise self._invalid("is too long")
        body_text, _, mac_text = cursor.partition(".")
        try:
            body, mac = _decode(body_text), _decode(mac_text)
        except (binascii.Error, ValueError):
            raise self._invalid("is not a cursor this server issued") from None
        if not hmac.compare_digest(mac, self._mac(body)):
            raise self._invalid("is not a cursor this server issued (its signature is wrong)")
        payload = orjson.loads(body)
        if not isinstance(payload, dict):
            raise self._invalid("is not a cursor this server issued")
        return payload

    def _invalid(self, reason: str) -> ApiError:
        return ApiError(400, self.parameter, f"{self.parameter} {reason}")
