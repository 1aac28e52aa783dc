"""Is the model still right? Drift of the served traffic against the training data, and
realised calibration and ROC AUC once outcomes have arrived.

Pure computation over DataFrames and the reference statistics ``train`` stores with the
model; no database, no HTTP. The prediction log is read by ``serving.predlog.traffic``;
the CLI (``leadscore monitor``) and the service (``GET /monitor``) call :func:`monitor`.

* :mod:`~monitoring.reference`: the reference statistics (bins and shares per feature and
  per score) computed at training time;
* :mod:`~monitoring.drift`: PSI per feature and per score by day or week, with the rule that
  keeps a thin period from raising an alarm; unknown-category share; volume;
* :mod:`~monitoring.outcomes`: realised labels, calibration per score decile and per month
  with Wilson intervals, realised ROC AUC with an interval;
* :mod:`~monitoring.report`: all of it and the alerts in plain words (JSON form);
* :mod:`~monitoring.page`: the self-contained HTML page with its charts.
"""

from __future__ import annotations

import importlib
from typing import Any

#: where each name lives; imported on first use, so that a process which only needs
#: ``MissingReference`` (a server's start-up) does not load SciPy and the charts
_HOMES = {
    "MissingReference": "monitoring.reference",
    "reference_stats": "monitoring.reference",
    "MonitorReport": "monitoring.report",
    "Traffic": "monitoring.report",
    "monitor": "monitoring.report",
    "monitor_model": "monitoring.report",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'monitoring' has no attribute {name!r}")


__all__ = [
    "MissingReference",
    "MonitorReport",
    "Traffic",
    "monitor",
    "monitor_model",
    "reference_stats",
]
