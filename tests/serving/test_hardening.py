"""Issue 18, against the shared real `bentoml serve` (tests/conftest.py ``api_server``):
metric labels from a fixed set whatever the paths sent, and request bodies bounded before
BentoML parses them (byte cap, event count), answered 413 with the limit and what was sent."""

from __future__ import annotations

import json
import re
import socket
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from serving_helpers import API_TOKEN, AUTH

from serving.limits import MAX_BODY_BYTES, MAX_EVENTS_PER_REQUEST
from serving.metrics import KNOWN_ENDPOINTS, OTHER_ENDPOINT

pytestmark = pytest.mark.slow


def test_unknown_paths_share_one_metric_label_and_never_appear(api_server):
    # one connection throughout: the requests and the /metrics reads reach the same worker
    client = httpx.Client(base_url=api_server.url, timeout=30)
    before = client.get("/metrics").text
    paths = []
    for i in range(2000):
        kind = i % 4
        if kind == 0:
            paths.append(f"/leads/jane.doe{i}@customer.com")
        elif kind == 1:
            paths.append(f"/probe-{uuid.uuid4().hex}")
        elif kind == 2:
            paths.append(f"/score/probe-{uuid.uuid4().hex[:12]}")
        else:
            paths.append(f"/static_content/probe-{i}")
    statuses = {client.get(p).status_code for p in paths}
    assert statuses <= {401, 404}, statuses  # no token: refused, whatever the path
    after = client.get("/metrics").text
    growth = len(after.encode()) - len(before.encode())
    print(f"/metrics: {len(before):,} -> {len(after):,} bytes after 2,000 unknown paths")
    assert growth < 10_000, growth
    assert 'endpoint="other"' in after
    for marker in ("@", "customer.com", "jane.doe", "probe-"):
        assert marker not in after, marker
    # bounded, not merely small: 500 more new paths add no series (only counts change)
    for i in range(500):
        client.get(f"/leads/more-{i}-{uuid.uuid4().hex}@customer.com")
    again = client.get("/metrics").text
    client.close()
    print(f"/metrics after 500 more: {len(again):,} bytes")
    assert len(again.encode()) - len(after.encode()) < 1_000
    labels = set(re.findall(r'endpoint="([^"]*)"', again))
    assert labels <= KNOWN_ENDPOINTS | {OTHER_ENDPOINT, "/static_content"}, labels
    # the service's own routes keep their names
    with httpx.Client(base_url=api_server.url, timeout=30) as one:
        assert one.post("/score", json={}, headers=AUTH).status_code == 400
        assert 'endpoint="/score"' in one.get("/metrics").text


def _raw_post(url: str, head_extra: str, first_bytes: bytes) -> tuple[int, dict]:
    """POST with a hand-written head and only the first bytes of the body; read the answer
    without sending the rest (a server that waits for the whole body never answers)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as s:
        head = (
            f"POST /score HTTP/1.1\r\nHost: {parts.hostname}\r\n"
            f"Authorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\n"
            f"{head_extra}\r\n"
        )
        s.sendall(head.encode() + first_bytes)
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1])


def test_a_body_over_the_byte_limit_is_refused_before_it_is_read(api_server):
    declared = 50 * 1024 * 1024
    status, err = _raw_post(api_server.url, f"Content-Length: {declared}\r\n", b" " * 1024)
    assert status == 413, err
    assert f"{declared:,} bytes sent" in err["error"], err
    assert f"the limit is {MAX_BODY_BYTES:,} bytes" in err["error"], err


def test_a_chunked_body_is_cut_off_at_the_byte_limit(api_server):
    chunk = b" " * (1024 * 1024)
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    n_chunks = MAX_BODY_BYTES // len(chunk) + 2
    parts = urlsplit(api_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        head = (
            f"POST /score HTTP/1.1\r\nHost: {parts.hostname}\r\n"
            f"Authorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        s.sendall(head.encode())
        for _ in range(n_chunks):
            s.sendall(framed)
        data = b""
        while not data.rstrip().endswith(b"}"):
            got = s.recv(65536)
            if not got:
                break
            data += got
    assert data.startswith(b"HTTP/1.1 413"), data[:200]
    err = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert f"the limit is {MAX_BODY_BYTES:,} bytes" in err["error"], err


def _events_body(n_events: int, key: str = '"at"', close: bool = True) -> bytes:
    """A /score body with ``n_events`` events over as many leads as needed (20,000 each)."""
    event = '{"type":"page_view",' + key + ':"2025-02-01T00:00:00"}'
    leads = []
    left = n_events
    i = 0
    while left > 0:
        k = min(left, 20_000)
        events = ",".join([event] * k)
        leads.append(f'{{"lead_id":"L{i}","created_at":"2025-01-01T00:00:00","events":[{events}]}}')
        left -= k
        i += 1
    text = '{"as_of":"2025-03-01T00:00:00","leads":[' + ",".join(leads)
    return (text + "]}" if close else text).encode()


def test_a_request_over_the_event_limit_is_refused_before_parsing(api_server):
    # The body is cut short: parsed, it would be a 400 "not valid JSON". A 413 with the
    # count shows the events were counted on the raw bytes, before any parsing.
    n = MAX_EVENTS_PER_REQUEST + 1
    body = _events_body(n, close=False)
    assert len(body) < MAX_BODY_BYTES
    r = httpx.post(
        f"{api_server.url}/score",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413, r.text
    err = r.json()
    assert err["field"] == "leads[].events", err
    assert (
        f"{n:,} sent" in err["error"]
        and f"the limit is {MAX_EVENTS_PER_REQUEST:,}" in (err["error"])
    ), err


def test_events_whose_key_hides_behind_escapes_are_counted_after_parsing(api_server):
    # "\u0061t" is "at" once decoded: not counted on the bytes, counted on the parsed request
    n = MAX_EVENTS_PER_REQUEST + 1
    r = httpx.post(
        f"{api_server.url}/score",
        content=_events_body(n, key='"\\u0061t"'),
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413, r.text
    assert f"{n:,} sent" in r.json()["error"], r.text


def test_a_request_at_the_event_limit_is_answered(api_server):
    r = httpx.post(
        f"{api_server.url}/score",
        content=_events_body(MAX_EVENTS_PER_REQUEST),
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 200, r.text[:500]
    assert len(r.json()["scores"]) == MAX_EVENTS_PER_REQUEST // 20_000


def _log_since(api_server, mark: int, needle: str, timeout: float = 10.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while True:
        text = api_server.log.read_bytes()[mark:].decode(errors="replace")
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def test_client_errors_are_logged_at_info_without_traceback(api_server):
    mark = api_server.log.stat().st_size
    bad = {"leads": [{"lead_id": "L-log", "created_at": "not a date"}]}
    r = httpx.post(f"{api_server.url}/score", json=bad, headers=AUTH, timeout=30)
    assert r.status_code == 400 and r.json()["field"] == "leads[0].created_at", r.text
    text = _log_since(api_server, mark, "client error")
    line = next((ln for ln in text.splitlines() if "client error" in ln), "")
    assert "/score" in line and "INFO" in line, text[-2000:]
    assert "Traceback" not in text and "Exception on" not in text, text[-3000:]
    assert "ERROR" not in text, text[-3000:]


def test_a_client_that_disconnects_is_named_as_such_not_a_server_bug(api_server):
    mark = api_server.log.stat().st_size
    parts = urlsplit(api_server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(
            (
                f"POST /score HTTP/1.1\r\nHost: {parts.hostname}\r\n"
                f"Authorization: Bearer {API_TOKEN}\r\nContent-Type: application/json\r\n"
                "Content-Length: 100000\r\n\r\n"
            ).encode()
            + b'{"leads": ['
        )
    text = _log_since(api_server, mark, "client disconnected")
    assert "client disconnected from POST /score" in text, text[-2000:]
    assert "server bug" not in text and "Traceback" not in text, text[-3000:]
    assert httpx.get(f"{api_server.url}/readyz").status_code == 200
