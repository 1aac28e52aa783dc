"""Lead keys: the pseudonym a lead id is stored as, and the secret behind it.

A lead key is the HMAC-SHA256 of the lead id under a secret: stable (the same lead gets the
same key across requests and restarts, so predictions join with outcomes) and useless
without the secret. The secret comes from ``LEADSCORE_LEAD_KEY_SECRET``, else from the file
named by ``LEADSCORE_LEAD_KEY_SECRET_FILE``; for a SQLite log without either, a random
secret is generated once and kept in ``<db file>.key`` (mode 0600, as the database file
itself) next to the database. PostgreSQL deployments must set one of the two variables
(replicas must share the secret). The secret is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger("serving.predlog")

SECRET_ENV = "LEADSCORE_LEAD_KEY_SECRET"
SECRET_FILE_ENV = "LEADSCORE_LEAD_KEY_SECRET_FILE"
MIN_SECRET_BYTES = 16

_KEYED: dict[bytes, Any] = {}


def lead_key(lead_id: str, secret: bytes) -> str:
    """HMAC-SHA256 (hex, 64 chars) of ``lead_id``: a stable pseudonym for the lead."""
    if not isinstance(lead_id, str) or not lead_id:
        raise ValueError("lead_id must be a non-empty string")
    if not isinstance(secret, bytes) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the lead-key secret must be at least {MIN_SECRET_BYTES} bytes")
    keyed = _KEYED.get(secret)
    if keyed is None:  # the key schedule once per secret; copies are the same HMAC
        if len(_KEYED) > 16:
            _KEYED.clear()
        keyed = _KEYED[secret] = hmac.new(secret, digestmod=hashlib.sha256)
    mac = keyed.copy()
    mac.update(lead_id.encode("utf-8"))
    return mac.hexdigest()


def _check_secret(value: bytes, source: str) -> bytes:
    value = value.strip()
    if len(value) < MIN_SECRET_BYTES:
        raise ValueError(f"the lead-key secret from {source} is shorter than {MIN_SECRET_BYTES}")
    return value


def _read_or_create_key_file(path: Path) -> bytes:
    try:
        return _check_secret(path.read_bytes(), str(path))
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode("ascii") + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process created
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    logger.warning("generated a new lead-key secret in %s (keep it with the database)", path)
    return _check_secret(path.read_bytes(), str(path))


def resolve_secret(
    text: str | None = None,
    file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> bytes:
    """The lead-key secret, in this order: ``text`` (the value of LEADSCORE_LEAD_KEY_SECRET,
    UTF-8, blanks around it ignored), the ``file`` LEADSCORE_LEAD_KEY_SECRET_FILE names,
    then ``key_file`` (read, or created with a random secret and mode 0600 if missing).
    Raises ``ValueError`` when none is available or the secret is shorter than 16 bytes."""
    if text is not None and text.strip():
        return _check_secret(text.encode("utf-8"), SECRET_ENV)
    if file is not None and str(file).strip():
        try:
            return _check_secret(Path(file).read_bytes(), SECRET_FILE_ENV)
        except OSError as e:
            raise ValueError(f"cannot read {SECRET_FILE_ENV}={file}: {e.strerror}") from e
    if key_file is not None:
        return _read_or_create_key_file(Path(key_file))
    raise ValueError(
        f"no lead-key secret: set {SECRET_ENV} or {SECRET_FILE_ENV} (all replicas must share it)"
    )


def secret_from_env(env: Mapping[str, str], key_file: str | Path | None = None) -> bytes:
    """:func:`resolve_secret` from a mapping of environment variables."""
    return resolve_secret(
        env.get(SECRET_ENV), env.get(SECRET_FILE_ENV, "").strip() or None, key_file
    )


__all__ = [
    "MIN_SECRET_BYTES",
    "SECRET_ENV",
    "SECRET_FILE_ENV",
    "lead_key",
    "resolve_secret",
    "secret_from_env",
]
