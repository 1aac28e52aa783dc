"""Bearer-token authentication as a plain ASGI middleware.

``BearerTokenMiddleware`` answers ``401`` with a JSON error object and
``WWW-Authenticate: Bearer`` unless the request carries ``Authorization: Bearer <token>``
with one of the configured tokens. Open by default (no token needed): the probes
``/livez``, ``/readyz``, ``/healthz``, the Prometheus ``/metrics`` endpoint, and the OpenAPI
document ``/docs.json`` (the API contract is public; it contains no data). The Swagger UI
page ``/`` and every API route need a token.

Tokens are compared as SHA-256 digests with :func:`hmac.compare_digest`, against every
configured token without an early exit, so timing reveals neither the token nor its length.
Lifespan events pass through untouched; a websocket without a valid token is closed with
code 1008 (policy violation) before it is accepted.

With BentoML: ``svc.add_asgi_middleware(BearerTokenMiddleware, tokens=load_tokens())``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TOKENS_ENV = "LEADSCORE_API_TOKENS"
TOKENS_FILE_ENV = "LEADSCORE_API_TOKENS_FILE"
DEFAULT_OPEN_PATHS: tuple[str, ...] = ("/livez", "/readyz", "/healthz", "/metrics", "/docs.json")
MIN_TOKEN_LENGTH = 16
_TRAILING_COMMENT = re.compile(r"\s+#.*$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ERROR_BODY = json.dumps(
    {"error": "missing or invalid bearer token", "field": "Authorization"}
).encode("utf-8")
_ERROR_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_ERROR_BODY)).encode("ascii")),
    (b"www-authenticate", b"Bearer"),
]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or ``localhost``: an address only this machine can reach."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def _valid_token_text(token: str) -> bool:
    return bool(token) and all(33 <= ord(ch) <= 126 and ch != "," for ch in token)


def _check(tokens: Iterable[str], source: str) -> frozenset[str]:
    out = set()
    for i, tok in enumerate(tokens, 1):
        if not _valid_token_text(tok):
            # never echo the token itself
            raise ValueError(
                f"{source}: token #{i} contains whitespace, a comma or non-ASCII characters"
            )
        if len(tok) < MIN_TOKEN_LENGTH:  # guessable: refused, never echoed
            raise ValueError(
                f"{source}: token #{i} is shorter than {MIN_TOKEN_LENGTH} characters; use a "
                "long random token, e.g. python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'"
            )
        out.add(tok)
    return frozenset(out)


def parse_tokens_file(text: str, source: str = "tokens file") -> frozenset[str]:
    """One token per line; blank lines and ``#`` comments (whole-line or trailing) ignored."""
    tokens = []
    for raw in text.splitlines():
        line = _TRAILING_COMMENT.sub("", raw).strip()
        if line and not line.startswith("#"):
            tokens.append(line)
    return _check(tokens, source)


def load_tokens(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """Tokens from ``LEADSCORE_API_TOKENS`` (comma-separated) and/or the file named by
    ``LEADSCORE_API_TOKENS_FILE`` (one per line, ``#`` comments); the union if both are set.

    Returns an empty set if neither is set. Raises ``ValueError`` for an unreadable file or
    a malformed or short token (under :data:`MIN_TOKEN_LENGTH` characters; the token itself
    is never included in the message).
    """
    env = os.environ if env is None else env
    tokens: set[str] = set()
    inline = env.get(TOKENS_ENV, "")
    if inline.strip():
        tokens |= _check([t.strip() for t in inline.split(",") if t.strip()], TOKENS_ENV)
    file_name = env.get(TOKENS_FILE_ENV, "").strip()
    if file_name:
        try:
            text = Path(file_name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read {TOKENS_FILE_ENV}={file_name}: {e}") from e
        tokens |= parse_tokens_file(text, f"{TOKENS_FILE_ENV}={file_name}")
    return frozenset(tokens)


class BearerTokenMiddleware:
    """ASGI middleware: ``401`` unless ``Authorization: Bearer <one of tokens>``.

    An empty token set is refused (``ValueError``) rather than locking every caller out
    or, worse, letting everyone in silently.
    """

    def __init__(
        self,
        app: ASGIApp,
        tokens: Iterable[str],
        open_paths: Iterable[str] = DEFAULT_OPEN_PATHS,
    ) -> None:
        tokens = frozenset(tokens)
        if not tokens:
            raise ValueError(f"no API tokens configured: set {TOKENS_ENV} or {TOKENS_FILE_ENV}")
        self.app = app
        self._digests = tuple(_digest(t.encode("utf-8")) for t in sorted(tokens))
        self.open_paths = frozenset(p.rstrip("/") or "/" for p in open_paths)

    def _is_open(self, path: str) -> bool:
        return (path.rstrip("/") or "/") in self.open_paths

    def _authorized(self, scope: Scope) -> bool:
        values = [v for k, v in scope.get("headers") or () if k.lower() == b"authorization"]
        if len(values) != 1:
            return False
        scheme, _, token = values[0].strip().partition(b" ")
        token = token.strip()
        if scheme.lower() != b"bearer" or not token:
            return False
        candidate = _digest(token)
        ok = False
        for d in self._digests:  # no early exit: same work whichever token matches
            ok |= hmac.compare_digest(d, candidate)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind not in ("http", "websocket") or self._is_open(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if self._authorized(scope):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "http.response.start", "status": 401, "headers": _ERROR_HEADERS})
        await send({"type": "http.response.body", "body": _ERROR_BODY})


__all__ = [
    "DEFAULT_OPEN_PATHS",
    "BearerTokenMiddleware",
    "is_loopback",
    "load_tokens",
    "parse_tokens_file",
]
