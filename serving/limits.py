"""Bounded work per request: a body-size cap and an event count checked before BentoML parses
the body, and a deadline after which a request's work stops.

:class:`BodyLimitMiddleware` (ASGI) answers ``413`` with the limit and what was sent:

* when ``Content-Length`` says more than ``max_body_bytes``, at once, without reading the body;
* when a body without a usable ``Content-Length`` (chunked) grows past ``max_body_bytes``
  while it is read: reading stops there;
* for ``POST /score``, when the body holds more than ``max_events`` events. Events are
  counted on the raw bytes, as the ``"at":`` keys that every event must have (byte counts
  over at most ``max_body_bytes``: milliseconds, against seconds for pydantic to parse the
  same body). The count is an upper bound for ordinary JSON (a custom attribute
  named ``at`` counts too); a key written with escapes (``"\\u0061t"``) is not counted here,
  so the service counts the parsed events again (:func:`check_event_total`). Memory stays
  bounded by the byte cap either way.

The middleware also keeps count of the large requests this process is answering
(:func:`busy`: the prediction log's writer thread leaves the interpreter to them,
:mod:`serving.predlog.writer`; the cyclic garbage collector is off while one runs), and
starts each request's clock: :func:`past_deadline` is true once the request has run for
longer than the deadline. The service checks it between the stages of a request (parsed,
scored, about to log) and answers ``503`` without logging anything once it is past: the
deadline is shorter than BentoML's own timeout (which answers ``504`` but lets the worker
thread run on), so a request the client was told failed is never logged as answered."""

from __future__ import annotations

import gc
import json
import logging
import re
import time
from contextvars import ContextVar

from serving.auth import ASGIApp, Message, Receive, Scope, Send
from serving.metrics import endpoint_label as metrics_endpoint

logger = logging.getLogger("bentoml.leadscore")

#: Largest request body accepted, in bytes (any route).
MAX_BODY_BYTES = 32 * 1024 * 1024
#: Most events accepted in one ``POST /score`` request, over all its leads.
MAX_EVENTS_PER_REQUEST = 100_000
#: Seconds a request may run (from its arrival) before its work stops; below BentoML's
#: request timeout (:data:`serving.settings.REQUEST_TIMEOUT_S`).
DEFAULT_DEADLINE_S = 25.0

_EVENT_KEY = re.compile(rb'"at"\s*:')
_started: ContextVar[float | None] = ContextVar("leadscore_request_started", default=None)


#: A request with a body this large (~50 leads) is one the prediction log's writer waits for
#: (:func:`busy`); below it, answers are cheap and the rows are written as they come.
HEAVY_BODY_BYTES = 256 * 1024
#: After such a request ends, the process counts as busy this long: the next request of a
#: client sending one after the other arrives within milliseconds, on the same connection,
#: or on a new one that the other worker may take, answering while this one writes.
QUIET_S = 0.3


class _Activity:
    """The large requests this process is answering (the event loop's thread changes it),
    and whether the cyclic garbage collector was on when the first of them began."""

    heavy = 0
    last_end = 0.0
    gc_was_on = False


def _heavy_begins() -> None:
    """A large request begins. The first one turns the cyclic collector off until the last
    one ends: parsing a 1,000-lead body makes ~10^5 objects that all live until the answer,
    so the collections their allocation triggers find nothing to free and only rescan
    them (~10 ms a request). Reference counting still frees everything acyclic; what is
    cyclic waits for the collector's next run, at most one request later."""
    if _Activity.heavy == 0:
        _Activity.gc_was_on = gc.isenabled()
        gc.disable()
    _Activity.heavy += 1


def _heavy_ends() -> None:
    _Activity.heavy -= 1
    _Activity.last_end = time.monotonic()
    if _Activity.heavy == 0 and _Activity.gc_was_on:
        gc.enable()


def busy(quiet_s: float = QUIET_S) -> bool:
    """True while this process answers a request whose body has at least
    :data:`HEAVY_BODY_BYTES` (``Content-Length``), or ended one less than ``quiet_s`` ago
    (requests passing :class:`BodyLimitMiddleware`). Small requests do not count: the
    writer waiting through a stream of them would write their rows in bursts that hold the
    interpreter longer than any one of them takes."""
    return _Activity.heavy > 0 or time.monotonic() - _Activity.last_end < quiet_s


class DeadlineExceeded(RuntimeError):
    """The request ran past its deadline; its work stops and nothing of it is logged."""


def count_events(body: bytes) -> int:
    """Events in a raw ``POST /score`` body, counted before parsing (see the module doc):
    the ``"at"`` keys. Byte counts when every ``"at"`` is followed by a colon (a key) or by
    ``,`` ``}`` ``]`` (a value), as JSON encoders write them (~6 ms for a 4.6 MB,
    1,000-lead body instead of ~15 for the pattern), the pattern otherwise."""
    quoted = body.count(b'"at"')
    keys = body.count(b'"at":')
    if keys == quoted:
        return keys
    # "at" as a value too (a country, a topic): followed by , } or ], as JSON writes it
    values = body.count(b'"at",') + body.count(b'"at"}') + body.count(b'"at"]')
    if keys + values == quoted:
        return keys
    return sum(1 for _ in _EVENT_KEY.finditer(body))


def past_deadline(deadline_s: float) -> bool:
    """True once the current request has run for longer than ``deadline_s`` seconds (False
    outside a request started by :class:`BodyLimitMiddleware`)."""
    started = _started.get()
    return started is not None and time.monotonic() - started > deadline_s


def elapsed() -> float:
    started = _started.get()
    return 0.0 if started is None else time.monotonic() - started


def _too_large(message: str, field: str | None) -> list[Message]:
    body = json.dumps({"error": message, "field": field}).encode("utf-8")
    return [
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("ascii")),
                (b"connection", b"close"),
            ],
        },
        {"type": "http.response.body", "body": body},
    ]


class BodyLimitMiddleware:
    """ASGI middleware: the limits of the module docstring. Put it inside the token check
    (an unauthenticated body is never read) and outside BentoML's parsing."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_events: int = MAX_EVENTS_PER_REQUEST,
        event_paths: tuple[str, ...] = ("/score",),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_events = max_events
        self.event_paths = frozenset(event_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        _started.set(time.monotonic())
        declared = self._content_length(scope)
        heavy = declared is not None and declared >= HEAVY_BODY_BYTES
        if heavy:
            _heavy_begins()
        try:
            await self._limited(scope, receive, send, declared)
        finally:
            if heavy:
                _heavy_ends()

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, declared: int | None
    ) -> None:
        if declared is not None and declared > self.max_body_bytes:
            for m in _too_large(
                f"request body too large: {declared:,} bytes sent (Content-Length), the "
                f"limit is {self.max_body_bytes:,} bytes",
                None,
            ):
                await send(m)
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                logger.info(
                    "client disconnected from %s %s after sending %d bytes of its body",
                    scope.get("method"),
                    metrics_endpoint(scope.get("path") or "/"),
                    size,
                )
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                for m in _too_large(
                    f"request body too large: more than {self.max_body_bytes:,} bytes sent "
                    f"(reading stopped at {size:,}), the limit is {self.max_body_bytes:,} bytes",
                    None,
                ):
                    await send(m)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        path = (scope.get("path") or "/").rstrip("/") or "/"
        if path in self.event_paths:
            n = count_events(body)
            if n > self.max_events:
                for m in _too_large(
                    f"too many events in one request: {n:,} sent, the limit is "
                    f"{self.max_events:,} per request (over all leads)",
                    "leads[].events",
                ):
                    await send(m)
                return
        await self.app(scope, _replay([body], receive), send)

    @staticmethod
    def _content_length(scope: Scope) -> int | None:
        for k, v in scope.get("headers") or ():
            if k.lower() == b"content-length":
                try:
                    return int(v)
                except ValueError:
                    return None
        return None


def _replay(bodies: list[bytes], receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the real one's messages
    (a later ``http.disconnect``)."""
    body = b"".join(bodies)
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    bodies.clear()

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def check_event_total(n_events: int, limit: int = MAX_EVENTS_PER_REQUEST) -> None:
    """The parsed request's event total against the limit (the byte count can miss events
    whose key was written with escapes)."""
    from serving.errors import RequestError

    if n_events > limit:
        raise RequestError(
            f"too many events in one request: {n_events:,} sent, the limit is {limit:,} per "
            "request (over all leads)",
            "leads[].events",
            status=413,
        )


__all__ = [
    "DEFAULT_DEADLINE_S",
    "MAX_BODY_BYTES",
    "HEAVY_BODY_BYTES",
    "MAX_EVENTS_PER_REQUEST",
    "QUIET_S",
    "BodyLimitMiddleware",
    "DeadlineExceeded",
    "busy",
    "check_event_total",
    "count_events",
    "elapsed",
    "past_deadline",
]
