"""Errors are part of the API: every 4xx (and the rare 5xx) is one JSON object
``{"error": <reason>, "field": <path or null>}``.

BentoML answers a pydantic validation failure with ``{"error": "N validation error...",
"detail": [...]}`` and its own 4xx exceptions with a JSON *array* (``[{"error": ...}]``).
:class:`ApiMiddleware` rewrites both into the object above, naming the first offending field
as a path (``leads[0].events[2].at``), maps "too many leads" to 413, gives 404/405 a JSON
body, serves ``GET /model``, ``GET /leads/{lead_id}/history`` and ``GET /monitor``, and adds
the error answers, the bearer scheme and those routes to the OpenAPI document at
``/docs.json``.

Rules checked in our own code (duplicates, timestamps after ``as_of``) raise
:class:`RequestError`; the API methods turn it into the same body with
:meth:`RequestError.response`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.responses import JSONResponse

from serving.auth import ASGIApp, Message, Receive, Scope, Send
from serving.history import history_lead_id

logger = logging.getLogger(__name__)

#: Paths whose error bodies are rewritten (the API; probes and /metrics are left alone).
API_PATHS = frozenset({"/score", "/outcomes", "/model"})


class RequestError(ValueError):
    """A request that breaks a rule of the API; ``field`` is the offending field's path."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def field_path(loc: Sequence[Any]) -> str:
    """pydantic ``loc`` -> ``leads[0].events[2].at``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("body", "json"):  # FastAPI-style prefixes, if any
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


_SENT = re.compile(r"\bnot (\d+)\b")


def _from_validation(
    detail: list[Mapping[str, Any]], max_leads: int, max_outcomes: int = 10_000
) -> tuple[int, dict]:
    first = detail[0] if detail else {}
    loc = tuple(first.get("loc") or ())
    field = field_path(loc)
    msg = str(first.get("msg") or "invalid value")
    kind = first.get("type")
    if kind == "json_invalid":
        return 400, {"error": f"the body is not valid JSON: {msg}", "field": None}
    if kind == "too_long" and len(loc) == 1 and loc[0] in ("leads", "outcomes"):
        what = loc[0]
        limit = max_leads if what == "leads" else max_outcomes
        sent = _SENT.search(msg)  # pydantic: "... at most 1000 items after validation, not 1001"
        sent_text = f"{int(sent.group(1)):,} sent, " if sent else ""
        return 413, {
            "error": f"too many {what} in one request: {sent_text}the limit is {limit:,} per "
            "request",
            "field": what,
        }
    if kind == "missing":
        return 400, {"error": f"field {field!r} is required", "field": field}
    if kind == "extra_forbidden":
        return 400, {"error": f"unknown field {field!r}", "field": field}
    more = f" (and {len(detail) - 1} more problem(s))" if len(detail) > 1 else ""
    return 400, {"error": f"{field}: {msg}{more}", "field": field}


def rewrite_error(
    status: int, body: bytes, max_leads: int, max_outcomes: int = 10_000
) -> tuple[int, dict]:
    """BentoML / Starlette error body -> ``(status, {"error", "field"})``."""
    try:
        data: Any = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], Mapping):
        data = data[0]
    if isinstance(data, Mapping):
        if isinstance(data.get("detail"), list) and status == 400:
            return _from_validation(data["detail"], max_leads, max_outcomes)
        if "error" in data:
            return status, {"error": str(data["error"]), "field": data.get("field")}
    if status >= 500:
        return status, {"error": "internal error; it is logged on the server", "field": None}
    text = body.decode("utf-8", "replace").strip()[:300] if body else ""
    return status, {"error": text or f"HTTP {status}", "field": None}


def _json_response(status: int, payload: Any, extra: list | None = None) -> list[Message]:
    body = json.dumps(payload).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        *(extra or []),
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


def _body_response(status: int, content_type: str, body: bytes) -> list[Message]:
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


class ApiMiddleware:
    """Error-body rewriting, ``GET /model`` and the OpenAPI additions (module docstring).

    ``model_info`` returns the ``GET /model`` answer, or None while no model is loaded;
    ``history`` gives the status and body of ``GET /leads/{lead_id}/history``;
    ``monitor`` the status, content type and body of ``GET /monitor`` for a query string.
    """

    def __init__(
        self,
        app: ASGIApp,
        model_info: Callable[[], Mapping[str, Any] | None],
        max_leads: int = 1000,
        openapi_patch: Callable[[dict], dict] | None = None,
        max_outcomes: int = 10_000,
        history: Callable[[str], Awaitable[tuple[int, Any]]] | None = None,
        monitor: Callable[[str], Awaitable[tuple[int, str, bytes]]] | None = None,
    ) -> None:
        self.app = app
        self.history = history
        self.monitor = monitor
        self.model_info = model_info
        self.max_leads = max_leads
        self.max_outcomes = max_outcomes
        self.openapi_patch = openapi_patch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        path = (scope.get("path") or "/").rstrip("/") or "/"
        method = scope.get("method", "GET")
        if path == "/model":
            if method != "GET":
                msgs = _json_response(
                    405, {"error": "use GET /model", "field": None}, [(b"allow", b"GET")]
                )
            else:
                info = self.model_info()
                msgs = (
                    _json_response(200, dict(info))
                    if info is not None
                    else _json_response(503, {"error": "no model loaded yet", "field": None})
                )
            for m in msgs:
                await send(m)
            return
        if path == "/monitor" and self.monitor is not None:
            if method != "GET":
                msgs = _json_response(
                    405, {"error": "use GET /monitor", "field": None}, [(b"allow", b"GET")]
                )
            else:
                query = (scope.get("query_string") or b"").decode("latin-1")
                msgs = _body_response(*await self.monitor(query))
            for m in msgs:
                await send(m)
            return
        lead_id = history_lead_id(path) if self.history is not None else None
        if lead_id is not None and self.history is not None:
            if method != "GET":
                msgs = _json_response(
                    405, {"error": "use GET", "field": None}, [(b"allow", b"GET")]
                )
            else:
                msgs = _json_response(*await self.history(lead_id))
            for m in msgs:
                await send(m)
            return
        if path == "/docs.json" and self.openapi_patch is not None:
            await self._patched_openapi(scope, receive, send)
            return
        if path not in API_PATHS and not path.startswith(("/score/", "/outcomes/")):
            if path in ("/livez", "/readyz", "/healthz", "/metrics", "/", "/schema.json"):
                await self.app(scope, receive, send)
                return
        await self._rewriting(scope, receive, send)

    async def _rewriting(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if message["status"] < 400:
                    await send(message)
                    return
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status, payload = rewrite_error(
                start["status"], b"".join(chunks), self.max_leads, self.max_outcomes
            )
            if status == 500:
                logger.error(
                    "%s %s answered %d: a server bug (see the traceback above)",
                    scope.get("method"),
                    scope.get("path"),
                    start["status"],
                )
            elif status > 500:  # not ready, overloaded, past the deadline: said in words
                logger.warning(
                    "%s %s answered %d: %s",
                    scope.get("method"),
                    scope.get("path"),
                    status,
                    payload.get("error"),
                )
            keep = [
                (k, v)
                for k, v in start.get("headers", [])
                if k.lower() not in (b"content-type", b"content-length")
            ]
            for m in _json_response(status, payload, keep):
                await send(m)

        await self.app(scope, receive, wrapped)

    async def _patched_openapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            assert start is not None
            body = b"".join(chunks)
            if start["status"] == 200 and self.openapi_patch is not None:
                body = json.dumps(self.openapi_patch(json.loads(body))).encode("utf-8")
            headers = [
                (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(body)).encode("ascii")))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, wrapped)


_EMAIL_LIKE = re.compile(r"[^\s'\"<>(),;\[\]{}]*@[^\s'\"<>(),;\[\]{}]*")
_INPUT_VALUE = re.compile(r"input_value=.*?(?=, input_type=|\]\n|$)", re.MULTILINE)


def redact(text: str) -> str:
    """Drop pydantic's echo of the input (``input_value=...``) and anything e-mail-like."""
    return _EMAIL_LIKE.sub("[redacted]", _INPUT_VALUE.sub("input_value=[redacted]", text))


class RedactingFilter(logging.Filter):
    """Log records leave the process without raw inputs: BentoML logs the traceback of every
    validation error, and pydantic's message quotes the offending value (an e-mail, a name).
    The traceback is rendered here, redacted, and the record carries only the text."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not lose the record
            message = str(record.msg)
        record.msg, record.args = redact(message), ()
        if record.exc_info:
            record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class ClientErrorFilter(logging.Filter):
    """BentoML logs every refused request body at ERROR with its traceback ("Exception on
    /score [POST]"), a pydantic validation error as much as a bug; a client that went away
    while sending becomes "a server bug" too. A request that is the client's fault is logged
    here at INFO, in one line, without the traceback: the client has its 4xx answer, and the
    ERROR level stays for our own bugs."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not str(record.msg).startswith("Exception on"):
            return True
        kind = _client_fault(exc)
        if kind is None:
            return True
        where = " ".join(str(a) for a in (record.args or ()))  # path, method
        summary = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        record.msg, record.args = "%s on %s: %s", (kind, where, summary[:300])
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info, record.exc_text = None, None
        return True


def _client_fault(exc: BaseException) -> str | None:
    """ "client error" / "client disconnected" for an exception that is the client's doing;
    None for anything else (a bug)."""
    from pydantic import ValidationError
    from starlette.requests import ClientDisconnect

    if isinstance(exc, ClientDisconnect):
        return "client disconnected"
    if isinstance(exc, (ValidationError, RequestError)):
        return "client error"
    code = getattr(getattr(exc, "error_code", None), "value", None)
    if isinstance(code, int) and 400 <= code < 500:
        return "client error"
    return None


def install_client_error_logging() -> None:
    """Put :class:`ClientErrorFilter` on the loggers BentoML reports request errors with."""
    for name in ("bentoml._internal.server.http_app", "bentoml.serve"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, ClientErrorFilter) for f in lg.filters):
            lg.addFilter(ClientErrorFilter())


def install_log_redaction() -> None:
    """Put :class:`RedactingFilter` on every handler configured in this process."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for lg in loggers:
        for handler in lg.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


__all__ = [
    "API_PATHS",
    "ApiMiddleware",
    "ClientErrorFilter",
    "RedactingFilter",
    "RequestError",
    "field_path",
    "install_client_error_logging",
    "install_log_redaction",
    "redact",
    "rewrite_error",
]
