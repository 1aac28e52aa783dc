"""The simulator's drawing tools: categorical draws per row, seconds from days, codes
decoded to strings, the event log built in batches, and topics drawn for events."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa

from crm.simulate.world import (
    DAY,
    EVENT_CODE,
    GENERAL_TOPICS,
    MOTIVE_TOPICS,
    TOPIC_CODE,
    TOPIC_SHARE_OTHER,
    TOPIC_SHARE_OWN,
    TOPICAL_TYPES,
    TOPICS,
)
from crm.vocabulary import SIMULATED_PERSONAS


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Log-odds to probability."""
    return 1.0 / (1.0 + np.exp(-x))


def sample_rows(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One category per element of ``rows``, drawn from ``probs[rows]`` (rows sum to 1).

    Vectorised inverse-CDF over a flat, strictly increasing array ``row + cumsum``."""
    k = probs.shape[1]
    cum = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    cum[:, -1] = 1.0
    flat = (cum + np.arange(len(probs))[:, None]).ravel()
    u = rng.random(len(rows))
    pos = np.searchsorted(flat, rows + u, side="right") - rows * k
    return np.minimum(pos, k - 1)


_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default ``str`` dtype


def strings(codes: np.ndarray, categories: Iterable[object]) -> pd.Series:
    """Decode integer codes (-1 = missing) to a pandas ``str`` column through Arrow.

    Several times faster than a Categorical for millions of rows, and already the dtype
    ``contract.validate`` converts id and string columns to, so validation stays cheap."""
    codes = np.asarray(codes, dtype=np.int32)
    dictionary = pa.array([str(c) for c in categories], type=pa.large_string())
    arr = pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0), dictionary)
    return pd.Series(arr.dictionary_decode().to_pandas(types_mapper=lambda _: _STR))


def seconds(days: np.ndarray) -> np.ndarray:
    """Days as whole seconds (times are integer seconds since the start)."""
    return np.round(np.asarray(days, dtype=float) * DAY).astype(np.int64)


class EventLog:
    """Event batches in integer seconds since ``start``; concatenated once at the end."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, lead: np.ndarray, at: np.ndarray, etype: np.ndarray, topic: np.ndarray) -> None:
        n = len(lead)
        self.parts.append(
            (
                np.asarray(lead, dtype=np.int64),
                np.asarray(at, dtype=np.int64),
                np.broadcast_to(np.asarray(etype, dtype=np.int16), (n,)).copy(),
                np.broadcast_to(np.asarray(topic, dtype=np.int16), (n,)).copy(),
            )
        )

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        lead, at, etype, topic = (np.concatenate([p[i] for p in self.parts]) for i in range(4))
        return lead, at, etype, topic


def persona_topics(rng: np.random.Generator, persona: np.ndarray) -> np.ndarray:
    """Topic codes for topical events of leads with the given personas."""
    probs = np.zeros((len(SIMULATED_PERSONAS), len(TOPICS)))
    general = [TOPIC_CODE[t] for t in GENERAL_TOPICS if t != "pricing"]
    for i, p in enumerate(SIMULATED_PERSONAS):
        for q in SIMULATED_PERSONAS:
            share = TOPIC_SHARE_OWN if q == p else TOPIC_SHARE_OTHER
            for t in MOTIVE_TOPICS[q]:
                probs[i, TOPIC_CODE[t]] = share / len(MOTIVE_TOPICS[q])
        rest = 1.0 - TOPIC_SHARE_OWN - TOPIC_SHARE_OTHER * (len(SIMULATED_PERSONAS) - 1)
        probs[i, general] = rest / len(general)
    return sample_rows(rng, probs, persona).astype(np.int16)


def type_topics(rng: np.random.Generator, etype: np.ndarray, persona: np.ndarray) -> np.ndarray:
    """Topic per event: persona topics for topical types, ``pricing`` for pricing views."""
    topic = np.full(len(etype), -1, dtype=np.int16)
    topical = np.isin(etype, [EVENT_CODE[t] for t in TOPICAL_TYPES])
    topic[topical] = persona_topics(rng, persona[topical])
    topic[etype == EVENT_CODE["pricing_view"]] = TOPIC_CODE["pricing"]
    return topic


def timestamps(start: pd.Timestamp, sec: np.ndarray) -> np.ndarray:
    """Seconds since ``start`` as nanosecond timestamps."""
    return (start.value + sec * 1_000_000_000).astype("datetime64[ns]")
