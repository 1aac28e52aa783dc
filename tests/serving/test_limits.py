"""serving.limits: count_events' fast byte counts give the pattern's count on every body
(the server-level 413s are in test_hardening.py); busy() follows the large requests that
pass the middleware (what the prediction log's writer waits for)."""

from __future__ import annotations

import json

import pytest

from serving.limits import (
    _EVENT_KEY,
    HEAVY_BODY_BYTES,
    QUIET_S,
    BodyLimitMiddleware,
    busy,
    count_events,
)


def _pattern_count(body: bytes) -> int:
    return sum(1 for _ in _EVENT_KEY.finditer(body))


def _body(events: list[dict], **lead: object) -> bytes:
    return json.dumps({"leads": [{"lead_id": "L1", **lead, "events": events}]}).encode()


EVENT = {"type": "page_view", "at": "2025-02-01T00:00:00"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{"leads":[]}',
        _body([EVENT] * 3),  # json.dumps: '"at": ' (a space after the colon)
        json.dumps({"leads": [{"events": [EVENT] * 5}]}, separators=(",", ":")).encode(),
        _body([EVENT], topic="at"),  # "at" as a value, not a key
        _body([{**EVENT, "topic": "at"}] * 4),
        b'{"leads":[{"country":"at","events":[{"at":1,"topic":"at"}],"tags":["at"]}]}',
        b'{"leads":[{"country":"at" ,"events":[{"at" :1}]}]}',  # spaces: the pattern's case
        b'{"leads":[{"events":[{"at" :"x"},{"at"\t:"y"},{"at":"z"}]}]}',  # space before ':'
        b'{"leads":[{"events":[{"at"\n:"x"}]}],"note":"at"}',
        b'"at"',
        b'"at":',
        b'"at""at":"at" :',
    ],
)
def test_count_events_is_the_patterns_count(body):
    assert count_events(body) == _pattern_count(body)


def test_count_events_counts_each_event_key():
    assert count_events(_body([EVENT] * 7, topic="at")) == 7
    assert count_events(b'{"events":[{"at" : 1},{"at":2}]}') == 2


async def _post(app, body: bytes) -> None:
    """POST /score ``body`` through the middleware to the ASGI ``app``."""

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        pass

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/score",
        "headers": [(b"content-length", str(len(body)).encode())],
    }
    await BodyLimitMiddleware(app)(scope, receive, send)


async def _answer(send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _call(body: bytes, probe=busy) -> list[bool]:
    """POST /score ``body`` through the middleware; what ``probe()`` said inside the app."""
    import asyncio

    seen: list[bool] = []

    async def app(scope, receive, send):
        await receive()
        seen.append(probe())
        await _answer(send)

    asyncio.run(_post(app, body))
    return seen


def test_busy_while_a_large_request_is_answered_and_shortly_after():
    import time

    time.sleep(QUIET_S * 2)  # whatever ran before has gone quiet
    assert not busy()
    assert _call(b"x" * 1000) == [False]  # a small request: not busy
    assert not busy()
    assert _call(b"x" * HEAVY_BODY_BYTES) == [True]
    assert busy()  # just ended: the next request of a client may be on its way
    time.sleep(QUIET_S * 2)
    assert not busy()


def test_the_collector_is_off_during_a_large_request_and_as_it_was_after():
    import gc

    assert gc.isenabled()
    try:
        assert _call(b"x" * 1000, gc.isenabled) == [True]  # small requests leave it alone
        assert _call(b"x" * HEAVY_BODY_BYTES, gc.isenabled) == [False]
        assert gc.isenabled()  # back on after the request
        gc.disable()  # off before (a host application's choice): still off after
        assert _call(b"x" * HEAVY_BODY_BYTES, gc.isenabled) == [False]
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_stays_off_until_the_last_of_overlapping_large_requests_ends():
    import asyncio
    import gc

    first_in, second_done = asyncio.Event(), asyncio.Event()
    seen: dict[str, bool] = {}

    def app_for(name: str):
        async def app(scope, receive, send):
            await receive()
            if name == "first":
                first_in.set()
                await second_done.wait()  # the second one starts and ends inside this one
            seen[f"{name} inside"] = gc.isenabled()
            await _answer(send)
            if name == "second":
                second_done.set()

        return app

    body = b"x" * HEAVY_BODY_BYTES

    async def both():
        async def second():
            await first_in.wait()
            await _post(app_for("second"), body)
            seen["between"] = gc.isenabled()  # the first one still runs

        await asyncio.gather(_post(app_for("first"), body), second())

    asyncio.run(both())
    assert seen == {"second inside": False, "between": False, "first inside": False}
    assert gc.isenabled()
