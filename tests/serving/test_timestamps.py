"""serving.timestamps.checked_moment: its fast paths for Python datetimes (naive, UTC,
other offsets and zones) give what the one UTC rule (features.pointintime.naive_utc, via
pandas) gives, and refuse what it refuses."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from features.pointintime import naive_utc
from serving.timestamps import MAX_TIME, MIN_TIME, checked_moment

ZONES = [
    UTC,
    timezone(timedelta(hours=2)),
    timezone(timedelta(hours=-14)),
    timezone(timedelta(hours=14)),
    timezone(timedelta(hours=5, minutes=45)),
    ZoneInfo("Europe/Berlin"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Australia/Lord_Howe"),  # a half-hour daylight-saving shift
]


def _reference(value: datetime) -> datetime:
    """The rule without the fast paths: pandas' conversion, then the range."""
    naive = value.replace(tzinfo=None)
    if not MIN_TIME - timedelta(days=1) <= naive <= MAX_TIME + timedelta(days=1):
        raise ValueError("out of range")
    out = naive_utc(value).to_pydatetime()
    if not MIN_TIME <= out <= MAX_TIME:
        raise ValueError("out of range")
    return out


def _outcome(fn, value):
    try:
        out = fn(value)
    except ValueError:
        return "refused"
    assert type(out) is datetime and out.tzinfo is None
    return out


def _moments(rng: random.Random, n: int) -> list[datetime]:
    edges = [MIN_TIME, MAX_TIME]
    out = []
    for _ in range(n):
        if rng.random() < 0.3:  # near the ends of the range, where offsets decide
            base = rng.choice(edges) + timedelta(seconds=rng.randrange(-2 * 86_400, 2 * 86_400))
        else:
            base = MIN_TIME + timedelta(microseconds=rng.randrange(0, 230 * 365 * 86_400 * 10**6))
        out.append(base.replace(microsecond=rng.randrange(10**6), fold=rng.randrange(2)))
    return out


def test_aware_and_naive_datetimes_convert_as_pandas_does():
    rng = random.Random(6)
    extremes = [datetime.min, datetime.max, datetime(1, 1, 1, 12), datetime(9999, 12, 31, 12)]
    for local in [*extremes, *_moments(rng, 4_000)]:
        for tz in [None, *ZONES]:
            value = local if tz is None else local.replace(tzinfo=tz)
            assert _outcome(checked_moment, value) == _outcome(_reference, value), value


@pytest.mark.parametrize(
    "text, want",
    [
        ("2026-03-29T02:30:00+02:00", datetime(2026, 3, 29, 0, 30)),
        ("2026-01-01T00:00:00Z", datetime(2026, 1, 1)),
        ("2199-12-31T23:30:00-01:00", "refused"),  # 2200-01-01 00:30 UTC: past the range
        ("1970-01-01T00:30:00+01:00", "refused"),  # 1969-12-31 23:30 UTC
    ],
)
def test_iso_text_with_offsets(text, want):
    assert _outcome(checked_moment, text) == want
