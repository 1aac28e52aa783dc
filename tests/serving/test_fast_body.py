"""The fast /score body decoder (serving.fast_body) gives the values pydantic gives, or
leaves the body to pydantic: never a different value, never an accepted body pydantic
refuses. Checked on simulated leads and on bodies at every edge of the schema."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
import pytest
from pydantic import BaseModel, Field, ValidationError

from crm.simulate import simulate
from serving import fast_body
from serving.fast_body import decode_score_body
from serving.schemas import MAX_LEADS_PER_REQUEST, Lead, tables_to_requests


class Body(BaseModel):
    """The /score body as the API's pydantic spec reads it."""

    leads: Annotated[list[Lead], Field(min_length=1, max_length=MAX_LEADS_PER_REQUEST)]
    as_of: datetime | None = None


def _plain(value: Any) -> Any:
    """Structs and models as plain values, with the types kept (1.0 is not True)."""
    if isinstance(value, msgspec.Struct):
        value = msgspec.structs.asdict(value)
    elif isinstance(value, BaseModel):
        value = {k: getattr(value, k) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return (type(value).__name__, value)


def _agree(body: dict | bytes) -> bool:
    """True when the fast decoder answered (with pydantic's values); False when it left
    the body to pydantic. Fails when it accepted a body pydantic refuses, or differs."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    fast = decode_score_body(raw)
    try:
        want = Body.model_validate_json(raw)
    except ValidationError:
        assert fast is None, "accepted a body pydantic refuses"
        return False
    if fast is None:
        return False
    assert _plain(fast[0]) == _plain(want.leads)
    assert _plain(fast[1]) == _plain(want.as_of)
    return True


def test_simulated_leads_decode_to_the_same_values():
    data, _ = simulate(n_leads=300, seed=3)
    leads = tables_to_requests(data.leads, data.accounts, data.events, None, data.stage_history)
    for i in range(0, 300, 100):
        assert _agree({"leads": leads[i : i + 100], "as_of": "2030-01-01T00:00:00"})


LEAD = {"lead_id": "L1", "created_at": "2025-01-01T00:00:00"}
EVENT = {"type": "page_view", "at": "2025-01-02T00:00:00"}


def lead(**kw: Any) -> dict:
    return {**LEAD, **kw}


@pytest.mark.parametrize(
    "leads",
    [
        [lead(created_at="2025-01-01T00:00:00Z")],
        [lead(created_at="2025-01-01T02:00:00+02:00")],
        [lead(created_at="2025-01-01T00:00:00.5")],
        [lead(created_at="2025-01-01T00:00:00.1234567")],
        [lead(created_at="2025-01-01")],
        [lead(created_at="2025-01-01 00:00:00")],
        [lead(created_at=1735689600)],
        [lead(created_at="1969-12-31T00:00:00")],
        [lead(created_at="2300-01-01T00:00:00")],
        [lead(events=[{**EVENT, "at": "2025-01-02T00:00:00-05:00"}])],
        [lead(events=[{**EVENT, "type": "telepathy"}])],
        [lead(events=[{**EVENT, "content_id": "C\n1"}])],
        [lead(events=[{**EVENT, "content_id": "ok"}, EVENT, {**EVENT, "content_id": "C\t2"}])],
        [lead(events=[{**EVENT, "topic": "x" * 201}])],
        [lead(events=[{**EVENT, "colour": "red"}])],
        [lead(lead_id="")],
        [lead(lead_id="a\x00b")],
        [lead(lead_id=7)],
        [lead(company={"employees": 12})],
        [lead(company={"employees": "12"})],
        [lead(company={"employees": -1})],
        [lead(company={"employees": True})],
        [lead(company={"employees": 1e400})],
        [lead(company={"industry": None, "country": "DE", "size": 3})],
        [lead(do_not_email="yes")],
        [lead(do_not_email=1)],
        [lead(email_domain_kind="free")],
        [lead(email_domain_kind="gratis")],
        [lead(attributes={"a": 1, "b": True, "c": "x", "d": None, "e": 2.5})],
        [lead(attributes={"a": [1]})],
        [lead(counters={"visits": 3})],
        [lead(counters={"visits": -3})],
        [lead(stages=[{"stage": "mql", "entered_at": "2025-01-03T00:00:00"}])],
        [lead(stages=[{"stage": "won", "entered_at": "2025-01-03T00:00:00"}])],
        [lead(job_title="é" * 300)],
        [lead(job_title="é" * 301)],
        [],
        [lead(lead_id=str(i)) for i in range(MAX_LEADS_PER_REQUEST + 1)],
    ],
)
def test_edge_bodies_never_decode_differently(leads):
    _agree({"leads": leads, "as_of": "2025-02-01T00:00:00"})


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b'{"leads": null}', b'{"as_of": "2025-01-01T00:00:00"}', b"",
     b'{"leads": [{"lead_id": "a", "created_at": "2025-01-01T00:00:00"}], "as_of": "x"}',
     b'{"leads": [{"lead_id": "a", "created_at": "2025-01-01T00:00:00"}], "extra": 1}'],
)  # fmt: skip
def test_malformed_bodies_go_to_pydantic(body):
    assert decode_score_body(body) is None or _agree(body)


def test_the_common_body_takes_the_fast_path():
    assert _agree({"leads": [lead(events=[EVENT], company={"employees": 5})]})


def test_the_score_api_decodes_through_it():
    """BentoML asks the /score input spec to parse the request: a JSON body comes back
    as the fast decoder's leads (a real starlette Request; no serde needed on that path)."""
    import asyncio

    from starlette.requests import Request

    from serving import fast_body
    from serving.service import LeadScorer

    raw = json.dumps({"leads": [lead(events=[EVENT])], "as_of": "2025-02-01T00:00:00"}).encode()

    async def receive() -> dict:
        return {"type": "http.request", "body": raw, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/score", "headers": [
        (b"content-type", b"application/json")], "query_string": b""}  # fmt: skip
    spec = LeadScorer.score.input_spec
    parsed = asyncio.run(spec.from_http_request(Request(scope, receive), None))
    assert isinstance(parsed.leads[0], fast_body.Lead)
    assert parsed.as_of == datetime(2025, 2, 1)
    assert spec.model_json_schema()["title"] == "Input"


_FINE_FRACTION = re.compile(rb"\d:\d\d(?::\d\d)?[.,]\d{7}")


def _fine_fraction_one_pattern(body: bytes) -> bool:
    """The time-of-day pattern itself (the reference)."""
    return _FINE_FRACTION.search(body) is not None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"1234567",
        b".1234567",
        b"0:00:00.1234567",
        b"0:00:00,1234567",
        b"00:00,12345678",
        b"12:30.1234567",  # no seconds
        b'{"a":"2025-01-01T00:00:00.123456"}',  # microseconds: fine
        b'{"content_id":"x.1234567","at":"2025-01-01T00:00:00.123456"}',  # not a time
        b'{"n":1.12345678,"m":[1,2345678]}',  # a float and a list: not times
        b'{"at":"2025-01-01T00:00:00.1234567"}',
        b'{"at":"2025-01-01T00:00:00,1234567Z","x":"a.1234567"}',
        b'{"x":"a.1234567","at":"2025-01-01T10:11:12.9999999"}',
        b"1:23:45.6789012" * 3,
        b"a,1234567,7654321.1234567:00:00.1234567",
    ],
)
def test_fine_fraction_scan_agrees_with_the_single_pattern(body):
    assert fast_body._fine_fraction(body) == _fine_fraction_one_pattern(body)


def test_fine_fraction_scan_agrees_with_the_pattern_on_random_bodies():
    import random

    rng = random.Random(8)
    alphabet = b'0123456789:.,T-" a'
    found = 0
    for _ in range(20_000):
        body = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        want = _fine_fraction_one_pattern(body)
        found += want
        assert fast_body._fine_fraction(body) == want, body
    # and built ones, with times of every shape among floats and ids
    for _ in range(5_000):
        parts = [
            rng.choice([b"1.1234567", b"x,7654321", b"12:30", b":00", b"0:00:00", b"00:00"])
            + rng.choice([b"", b".", b","])
            + bytes(rng.choice(b"0123456789") for _ in range(rng.randrange(5, 9)))
            for _ in range(rng.randrange(1, 4))
        ]
        body = rng.choice([b"", b'"', b","]).join(parts)
        want = _fine_fraction_one_pattern(body)
        found += want
        assert fast_body._fine_fraction(body) == want, body
    assert found > 500  # the bodies did contain such times
