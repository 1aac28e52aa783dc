"""A table of malformed requests: each gets its 4xx status and a JSON object
``{"error", "field"}`` that names the field and the reason; never a 5xx."""

from __future__ import annotations

import copy
import json

import httpx
import pytest
from serving_helpers import AUTH

pytestmark = pytest.mark.slow

GOOD = {
    "lead_id": "L-1",
    "created_at": "2025-01-01T00:00:00Z",
    "job_title": "Head of Marketing",
    "source": "organic_search",
    "email_domain_kind": "business",
    "do_not_email": False,
    "company": {"industry": "software", "employees": 50, "annual_revenue": 1e6, "country": "DE"},
    "events": [{"type": "page_view", "at": "2025-02-01T00:00:00Z", "topic": "pricing"}],
    "stages": [{"stage": "lead", "entered_at": "2025-01-01T00:00:00Z"}],
}
AS_OF = "2025-03-01T00:00:00Z"


def lead(**changes):
    out = copy.deepcopy(GOOD)
    for path, value in changes.items():
        target = out
        *parents, last = path.split("__")
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return out


def body(*leads, as_of=AS_OF):
    return {"leads": list(leads), "as_of": as_of}


# (name, path, raw body or JSON-able body, status, field, words in the error)
CASES = [
    ("no leads key", "/score", {"as_of": AS_OF}, 400, "leads", "required"),
    ("empty list", "/score", body(), 400, "leads", "at least 1"),
    (
        "too many leads",
        "/score",
        {"leads": [lead(lead_id=f"L{i}") for i in range(1001)]},
        413,
        "leads",
        "1,001 sent, the limit is 1,000 per request",
    ),
    (
        "too many outcomes",
        "/outcomes",
        {
            "outcomes": [
                {"lead_id": f"L{i}", "stage": "sal", "at": "2025-01-01"} for i in range(10_001)
            ]
        },
        413,
        "outcomes",
        "10,001 sent, the limit is 10,000 per request",
    ),
    ("leads not a list", "/score", {"leads": {"lead_id": "x"}}, 400, "leads", "array"),
    ("not JSON", "/score", "{not json", 400, None, "not valid JSON"),
    ("missing lead_id", "/score", body(lead(lead_id=...)), 400, "leads[0].lead_id", "required"),
    ("empty lead_id", "/score", body(lead(lead_id="")), 400, "leads[0].lead_id", "at least 1"),
    ("lead_id a number", "/score", body(lead(lead_id=12)), 400, "leads[0].lead_id", "string"),
    ("duplicate lead ids", "/score", body(lead(), lead()), 400, "leads[1].lead_id", "duplicate"),
    (
        "created_at garbage",
        "/score",
        body(lead(created_at="yesterday")),
        400,
        "leads[0].created_at",
        "datetime",
    ),
    (
        "created_at missing",
        "/score",
        body(lead(created_at=...)),
        400,
        "leads[0].created_at",
        "required",
    ),
    (
        "created_at future",
        "/score",
        body(lead(created_at="2025-06-01T00:00:00Z")),
        400,
        "leads[0].created_at",
        "after as_of",
    ),
    (
        "event in the future",
        "/score",
        body(lead(events__0__at="2025-03-02T00:00:00Z")),
        400,
        "leads[0].events[0].at",
        "after as_of",
    ),
    (
        "stage in the future",
        "/score",
        body(lead(stages__0__entered_at="2026-01-01")),
        400,
        "leads[0].stages[0].entered_at",
        "after as_of",
    ),
    (
        "unknown event type",
        "/score",
        body(lead(events__0__type="fax")),
        400,
        "leads[0].events[0].type",
        "page_view",
    ),
    (
        "unknown stage",
        "/score",
        body(lead(stages__0__stage="won")),
        400,
        "leads[0].stages[0].stage",
        "visit",
    ),
    (
        "negative employees",
        "/score",
        body(lead(company__employees=-3)),
        400,
        "leads[0].company.employees",
        "greater than or equal to 0",
    ),
    (
        "negative revenue",
        "/score",
        body(lead(company__annual_revenue=-1)),
        400,
        "leads[0].company.annual_revenue",
        "greater than or equal to 0",
    ),
    (
        "NaN employees",
        "/score",
        '{{"leads": [{}]}}'.format(
            json.dumps(lead()).replace('"employees": 50', '"employees": NaN')
        ),
        400,
        "leads[0].company.employees",
        "finite",
    ),
    (
        "infinite revenue",
        "/score",
        '{{"leads": [{}]}}'.format(
            json.dumps(lead()).replace('"annual_revenue": 1000000.0', '"annual_revenue": Infinity')
        ),
        400,
        "leads[0].company.annual_revenue",
        "finite",
    ),
    (
        "employees as text",
        "/score",
        body(lead(company__employees="many")),
        400,
        "leads[0].company.employees",
        "number",
    ),
    (
        "unknown lead field",
        "/score",
        body(lead(name="Jane Doe")),
        400,
        "leads[0].name",
        "unknown field",
    ),
    (
        "unknown company field",
        "/score",
        body(lead(company__ceo="x")),
        400,
        "leads[0].company.ceo",
        "unknown field",
    ),
    (
        "bad email kind",
        "/score",
        body(lead(email_domain_kind="corporate")),
        400,
        "leads[0].email_domain_kind",
        "business",
    ),
    (
        "do_not_email as list",
        "/score",
        body(lead(do_not_email=[1])),
        400,
        "leads[0].do_not_email",
        "boolean",
    ),
    ("events not a list", "/score", body(lead(events="many")), 400, "leads[0].events", "array"),
    (
        "as_of year 1",
        "/score",
        body(lead(), as_of="0001-01-01T00:06:06+01:00"),
        400,
        "as_of",
        "out of range",
    ),
    ("as_of garbage", "/score", body(lead(), as_of="soon"), 400, "as_of", "datetime"),
    (
        "job_title too long",
        "/score",
        body(lead(job_title="x" * 301)),
        400,
        "leads[0].job_title",
        "at most 300",
    ),
    (
        "outcome unknown stage",
        "/outcomes",
        {"outcomes": [{"lead_id": "L", "stage": "won", "at": "2025-01-01"}]},
        400,
        "outcomes[0].stage",
        "visit",
    ),
    (
        "outcome in the future",
        "/outcomes",
        {"outcomes": [{"lead_id": "L", "stage": "sal", "at": "2100-01-01"}]},
        400,
        "outcomes[0].at",
        "future",
    ),
    (
        "outcome accepted as text",
        "/outcomes",
        {"outcomes": [{"lead_id": "L", "stage": "sal", "accepted": "maybe", "at": "2025-01-01"}]},
        400,
        "outcomes[0].accepted",
        "boolean",
    ),
    ("no outcomes", "/outcomes", {"outcomes": []}, 400, "outcomes", "at least 1"),
    (
        "NUL in an outcome's lead_id",
        "/outcomes",
        {"outcomes": [{"lead_id": "L\u0000x", "stage": "sal", "at": "2025-01-01"}]},
        400,
        "outcomes[0].lead_id",
        "control character (U+0000)",
    ),
    (
        "newline in a lead_id",
        "/score",
        body(lead(lead_id="L-1\nL-2")),
        400,
        "leads[0].lead_id",
        "control character (U+000A)",
    ),
]


def test_the_table_is_big_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize(
    ("path", "payload", "status", "field", "words"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_request(api_server, path, payload, status, field, words):
    content = payload if isinstance(payload, str) else json.dumps(payload)
    r = httpx.post(
        f"{api_server.url}{path}",
        content=content,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == status, r.text
    err = r.json()
    assert isinstance(err, dict) and set(err) == {"error", "field"}, err
    assert err["field"] == field, err
    assert words.lower() in err["error"].lower(), err


def test_wrong_method_and_unknown_route_are_json(api_server):
    r = httpx.get(f"{api_server.url}/score", headers=AUTH)
    assert r.status_code == 405 and "error" in r.json()
    r = httpx.get(f"{api_server.url}/nowhere", headers=AUTH)
    assert r.status_code == 404 and "error" in r.json()
