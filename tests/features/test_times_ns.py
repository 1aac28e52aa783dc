"""features.single.times_ns: its two converters (Python arithmetic for a few datetimes,
pandas for many) give the same nanoseconds."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np

from features.single import times_ns


def test_many_datetimes_convert_as_a_few_do():
    rng = random.Random(3)
    start = datetime(1900, 1, 1)
    values = [
        start + timedelta(microseconds=rng.randrange(0, 300 * 365 * 86_400 * 10**6))
        for _ in range(5_000)
    ] + [datetime(1970, 1, 1), datetime(1969, 12, 31, 23, 59, 59, 999_999)]
    many = times_ns(values)  # one call: the pandas converter
    few = np.concatenate([times_ns(values[i : i + 100]) for i in range(0, len(values), 100)])
    assert many.dtype == np.int64 and few.dtype == np.int64
    assert np.array_equal(many, few)
    assert times_ns([datetime(1970, 1, 1, 0, 0, 0, 1)]).tolist() == [1000]
