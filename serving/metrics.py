"""Lead-scoring Prometheus metrics (prometheus_client, default registry).

BentoML's ``/metrics`` already reports request counts, in-progress gauges and latency
histograms; this module adds only what is specific to lead scoring:

* ``leadscore_answers_total{quadrant}``: answers returned, per quadrant;
* ``leadscore_scored_leads_total``: leads scored;
* ``leadscore_predlog_pending`` / ``_written`` / ``_dropped`` / ``_rejected``: the
  prediction-log counts of this process (gauges, summed over live workers);
* the monitor's figures (:func:`observe_monitor`, set when ``GET /monitor`` is computed
  and on the worker's monitor timer; the most recent value of any worker):
  ``leadscore_feature_psi{feature}`` and ``leadscore_score_psi{score}`` (PSI of the
  latest period against the training data), ``leadscore_unknown_category_share{feature}``,
  ``leadscore_calibration_gap{decile}`` (observed minus predicted conversion, deciles 1 to
  10 of p_convert), ``leadscore_realised_roc_auc``, ``leadscore_monitor_alerts`` and
  ``leadscore_monitor_leads``.
* ``leadscore_shadow_scored_leads_total``: leads the shadow model scored (and logged);
  ``leadscore_shadow_failures_total``: requests the shadow model failed to score (an
  exception in it, or a shadow model that could not be loaded); ``leadscore_shadow_dropped_total``:
  requests not handed to the shadow because its queue was full (it is slower than the
  traffic) or it is not running. Counters; the first two are counted by the shadow
  process itself (:mod:`serving.shadow`), which shares the server's metrics folder.

Label values come from a fixed set. BentoML labels its request metrics with the raw request
path, so every unknown path (``/leads/jane.doe@customer.com``, sent without a token) would
become a new time series, kept in memory and in every scrape, and expose the path itself.
:func:`install_endpoint_labels` makes its middleware label a request with
:func:`endpoint_label` instead: the service's own routes and probes by name, everything else
``"other"``.

How they reach BentoML's ``/metrics`` (checked in bentoml 1.4.40 source,
``_bentoml_impl/server/app.py`` and ``bentoml/_internal/server/metrics/prometheus.py``): the
server runs prometheus_client in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` is set in
each worker's environment) and ``/metrics`` merges the per-process files with a
``MultiProcessCollector``. So ordinary ``Counter``/``Gauge`` objects show up there, but only
if they are created after that variable is set, which is why the metrics here are created
lazily, on first use, and never at import. Custom collectors registered in the default
registry do *not* show up in that mode; that is why the prediction-log counts are gauges set
by :func:`observe_prediction_log` (call it per request, or from a ``__metrics__`` hook of the
service) rather than a collector reading the log at scrape time. In multiprocess mode the
gauges use ``livesum``: the value is the sum over live workers; a restarted worker starts
again from zero.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

_MAX_QUADRANTS = 16  # bound label cardinality: further values are counted as "other"

#: Paths that are their own ``endpoint`` label; every other path is :data:`OTHER_ENDPOINT`.
KNOWN_ENDPOINTS = frozenset(
    {
        "/score",
        "/outcomes",
        "/model",
        "/monitor",
        "/livez",
        "/readyz",
        "/healthz",
        "/metrics",
        "/docs.json",
        "/schema.json",
        "/",
    }
)
OTHER_ENDPOINT = "other"
_STATIC_PREFIX = "/static_content/"  # the Swagger UI's files: one label for all of them
_RAW_PATH = "leadscore.raw_path"


class _LogCounts(Protocol):
    written: int
    dropped: int
    rejected: int

    def pending(self) -> int: ...


class _Instruments:
    def __init__(self) -> None:
        import prometheus_client as pc  # lazy: see the module docstring

        self.answers = pc.Counter(
            "leadscore_answers", "Lead-scoring answers returned, by quadrant", ["quadrant"]
        )
        self.scored = pc.Counter("leadscore_scored_leads", "Leads scored")
        self.pending = pc.Gauge(
            "leadscore_predlog_pending",
            "Prediction-log rows buffered, not yet written",
            multiprocess_mode="livesum",
        )
        self.written = pc.Gauge(
            "leadscore_predlog_written",
            "Prediction-log rows written to the database by this process",
            multiprocess_mode="livesum",
        )
        self.dropped = pc.Gauge(
            "leadscore_predlog_dropped",
            "Prediction-log rows dropped (buffer full or unwritten at shutdown)",
            multiprocess_mode="livesum",
        )
        self.rejected = pc.Gauge(
            "leadscore_predlog_rejected",
            "Prediction-log rows the database refused for their content",
            multiprocess_mode="livesum",
        )
        self.history_failures = pc.Counter(
            "leadscore_history_lookup_failures",
            "Requests answered without changed_because: the prediction log could not say",
        )
        self.quadrants: set[str] = set()
        self.monitor: dict[str, Any] = {}


_MONITOR_GAUGES = {
    # key of MonitorReport.gauges() -> (metric name, help, label or None)
    "feature_psi": (
        "leadscore_feature_psi",
        "PSI of a feature in the latest period against the training data",
        "feature",
    ),
    "score_psi": (
        "leadscore_score_psi",
        "PSI of a score in the latest period against the training holdout",
        "score",
    ),
    "unknown_share": (
        "leadscore_unknown_category_share",
        "Share of the latest period's leads with a category never seen in training",
        "feature",
    ),
    "calibration_gap": (
        "leadscore_calibration_gap",
        "Observed minus predicted conversion per decile of p_convert (outcomes known)",
        "decile",
    ),
    "realised_auc": ("leadscore_realised_roc_auc", "ROC AUC on the outcomes known", None),
    "alerts": ("leadscore_monitor_alerts", "Monitor alerts in the last computation", None),
    "leads": ("leadscore_monitor_leads", "Answers the last monitor computation read", None),
}


_lock = threading.Lock()
_instruments: _Instruments | None = None


def instruments() -> _Instruments:
    """The process-wide metric objects, created on first use."""
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = _Instruments()
    return _instruments


def _quadrant_label(value: Any, seen: set[str]) -> str:
    if value is None:
        return "none"
    label = str(value)[:32]
    if label in seen:
        return label
    with _lock:
        if len(seen) >= _MAX_QUADRANTS:
            return "other"
        seen.add(label)
    return label


def observe_answers(answers: Iterable[Mapping[str, Any]]) -> None:
    """Count scored leads and answers per ``quadrant`` (missing quadrant: ``"none"``)."""
    m = instruments()
    n = 0
    counts: dict[str, int] = {}
    for a in answers:
        n += 1
        q = _quadrant_label(a.get("quadrant"), m.quadrants)
        counts[q] = counts.get(q, 0) + 1
    for q, c in counts.items():
        m.answers.labels(quadrant=q).inc(c)
    if n:
        m.scored.inc(n)


def observe_prediction_log(log: _LogCounts) -> None:
    """Copy a :class:`serving.predlog.PredictionLog`'s counts into the gauges."""
    m = instruments()
    m.pending.set(log.pending())
    m.written.set(log.written)
    m.dropped.set(log.dropped)
    m.rejected.set(log.rejected)


def observe_monitor(gauges: Mapping[str, Any]) -> None:
    """Set the monitor's gauges from :meth:`monitoring.MonitorReport.gauges` (label values
    are the model's feature names and deciles: a bounded set)."""
    import prometheus_client as pc

    m = instruments()
    with _lock:
        for key, (name, text, label) in _MONITOR_GAUGES.items():
            if key not in m.monitor:
                m.monitor[key] = pc.Gauge(
                    name, text, [label] if label else [], multiprocess_mode="mostrecent"
                )
    for key, (_name, _text, label) in _MONITOR_GAUGES.items():
        value = gauges.get(key)
        if value is None:
            continue
        gauge = m.monitor[key]
        if label is None:
            gauge.set(float(value))
            continue
        for name, v in value.items():
            gauge.labels(**{label: str(name)[:64]}).set(float(v))


def observe_history_lookup_failure() -> None:
    """Count a request whose answers went out without ``changed_because``."""
    instruments().history_failures.inc()


class _ShadowInstruments:
    def __init__(self) -> None:
        import prometheus_client as pc  # lazy: see the module docstring

        self.scored = pc.Counter(
            "leadscore_shadow_scored_leads", "Leads the shadow model scored and logged"
        )
        self.failures = pc.Counter(
            "leadscore_shadow_failures",
            "Requests the shadow model failed to score (its answer was never affected)",
        )
        self.dropped = pc.Counter(
            "leadscore_shadow_dropped",
            "Requests not scored by the shadow model: its queue was full or it was not running",
        )


_shadow: _ShadowInstruments | None = None


def shadow_instruments() -> _ShadowInstruments:
    """The shadow model's counters, created on first use (in the worker for ``dropped``,
    in the shadow process for the others: only what a process uses appears from it)."""
    global _shadow
    if _shadow is None:
        with _lock:
            if _shadow is None:
                _shadow = _ShadowInstruments()
    return _shadow


def endpoint_label(path: str) -> str:
    """The ``endpoint`` label of a request path: one of a fixed set, never the raw path."""
    if path in KNOWN_ENDPOINTS:
        return path
    if path.startswith(_STATIC_PREFIX):
        return _STATIC_PREFIX.rstrip("/")
    return OTHER_ENDPOINT


class _RestorePath:
    """Sits right inside BentoML's metrics middleware: gives the app the real path back."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raw = scope.get(_RAW_PATH)
        if raw is not None:
            scope = {k: v for k, v in scope.items() if k != _RAW_PATH}
            scope["path"] = raw
        await self.app(scope, receive, send)


def install_endpoint_labels() -> None:
    """Make BentoML's HTTP metrics middlewares label requests with :func:`endpoint_label`.

    They read ``scope["path"]`` when a request comes in (``bentoml/_internal/server/http/
    instruments.py``, 1.4.40) and are the outermost middleware, so no middleware of ours
    runs before them: their ``__call__`` is wrapped to see the label as the path, and the
    app inside them gets the real path back. Idempotent; call it in the worker before the
    first request (the service does, in its constructor)."""
    from bentoml._internal.server.http import instruments as bento_instruments

    for cls in (
        bento_instruments.RunnerTrafficMetricsMiddleware,
        bento_instruments.HTTPTrafficMetricsMiddleware,
    ):
        if getattr(cls, "_leadscore_labels", False):
            continue
        original = cls.__call__

        async def labelled(
            self: Any, scope: Any, receive: Any, send: Any, _original: Any = original
        ) -> None:
            path = scope.get("path")
            if isinstance(path, str) and str(scope.get("type", "")).startswith(
                ("http", "websocket")
            ):
                label = endpoint_label(path)
                if label != path:
                    if not isinstance(self.app, _RestorePath):
                        self.app = _RestorePath(self.app)
                    scope = {**scope, "path": label, _RAW_PATH: path}
            await _original(self, scope, receive, send)

        cls.__call__ = labelled  # type: ignore[method-assign]
        cls._leadscore_labels = True  # type: ignore[attr-defined]


__all__ = [
    "KNOWN_ENDPOINTS",
    "OTHER_ENDPOINT",
    "endpoint_label",
    "install_endpoint_labels",
    "instruments",
    "observe_answers",
    "observe_history_lookup_failure",
    "observe_monitor",
    "observe_prediction_log",
    "shadow_instruments",
]
