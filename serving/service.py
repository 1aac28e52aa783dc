"""The BentoML service the CRM calls. Thin by design: validate, build the canonical
tables, run the shared scoring path, shape the answer, log it.

The model is a BentoML model (imported from the MLflow registry by `leadscore serve` or
`leadscore build`); LEADSCORE_BENTO_MODEL names its tag (default ``lead-scorer:latest``).
Settings (:mod:`serving.settings`) are read once, when BentoML asks this module for
``LeadScoringService`` (:func:`__getattr__`, :func:`build_service`): importing the module
reads nothing and starts nothing.

Routes: ``POST /score``, ``POST /outcomes``, ``GET /model``, ``GET /leads/{lead_id}/history``,
``GET /monitor`` (:mod:`serving.monitor`) (bearer token, see
:mod:`serving.auth`); ``/livez``, ``/readyz`` (model loaded and one warm-up prediction
done), ``/metrics`` and ``/docs.json`` are open. Without tokens the service refuses to
start unless ``LEADSCORE_INSECURE_DEV=1`` (``leadscore serve --insecure-dev``), which is
honoured on a loopback address only and never in a built bento.

With ``LEADSCORE_SHADOW_MODEL`` set, a shadow model scores every request's leads too, in a
process of its own, after the answer is made; its answers go to ``shadow_predictions`` and
never into a response (:mod:`serving.shadow`).

An answer for a lead scored before carries ``changed_because`` (:mod:`serving.history`),
read from the log; if the log cannot say in time, the answer goes out without it.

Every answer is written to the prediction log (:mod:`serving.predlog`, SQLite by default,
PostgreSQL when ``LEADSCORE_DB_URL`` says so) off the request path; on shutdown (SIGTERM)
the server finishes the requests in flight, then the log is flushed. A hard kill (SIGKILL,
out of memory) loses the answers still buffered in the worker (the last ~0.1 s).

Work per request is bounded (:mod:`serving.limits`): body size and event count are checked
before BentoML parses the body, and a request past its deadline stops without being logged.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar

import bentoml
import pandas as pd
from bentoml.exceptions import BentoMLException, InternalServerError
from pydantic import Field
from starlette.responses import Response

from scoring.batch import build_trees, expected_custom_fields
from scoring.registry import load_scoring_model
from serving import metrics
from serving.answers import score_leads
from serving.errors import (
    ApiMiddleware,
    RequestError,
    install_client_error_logging,
    install_log_redaction,
)
from serving.fast_body import score_input
from serving.history import add_changes, history_answer
from serving.limits import (
    MAX_BODY_BYTES,
    MAX_EVENTS_PER_REQUEST,
    BodyLimitMiddleware,
    DeadlineExceeded,
    busy,
    check_event_total,
    elapsed,
    past_deadline,
)
from serving.monitor import ServedMonitor, monitor_openapi
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
    score_response_json,
)
from serving.settings import REQUEST_TIMEOUT_S, InvalidSettings, ServiceSettings, load_settings
from serving.shadow import start_shadow
from serving.startup import (
    AuthGate,
    freeze_heap,
    is_bentoml_serve,
    refuse_without_tokens,
    watch_parent,
)
from serving.timestamps import checked_moment, utc_now

logger = logging.getLogger("bentoml.leadscore")

#: The module attribute BentoML asks for (`bentoml serve serving.service:LeadScoringService`).
SERVICE_ATTRIBUTE = "LeadScoringService"
#: Rows the log's writer builds and writes at a time. It looks whether a large request has
#: begun (``serving.limits.busy``) before each batch only, so a request arriving while a
#: batch is built waits for the rest of it: ~12 ms of interpreter time for 200 rows of
#: 1,000-lead answers, ~60 ms for 1,000 (benchmarks/big_request.py).
LOG_BATCH_ROWS = 200


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


def openapi_patch(spec: dict) -> dict:
    """Document what BentoML's generated spec does not know: bearer auth, the error body and
    statuses, ``GET /model`` and ``GET /leads/{lead_id}/history``."""
    from serving.schemas import ErrorBody, HistoryResponse, ModelInfo

    comps = spec.setdefault("components", {})
    schemas = comps.setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    schemas["ModelInfo"] = ModelInfo.model_json_schema()
    history = HistoryResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(history.pop("$defs", {}))
    schemas["HistoryResponse"] = history
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
    paths["/leads/{lead_id}/history"] = _history_openapi(err, described["401"])
    paths["/monitor"] = monitor_openapi(err, described["401"])
    return spec


def _history_openapi(err: dict, unauthorized: str) -> dict:
    """The OpenAPI path item of ``GET /leads/{lead_id}/history``."""
    return {
        "get": {
            "summary": "A lead's answers over time, oldest first, each with why p_convert "
            "moved since the one before (within LEADSCORE_HISTORY_DAYS)",
            "operationId": "leadscore__lead_history",
            "security": [{"bearer": []}],
            "parameters": [
                {
                    "name": "lead_id",
                    "in": "path",
                    "required": True,
                    "description": "The CRM's lead id, as sent to /score",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                }
            ],
            "responses": {
                "200": {
                    "description": "The lead's history",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/HistoryResponse"}
                        }
                    },
                },
                "401": {"description": unauthorized, **err},
                "404": {"description": "No answer logged for this lead", **err},
                "503": {"description": "Not ready, or the prediction log is unavailable", **err},
            },
        }
    }


def _as_of_utc(v: datetime | None) -> datetime | None:
    """as_of in naive UTC, within the range every timestamp must be in."""
    try:
        return None if v is None else checked_moment(v)
    except ValueError as e:
        raise RequestError(str(e), "as_of") from e


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


class LeadScorer:
    """The service's behaviour: load the model at start-up, answer ``/score`` and
    ``/outcomes``, close the prediction log at shutdown. :func:`build_service` makes the
    BentoML service of it for one :class:`~serving.settings.ServiceSettings` (a subclass
    that carries the settings and the model to serve)."""

    settings: ClassVar[ServiceSettings]
    bento_model: ClassVar[bentoml.models.BentoModel]

    def __init__(self) -> None:
        self._ready = False
        self.shadow = None
        refuse_without_tokens(self.settings, in_worker=True)
        install_log_redaction()
        install_client_error_logging()
        metrics.install_endpoint_labels()
        if bentoml.server_context.worker_index is not None:  # a worker of `bentoml serve`
            # Started here, by the worker's start-up, not at import: BentoML runs each worker
            # in a process group of its own, so without this a worker whose server was
            # SIGKILLed would go on serving the port (serving.startup.watch_parent).
            self._parent_watch = watch_parent()
        self._load_model()
        self.log = PredictionLog(
            self.settings.db_url,
            secret=self.settings.lead_key_secret_bytes,
            secret_file=self.settings.lead_key_secret_file,
            history_days=self.settings.history_days,
            yield_to=busy,  # answers first, the log's rows in the gaps (serving.limits)
            batch_size=LOG_BATCH_ROWS,
        ).start()
        self.monitor = ServedMonitor(
            self.model, self.model_ref, self.log, self.settings.monitor_days
        )
        if bentoml.server_context.worker_index in (None, 1):  # one worker keeps the gauges
            self.monitor.start(self.settings.monitor_interval_s)
        # the shadow challenger, when LEADSCORE_SHADOW_MODEL names one (serving.shadow)
        self.shadow = start_shadow(self.settings, self.log.secret)
        now = utc_now()
        build_trees(self.model)  # compiled now, not at the first large request
        self._score([_warmup_lead(now)], now)  # warm-up: not logged
        freeze_heap()  # the model and libraries out of the collector's scans
        self._ready = True
        labels = self.bento_model.info.labels
        logger.info(
            "ready: model %s v%s (BentoML model %s, MLflow model %s, run %s), prediction log %s",
            self.model_ref["name"],
            self.model_ref["version"],
            self.bento_model.tag,
            labels.get("mlflow_model_id") or "-",
            labels.get("mlflow_run_id") or "-",
            self.log.url,
        )

    def _load_model(self) -> None:
        """The model, the name and version every answer carries, and the ``GET /model``
        card (:attr:`model_info`, this instance's: see :func:`served_model_info`).

        MLflow and scikit-learn (which unpickling the model needs) are imported here, by the
        loader, and not at the module's import: `bentoml serve` imports this module in its
        own process too, which serves nothing."""
        self.model = load_scoring_model(
            lambda: bentoml.mlflow.load_model(self.bento_model), str(self.bento_model.tag)
        ).for_serving()
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

    def __is_ready__(self) -> bool:
        return self._ready

    @bentoml.on_shutdown
    def close_log(self) -> None:
        """Runs after the server stopped accepting and answered the requests in flight."""
        self._ready = False
        self.monitor.stop()
        ok = self.log.close(timeout=30.0)
        logger.info(
            "prediction log closed: %d written, %d dropped%s",
            self.log.written,
            self.log.dropped,
            "" if ok else " (NOT everything was written)",
        )
        if self.shadow is not None:  # after the answers' log: that one matters more
            self.shadow.close()

    def _check_deadline(self, stage: str) -> None:
        if past_deadline(self.settings.deadline_s):
            raise DeadlineExceeded(stage)

    def _deadline_response(self, exc: DeadlineExceeded, request_id: str) -> Response:
        """503 for a request past its deadline: its work stopped, nothing of it was logged."""
        deadline_s = self.settings.deadline_s
        logger.warning(
            "request %s passed its %g s deadline while %s (%.1f s): stopped, not logged",
            request_id,
            deadline_s,
            exc,
            elapsed(),
        )
        return RequestError(
            f"the request took longer than the {deadline_s:g} s deadline and was stopped; "
            "nothing was scored or stored: retry with fewer leads or events",
            None,
            status=503,
        ).response()

    def _score(self, leads: list[Lead], moment: datetime) -> list[dict[str, Any]]:
        """Answer records with contributions (for the log; the answer body leaves them out):
        the per-request path (no DataFrames, ``scoring.single``) for every request size
        (benchmarks/single_lead.py: cheaper at 1 and at 1,000 leads), the table path for
        models it does not cover (``serving.answers.score_leads``)."""
        return score_leads(self.model, leads, moment, self.model_ref, self._check_deadline)

    def _add_changes(self, records: list[dict[str, Any]], request_id: str) -> None:
        """``changed_because`` on the answers of leads scored before; never fails the
        request: a log that cannot answer leaves the answers without it."""
        try:
            p_now = {rec["lead_id"]: rec.get("p_convert") for rec in records}
            previous = self.log.previous_scores(p_now, p_now=p_now)
        except StoreUnavailableError as e:
            logger.warning("no changed_because for request %s: %s", request_id, e)
            metrics.observe_history_lookup_failure()
            return
        add_changes(records, previous)

    def lead_history(self, lead_id: str) -> tuple[int, dict[str, Any]]:
        """Status and body of ``GET /leads/{lead_id}/history``."""
        try:
            rows = self.log.history(lead_id)
        except StoreUnavailableError as e:
            logger.warning("history unavailable: %s", e)
            return 503, {"error": "the prediction log is unavailable; retry later", "field": None}
        if not rows:
            days = self.settings.history_days
            within = f" in the last {days} days" if days else ""
            return 404, {"error": f"no answers logged for this lead{within}", "field": "lead_id"}
        return 200, history_answer(lead_id, rows)

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
            moment = utc_now() if as_of is None else _as_of_utc(as_of)
            check_leads(leads, moment)
        except RequestError as e:
            return e.response()  # type: ignore[return-value]
        try:
            self._check_deadline("parsing")
            records = self._score(leads, moment)
            self._check_deadline("scoring")
            self._add_changes(records, request_id)
        except DeadlineExceeded as e:
            return self._deadline_response(e, request_id)  # type: ignore[return-value]
        try:
            # our own answers, serialised as ScoreResponse would be, without validating
            # them again (tests check the two agree on real answers)
            body = score_response_json(request_id, self.model_ref, records)
        except (TypeError, ValueError, KeyError) as e:  # our bug, never the caller's: a 500
            logger.exception("answer failed its own schema (request %s)", request_id)
            raise InternalServerError("answer failed its schema") from e
        response = Response(body, media_type="application/json")
        if past_deadline(self.settings.deadline_s):  # the last moment to stop: nothing logged yet
            return self._deadline_response(  # type: ignore[return-value]
                DeadlineExceeded("answering"), request_id
            )
        self.log.log_answers(
            records,
            request_id=request_id,
            model_name=self.model_ref["name"],
            model_version=self.model_ref["version"],
            as_of=moment,
        )
        metrics.observe_answers(records)
        metrics.observe_prediction_log(self.log)
        if self.shadow is not None:  # after the answer is made: it cannot change it
            self.shadow.submit(request_id, moment, leads)
        return response  # type: ignore[return-value]

    # the input spec BentoML infers from the signature, with a fast decoder in front of
    # pydantic (serving.fast_body: same answers and errors, several times faster)
    score = bentoml.api(route="/score", input_spec=score_input(score))(score)

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
            check_outcomes(outcomes, utc_now())
        except RequestError as e:
            return e.response()  # type: ignore[return-value]
        try:
            self._check_deadline("parsing")
        except DeadlineExceeded as e:
            return self._deadline_response(e, request_id)  # type: ignore[return-value]
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


def _served(name: str) -> Any:
    """Attribute ``name`` of the service instance this worker runs, or None before it is
    instantiated (or when its start-up failed): the routes outside BentoML's API
    (``GET /model``, history, monitor) answer from it."""
    try:
        instance = bentoml.get_current_service()
    except BentoMLException:
        return None
    return getattr(instance, name, None)


def served_model_info() -> dict[str, Any] | None:
    """The ``GET /model`` answer: the card of the service instance this worker runs
    (None before it is instantiated)."""
    return _served("model_info")


async def served_history(lead_id: str) -> tuple[int, dict[str, Any]]:
    """``GET /leads/{lead_id}/history`` from the service instance this worker runs (its
    database read in a thread, off the event loop)."""
    from starlette.concurrency import run_in_threadpool

    history = _served("lead_history")
    if history is None:
        return 503, {"error": "not ready", "field": None}
    return await run_in_threadpool(history, lead_id)


async def served_monitor(query: str) -> tuple[int, str, bytes]:
    """``GET /monitor`` from the service instance this worker runs (read and computed in a
    thread, off the event loop)."""
    from starlette.concurrency import run_in_threadpool

    monitor = _served("monitor")
    if monitor is None:
        return 503, "application/json", b'{"error": "not ready", "field": null}'
    return await run_in_threadpool(monitor.answer, query)


def build_service(settings: ServiceSettings) -> bentoml.Service:
    """The BentoML service for these settings: the model to serve, workers, concurrency,
    the deadline, and the middlewares in front of the API (tokens, request limits, error
    bodies and ``GET /model``). Builds; starts nothing."""
    inner = type(
        SERVICE_ATTRIBUTE,
        (LeadScorer,),
        {
            "__module__": __name__,
            "__qualname__": SERVICE_ATTRIBUTE,
            "settings": settings,
            "bento_model": bentoml.models.BentoModel(settings.bento_model),
        },
    )
    service = bentoml.service(
        name="leadscore",
        workers=settings.workers,
        traffic={"timeout": REQUEST_TIMEOUT_S, "max_concurrency": settings.max_concurrency},
    )(inner)
    service.add_asgi_middleware(AuthGate, settings=settings)
    service.add_asgi_middleware(
        BodyLimitMiddleware, max_body_bytes=MAX_BODY_BYTES, max_events=MAX_EVENTS_PER_REQUEST
    )
    service.add_asgi_middleware(
        ApiMiddleware,
        model_info=served_model_info,
        max_leads=MAX_LEADS_PER_REQUEST,
        max_outcomes=MAX_OUTCOMES_PER_REQUEST,
        openapi_patch=openapi_patch,
        history=served_history,
        monitor=served_monitor,
    )
    return service


def start_service(argv: list[str] | None = None, **overrides: Any) -> bentoml.Service:
    """The service, at start-up: the settings from the environment, read here, once
    (``overrides`` win, e.g. a built bento's model pin), and in the `bentoml serve` process
    itself the token check, which exits with a clear message before any worker starts (its
    workers check again, :class:`LeadScorer`)."""
    argv = sys.argv if argv is None else argv
    try:
        settings = load_settings(**overrides)
        if is_bentoml_serve(argv):
            refuse_without_tokens(settings, argv=argv)
    except InvalidSettings as e:
        if is_bentoml_serve(argv):
            raise SystemExit(f"refusing to start: {e}") from None
        raise
    return build_service(settings)


def service_attribute(namespace: dict[str, Any], name: str, start: Callable[[], Any]) -> Any:
    """A module's ``__getattr__`` for :data:`SERVICE_ATTRIBUTE`: ``start()`` builds the
    service on first use and the module keeps it, once per process (BentoML also looks it
    up by identity among the module's globals)."""
    if name != SERVICE_ATTRIBUTE:
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
    try:
        service = start()
    except AttributeError as e:  # not "no such attribute": a failure while building it
        raise RuntimeError(f"building {SERVICE_ATTRIBUTE} failed: {e}") from e
    namespace[name] = service
    return service


def __getattr__(name: str) -> Any:
    """``serving.service.LeadScoringService``, built on first use (PEP 562): BentoML's
    `bentoml serve serving.service:LeadScoringService` imports this module and then asks
    for the attribute, which is the start-up; a plain import reads nothing."""
    return service_attribute(globals(), name, start_service)
