"""The BentoML service the CRM calls. Thin by design: validate, build the canonical
tables, run the shared scoring path, shape the answer, log it.

The model is a BentoML model (imported from the MLflow registry by `leadscore serve` or
`leadscore build`); LEADSCORE_BENTO_MODEL names its tag (default ``lead-scorer:latest``).

Routes: ``POST /score``, ``POST /outcomes``, ``GET /model`` (bearer token, see
:mod:`serving.auth`); ``/livez``, ``/readyz`` (model loaded and one warm-up prediction
done), ``/metrics`` and ``/docs.json`` are open. Without tokens the service refuses to
start unless ``LEADSCORE_INSECURE_DEV=1`` (``leadscore serve --insecure-dev``), which is
honoured on a loopback address only and never in a built bento.

Every answer is written to the prediction log (:mod:`serving.predlog`, SQLite by default,
PostgreSQL when ``LEADSCORE_DB_URL`` says so) off the request path; on shutdown (SIGTERM)
the server finishes the requests in flight, then the log is flushed. A hard kill (SIGKILL,
out of memory) loses the answers still buffered in the worker (the last ~0.1 s).

Work per request is bounded (:mod:`serving.limits`): body size and event count are checked
before BentoML parses the body, and a request past its deadline stops without being logged.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import bentoml
import pandas as pd
from bentoml.exceptions import InternalServerError
from pydantic import Field
from starlette.responses import Response

from scoring.batch import answer_records, expected_custom_fields, score_tables
from scoring.registry import scoring_model
from serving import metrics
from serving.auth import BearerTokenMiddleware, is_loopback, load_tokens
from serving.errors import (
    ApiMiddleware,
    RequestError,
    install_client_error_logging,
    install_log_redaction,
)
from serving.limits import (
    DEFAULT_DEADLINE_S,
    MAX_BODY_BYTES,
    MAX_EVENTS_PER_REQUEST,
    BodyLimitMiddleware,
    DeadlineExceeded,
    check_event_total,
    elapsed,
    past_deadline,
)
from serving.predlog import OutcomeValidationError, PredictionLog, StoreUnavailableError
from serving.schemas import (
    MAX_LEADS_PER_REQUEST,
    MAX_OUTCOMES_PER_REQUEST,
    Lead,
    Outcome,
    OutcomesResponse,
    ScoreResponse,
    check_leads,
    check_outcomes,
    leads_to_tables,
    score_response_json,
)

logger = logging.getLogger("bentoml.leadscore")

MODEL_TAG = os.environ.get("LEADSCORE_BENTO_MODEL", "lead-scorer:latest")
INSECURE_ENV = "LEADSCORE_INSECURE_DEV"
#: Requests in progress per service (all workers) before new ones get 429 at once.
MAX_CONCURRENCY = int(os.environ.get("LEADSCORE_MAX_CONCURRENCY", "32"))
WORKERS = int(os.environ.get("LEADSCORE_WORKERS", "2"))
#: BentoML's own request timeout (it answers 504 but lets the worker thread run on).
REQUEST_TIMEOUT_S = 30
#: Our deadline, below that timeout: past it a request's work stops and nothing is logged.
DEADLINE_S = min(
    float(os.environ.get("LEADSCORE_REQUEST_DEADLINE_S", DEFAULT_DEADLINE_S)),
    REQUEST_TIMEOUT_S - 2.0,
)

_current: LeadScoringService | None = None  # this worker's instance, for GET /model


#: Set by serving/bento_entry.py in a built bento, where insecure dev mode is refused.
BUILT_BENTO_ENV = "LEADSCORE_BUILT_BENTO"


class InsecureModeRefused(RuntimeError):
    """LEADSCORE_INSECURE_DEV asked for where it is not allowed."""


def listen_host(argv: list[str] | None = None) -> str | None:
    """The address this server listens on: in a worker, the address of the socket BentoML
    handed it (``--fd N``); in `bentoml serve` itself, its ``--host`` (BentoML's default is
    0.0.0.0). None when neither is known (e.g. the service used in-process)."""
    argv = sys.argv if argv is None else argv
    options = dict(a.split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    for i, a in enumerate(argv[:-1]):
        if a in ("--fd", "--host"):
            options.setdefault(a, argv[i + 1])
    if "--fd" in options:
        try:
            with socket.socket(fileno=os.dup(int(options["--fd"]))) as sock:
                name = sock.getsockname()
        except (OSError, ValueError):
            return None
        return str(name[0]) if isinstance(name, tuple) else None
    if Path(argv[0]).name == "bentoml" and "serve" in argv[1:3]:
        return options.get("--host", "0.0.0.0")
    return None


def insecure_dev() -> bool:
    """True when LEADSCORE_INSECURE_DEV asks to serve without tokens and that is allowed:
    never in a built bento, and only on a loopback address (what `leadscore serve
    --insecure-dev` sets up). Asked for anywhere else, it raises
    :class:`InsecureModeRefused`: the server does not start."""
    if os.environ.get(INSECURE_ENV, "").strip().lower() not in ("1", "true", "yes"):
        return False
    if os.environ.get(BUILT_BENTO_ENV):
        raise InsecureModeRefused(
            f"{INSECURE_ENV} is refused in a built bento: configure LEADSCORE_API_TOKENS or "
            "LEADSCORE_API_TOKENS_FILE"
        )
    host = listen_host()
    if host is None or not is_loopback(host):
        raise InsecureModeRefused(
            f"{INSECURE_ENV} (no authentication) is allowed on a loopback address only, not "
            f"on {host or 'an unknown address'}: configure LEADSCORE_API_TOKENS or "
            "LEADSCORE_API_TOKENS_FILE"
        )
    return True


class AuthGate:
    """Bearer tokens from the environment, checked when the worker builds its app: with no
    token configured the worker refuses to start, unless insecure dev mode is on."""

    def __init__(self, app: Any) -> None:
        tokens = load_tokens()
        if tokens:
            self.app = BearerTokenMiddleware(app, tokens)
        elif insecure_dev():
            logger.warning(
                "INSECURE DEV MODE: no API tokens, every caller is let in. Never do this "
                "outside a laptop."
            )
            self.app = app
        else:
            raise RuntimeError(
                "no API tokens configured: set LEADSCORE_API_TOKENS or "
                "LEADSCORE_API_TOKENS_FILE (or run `leadscore serve --insecure-dev` locally)"
            )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def _refuse_without_tokens(in_worker: bool = False) -> None:
    """Stop here, with a clear message, when no API token is configured (and insecure dev
    mode is off). In `bentoml serve` itself this exits before any worker starts; in a worker
    (a backstop) it stops the whole server, since an exception in a worker's start-up would
    only turn every answer into a 500."""
    try:
        if load_tokens() or insecure_dev():
            return
        message = (
            "refusing to start: no API tokens configured. Set LEADSCORE_API_TOKENS "
            "(comma-separated) or LEADSCORE_API_TOKENS_FILE, or run `leadscore serve "
            "--insecure-dev` on a laptop"
        )
    except (InsecureModeRefused, ValueError) as e:  # a short token, an unreadable file
        message = f"refusing to start: {e}"
    if in_worker:
        logger.error(message)
        os.kill(os.getppid(), signal.SIGTERM)
        raise RuntimeError(message)
    raise SystemExit(message)


def model_choice(meta: dict[str, Any]) -> dict[str, Any]:
    """Which model family won on the validation folds, by how much, and the skill verdict
    on the holdout (from the model's metadata), for ``GET /model``."""
    choice = meta.get("choice") or {}
    skill = meta.get("skill") or {}
    return {
        "family": choice.get("family", "lightgbm"),
        "choice": choice.get("reason"),
        "calibration_prior": choice.get("calibration_prior"),
        "skill": skill.get("skill"),
        "skill_sentence": skill.get("sentence"),
    }


#: Seconds a worker whose server process died gets to finish its requests and flush the log.
ORPHAN_GRACE_S = 35.0


def watch_parent(interval: float = 0.5, grace: float = ORPHAN_GRACE_S) -> threading.Thread:
    """A worker stops when the `bentoml serve` process that started it is gone.

    BentoML starts each worker in a process group of its own, so a SIGKILLed server leaves
    them serving on the shared socket, and the next `leadscore serve` on that port fails. A
    daemon thread polls the parent pid: once the worker has been re-parented it sends itself
    SIGTERM (uvicorn drains, the prediction log is flushed) and exits hard after ``grace``
    seconds if that did not end it. (Polling rather than prctl(PR_SET_PDEATHSIG): that
    signal fires when the parent *thread* that forked the worker exits, which is not the
    same thing in an arbiter with threads.)"""
    parent = os.getppid()

    def run() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        logger.error(
            "the BentoML server process (pid %d) is gone: this worker (pid %d) stops",
            parent,
            os.getpid(),
        )
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    thread = threading.Thread(target=run, name="leadscore-parent-watch", daemon=True)
    thread.start()
    return thread


def _check_deadline(stage: str) -> None:
    if past_deadline(DEADLINE_S):
        raise DeadlineExceeded(stage)


def _deadline_response(exc: DeadlineExceeded, request_id: str) -> Response:
    """503 for a request past its deadline: its work stopped, nothing of it was logged."""
    logger.warning(
        "request %s passed its %g s deadline while %s (%.1f s): stopped, not logged",
        request_id,
        DEADLINE_S,
        exc,
        elapsed(),
    )
    return RequestError(
        f"the request took longer than the {DEADLINE_S:g} s deadline and was stopped; "
        "nothing was scored or stored: retry with fewer leads or events",
        None,
        status=503,
    ).response()


def _model_info() -> dict[str, Any] | None:
    return None if _current is None else _current.model_info


def openapi_patch(spec: dict) -> dict:
    """Document what BentoML's generated spec does not know: bearer auth, the error body and
    statuses, ``GET /model``."""
    from serving.schemas import ErrorBody, ModelInfo

    comps = spec.setdefault("components", {})
    schemas = comps.setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    schemas["ModelInfo"] = ModelInfo.model_json_schema()
    comps["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    described = {
        "400": "Malformed input: the field and the reason",
        "401": "Missing or invalid bearer token",
        "413": f"More than {MAX_LEADS_PER_REQUEST:,} leads, {MAX_EVENTS_PER_REQUEST:,} events "
        f"or {MAX_BODY_BYTES:,} bytes in one request",
        "429": "Too many requests in flight: retry later",
        "503": "Not ready, the outcome store is unavailable, or the request passed its "
        "deadline (nothing of it was scored or stored)",
        "500": "A server bug",
    }
    paths = spec.setdefault("paths", {})
    for route in ("/score", "/outcomes"):
        op = paths.get(route, {}).get("post")
        if op is None:
            continue
        op["security"] = [{"bearer": []}]
        responses = op.setdefault("responses", {})
        for code, text in described.items():
            responses[code] = {"description": text, **err}
    paths["/model"] = {
        "get": {
            "summary": "The served model: name, version, trained_at, holdout metrics, "
            "quadrant thresholds",
            "operationId": "leadscore__model",
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "Model card",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ModelInfo"}}
                    },
                },
                "401": {"description": described["401"], **err},
                "503": {"description": "No model loaded yet", **err},
            },
        }
    }
    return spec


def _as_of_utc(v: datetime | None) -> datetime | None:
    """as_of in naive UTC, within the range every timestamp must be in."""
    from serving.schemas import _utc_naive

    try:
        return None if v is None else _utc_naive(v)
    except ValueError as e:
        raise RequestError(str(e), "as_of") from e


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _warmup_lead(now: datetime) -> Lead:
    return Lead.model_validate(
        {
            "lead_id": "warm-up",
            "created_at": (now - pd.Timedelta(days=30)).isoformat(),
            "job_title": "Head of Marketing",
            "source": "organic_search",
            "email_domain_kind": "business",
            "company": {"industry": "software", "employees": 120, "country": "DE"},
            "events": [
                {"type": "page_view", "at": (now - pd.Timedelta(days=2)).isoformat()},
                {"type": "pricing_view", "at": (now - pd.Timedelta(days=1)).isoformat()},
            ],
        }
    )


@bentoml.service(
    name="leadscore",
    workers=WORKERS,
    traffic={"timeout": REQUEST_TIMEOUT_S, "max_concurrency": MAX_CONCURRENCY},
)
class LeadScoringService:
    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        global _current
        self._ready = False
        _refuse_without_tokens(in_worker=True)
        install_log_redaction()
        install_client_error_logging()
        metrics.install_endpoint_labels()
        if bentoml.server_context.worker_index is not None:  # a worker of `bentoml serve`
            watch_parent()
        pyfunc = bentoml.mlflow.load_model(self.bento_model)
        self.model = scoring_model(pyfunc).for_serving()
        labels = self.bento_model.info.labels
        self.model_ref = {
            "name": labels.get("mlflow_model", str(self.bento_model.tag.name)),
            "version": labels.get("mlflow_version", str(self.bento_model.tag.version)),
        }
        meta = dict(getattr(self.model, "metadata", {}) or {})
        self.model_info: dict[str, Any] = {
            **self.model_ref,
            "target": getattr(self.model, "target", None),
            "trained_at": meta.get("trained_at"),
            "holdout_metrics": {
                k: float(v) for k, v in (meta.get("holdout_metrics") or {}).items()
            },
            "quadrant_thresholds": dict(getattr(self.model, "quadrant_thresholds", {}) or {}),
            **model_choice(meta),
            **expected_custom_fields(self.model),
        }
        self.log = PredictionLog()
        now = _now()
        self._score([_warmup_lead(now)], now)  # warm-up: not logged
        # the model, libraries and caches live as long as the worker: keep them out of the
        # cyclic garbage collector's scans (a full collection otherwise walks ~400k objects,
        # and a 1,000-lead request allocates enough to trigger several)
        gc.collect()
        gc.freeze()
        _current = self
        self._ready = True
        logger.info(
            "ready: model %s v%s (BentoML model %s, MLflow model %s, run %s), prediction log %s",
            self.model_ref["name"],
            self.model_ref["version"],
            self.bento_model.tag,
            labels.get("mlflow_model_id") or "-",
            labels.get("mlflow_run_id") or "-",
            self.log.url,
        )

    def __is_ready__(self) -> bool:
        return self._ready

    @bentoml.on_shutdown
    def close_log(self) -> None:
        """Runs after the server stopped accepting and answered the requests in flight."""
        self._ready = False
        ok = self.log.close(timeout=30.0)
        logger.info(
            "prediction log closed: %d written, %d dropped%s",
            self.log.written,
            self.log.dropped,
            "" if ok else " (NOT everything was written)",
        )

    def _score(self, leads: list[Lead], moment: datetime) -> list[dict[str, Any]]:
        leads_df, accounts_df, events_df, stages_df = leads_to_tables(leads)
        _check_deadline("building its tables")
        answers = score_tables(
            self.model, leads_df, accounts_df, events_df, pd.Timestamp(moment), stages_df
        )
        return answer_records(answers, self.model_ref)

    @bentoml.api(route="/score")
    def score(
        self,
        leads: Annotated[list[Lead], Field(min_length=1, max_length=MAX_LEADS_PER_REQUEST)],
        as_of: datetime | None = None,
    ) -> ScoreResponse:
        """Score 1 to 1,000 leads as of ``as_of`` (default: now, UTC). Unknown categories
        and missing optional fields are scored and listed in each answer's ``flags``."""
        request_id = uuid.uuid4().hex
        try:
            check_event_total(sum(len(lead.events) for lead in leads))
            moment = _now() if as_of is None else _as_of_utc(as_of)
            check_leads(leads, moment)
        except RequestError as e:
            return e.response()  # type: ignore[return-value]
        try:
            _check_deadline("parsing")
            records = self._score(leads, moment)
            _check_deadline("scoring")
        except DeadlineExceeded as e:
            return _deadline_response(e, request_id)  # type: ignore[return-value]
        try:
            # our own answers, serialised as ScoreResponse would be, without validating
            # them again (tests check the two agree on real answers)
            body = score_response_json(request_id, self.model_ref, records)
        except (TypeError, ValueError, KeyError) as e:  # our bug, never the caller's: a 500
            logger.exception("answer failed its own schema (request %s)", request_id)
            raise InternalServerError("answer failed its schema") from e
        response = Response(body, media_type="application/json")
        if past_deadline(DEADLINE_S):  # the last moment to stop: nothing logged yet
            return _deadline_response(  # type: ignore[return-value]
                DeadlineExceeded("answering"), request_id
            )
        self.log.log_answers(
            records,
            request_id=request_id,
            model_name=self.model_ref["name"],
            model_version=self.model_ref["version"],
        )
        metrics.observe_answers(records)
        metrics.observe_prediction_log(self.log)
        return response  # type: ignore[return-value]

    @bentoml.api(route="/outcomes")
    def outcomes(
        self,
        outcomes: Annotated[
            list[Outcome], Field(min_length=1, max_length=MAX_OUTCOMES_PER_REQUEST)
        ],
    ) -> OutcomesResponse:
        """Store what happened to leads (stage reached, accepted/rejected by sales, won/lost)
        durably before answering; used as training labels (`leadscore train --outcomes-db`).
        A retried outcome (same lead_id, stage and at) is stored once."""
        request_id = uuid.uuid4().hex
        try:
            check_outcomes(outcomes, _now())
        except RequestError as e:
            return e.response()  # type: ignore[return-value]
        try:
            _check_deadline("parsing")
        except DeadlineExceeded as e:
            return _deadline_response(e, request_id)  # type: ignore[return-value]
        rows = [{**o.model_dump(), "request_id": request_id} for o in outcomes]
        try:
            stored = self.log.record_outcomes(rows)
        except OutcomeValidationError as e:  # the content, refused by the store: not a retry
            return RequestError(  # type: ignore[return-value]
                "; ".join(e.problems)[:500], "outcomes", status=400
            ).response()
        except StoreUnavailableError:
            logger.warning("outcome store unavailable (request %s)", request_id)
            return RequestError(  # type: ignore[return-value]
                "the outcome store is unavailable; retry later", None, status=503
            ).response()
        return OutcomesResponse(request_id=request_id, stored=stored, duplicates=len(rows) - stored)


LeadScoringService.add_asgi_middleware(AuthGate)
LeadScoringService.add_asgi_middleware(
    BodyLimitMiddleware, max_body_bytes=MAX_BODY_BYTES, max_events=MAX_EVENTS_PER_REQUEST
)
LeadScoringService.add_asgi_middleware(
    ApiMiddleware,
    model_info=_model_info,
    max_leads=MAX_LEADS_PER_REQUEST,
    max_outcomes=MAX_OUTCOMES_PER_REQUEST,
    openapi_patch=openapi_patch,
)

if Path(sys.argv[0]).name == "bentoml" and "serve" in sys.argv[1:3]:
    _refuse_without_tokens()
