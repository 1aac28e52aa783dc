"""``GET /monitor`` and the monitor's Prometheus gauges, in the service.

The served model's answers in the prediction log (the last ``days``, by the moment scored
as of) against the reference statistics it carries (:mod:`monitoring`): the HTML page, or
its JSON with ``?format=json``. Query parameters: ``format`` (``html``, ``json``),
``period`` (``day``, ``week``), ``days`` (1 to 3650; default ``LEADSCORE_MONITOR_DAYS``).

Every computation also sets the gauges (:func:`serving.metrics.observe_monitor`); a timer
thread, started by the worker (:meth:`ServedMonitor.start`, never at import), recomputes
them every ``LEADSCORE_MONITOR_INTERVAL_S`` seconds so that Grafana sees fresh figures
without anyone opening the page.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import pandas as pd

from monitoring.reference import MissingReference
from serving import metrics
from serving.predlog import StoreUnavailableError
from serving.timestamps import utc_now

logger = logging.getLogger("bentoml.leadscore")

MAX_DAYS = 3650
Answer = tuple[int, str, bytes]


def _error(status: int, message: str, field: str | None) -> Answer:
    body = json.dumps({"error": message, "field": field}).encode("utf-8")
    return status, "application/json", body


def parse_query(query: str, default_days: int) -> tuple[dict[str, Any], Answer | None]:
    """The parameters of a ``/monitor`` query string, or the 400 naming the bad one."""
    q = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(q) - {"format", "period", "days"})
    if unknown:
        return {}, _error(400, f"unknown query parameter {unknown[0]!r}", unknown[0])
    fmt = q.get("format", "html")
    if fmt not in ("html", "json"):
        return {}, _error(400, "format must be html or json", "format")
    period = q.get("period", "week")
    if period not in ("day", "week"):
        return {}, _error(400, "period must be day or week", "period")
    days_text = q.get("days", str(default_days))
    if not days_text.isdigit() or not 1 <= int(days_text) <= MAX_DAYS:
        return {}, _error(400, f"days must be a whole number from 1 to {MAX_DAYS}", "days")
    return {"format": fmt, "period": period, "days": int(days_text)}, None


class ServedMonitor:
    """The monitor of one worker's model and prediction log."""

    def __init__(self, model: Any, model_ref: dict[str, str], log: Any, days: int) -> None:
        self.model = model
        self.model_ref = model_ref
        self.log = log
        self.days = days
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def report(self, period: str = "week", days: int | None = None) -> Any:
        """The report of the last ``days``; sets the gauges. Raises
        :class:`StoreUnavailableError` and :class:`MissingReference`."""
        from monitoring.report import monitor_model  # SciPy: loaded by the first report

        now = utc_now()
        since = now - timedelta(days=days or self.days)
        traffic = self.log.read_traffic(
            self.model_ref["name"], self.model_ref["version"], since, None
        )
        report = monitor_model(
            self.model,
            traffic,
            model_name=self.model_ref["name"],
            model_version=self.model_ref["version"],
            period=period,
            now=pd.Timestamp(now),
        )
        metrics.observe_monitor(report.gauges())
        return report

    def answer(self, query: str) -> Answer:
        """Status, content type and body of ``GET /monitor?<query>``."""
        params, bad = parse_query(query, self.days)
        if bad is not None:
            return bad
        try:
            report = self.report(params["period"], params["days"])
        except StoreUnavailableError as e:
            logger.warning("monitor unavailable: %s", e)
            return _error(503, "the prediction log is unavailable; retry later", None)
        except MissingReference as e:
            return _error(409, str(e), None)
        if params["format"] == "json":
            return 200, "application/json", json.dumps(report.to_dict()).encode("utf-8")
        from monitoring.page import render  # Matplotlib: loaded by the first page

        return 200, "text/html; charset=utf-8", render(report).encode("utf-8")

    # ------------------------------------------------------------------ the timer

    def start(self, interval_s: float) -> None:
        """Recompute the gauges every ``interval_s`` seconds (first after a few seconds)
        in a daemon thread, until :meth:`stop`; 0: never."""
        if interval_s <= 0 or self._thread is not None:
            return
        # SciPy and the page's charts, imported now, at the worker's start, rather than by
        # the timer's first report while requests are being answered
        import monitoring.page  # noqa: F401
        import monitoring.report  # noqa: F401

        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="leadscore-monitor", daemon=True
        )
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        wait = min(5.0, interval_s)
        while not self._stop.wait(wait):
            wait = interval_s
            try:
                self.report()
            except (StoreUnavailableError, MissingReference) as e:
                logger.info("monitor gauges not updated: %s", e)
            except Exception:  # noqa: BLE001 - the timer must outlive a bad computation
                logger.exception("monitor gauges not updated")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


def monitor_openapi(err: dict, unauthorized: str) -> dict:
    """The OpenAPI path item of ``GET /monitor``."""

    def param(name: str, schema: dict, text: str) -> dict:
        return {"name": name, "in": "query", "required": False, "description": text,
                "schema": schema}  # fmt: skip

    return {
        "get": {
            "summary": "Is the model still right? Drift of the served model's features and "
            "scores against its training data by day or week, unknown categories, volume, "
            "realised calibration and ROC AUC, alerts in words (HTML page or JSON)",
            "operationId": "leadscore__monitor",
            "security": [{"bearer": []}],
            "parameters": [
                param(
                    "format",
                    {"type": "string", "enum": ["html", "json"], "default": "html"},
                    "html: the page with its charts; json: the same figures",
                ),
                param(
                    "period",
                    {"type": "string", "enum": ["day", "week"], "default": "week"},
                    "Drift per day or per ISO week",
                ),
                param(
                    "days",
                    {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
                    "Answers scored as of the last this many days (LEADSCORE_MONITOR_DAYS)",
                ),
            ],  # fmt: skip
            "responses": {
                "200": {
                    "description": "The monitoring page, or its JSON",
                    "content": {
                        "text/html": {"schema": {"type": "string"}},
                        "application/json": {"schema": {"type": "object"}},
                    },
                },
                "400": {"description": "A bad query parameter, named", **err},
                "401": {"description": unauthorized, **err},
                "409": {
                    "description": "The served model carries no reference statistics: retrain it",
                    **err,
                },  # fmt: skip
                "503": {"description": "Not ready, or the prediction log is unavailable", **err},
            },
        }
    }


__all__ = ["ServedMonitor", "monitor_openapi", "parse_query"]
