"""The shadow challenger: a second model scored beside the served one, logged, never
returned.

When ``LEADSCORE_SHADOW_MODEL`` names a BentoML model (``leadscore serve`` sets it when the
registry has a ``shadow`` alias), every worker of the service starts one shadow process
(:class:`ShadowScorer`). After a ``/score`` answer is built and logged, the worker hands
the request's leads to that process through a bounded queue, without waiting (as
MessagePack bytes, :func:`pack_leads`); the process scores them with the shadow model
through the same path as the champion (``scoring.single.score_request``, else
:func:`serving.answers.score_leads`), the requests waiting in the queue together (up to
:data:`BATCH_LEADS` leads, those that arrive within :data:`BATCH_WAIT_S` of the first
included, each at its own request's moment: the records each gets alone,
for a fraction of the CPU), and writes the answers to ``shadow_predictions``
(:class:`serving.predlog.PredictionLog` with ``shadow=True``: the same whitelist, the lead
key and never the raw id, the champion's ``request_id``).

Isolation, so that the shadow's failure or slowness cannot hurt the answer:

* the answer is built, and its body serialised, before the shadow sees the request, and
  nothing the shadow does reaches it;
* the shadow runs in a process of its own, scheduled ``SCHED_IDLE`` (Linux; else nice 19):
  it gets the CPU the service leaves idle, so on a busy machine it falls behind instead of
  slowing the answers down;
* it uses at most :data:`CPU_SHARE` of one core (``LEADSCORE_SHADOW_CPU_SHARE``,
  :class:`CpuBudget`): idle-only scheduling does not keep it from slowing the answers down
  on a VM whose two vCPUs share a physical core or a CPU quota; it scores several queued
  requests in one call, so the share goes a long way (about 1-2 ms of CPU a lead);
* the queue holds :data:`QUEUE_SIZE` requests; when it is full (the shadow is behind) or
  the process is gone, the request is not shadowed and counted
  (``leadscore_shadow_dropped_total``);
* an exception while scoring (or a shadow model that cannot be loaded) is caught in the
  shadow process, counted (``leadscore_shadow_failures_total``) and logged at most once per
  :data:`FAILURE_LOG_EVERY_S` with the count since the last line.

On shutdown, once the answers' own log is flushed, the worker asks the process to finish
what is queued and flush its log (at most :data:`CLOSE_TIMEOUT_S`), then kills it (what is
still queued then is not shadowed); a process whose worker died stops by itself within a
second (it watches its parent).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
from datetime import datetime
from typing import Any

logger = logging.getLogger("bentoml.leadscore.shadow")

QUEUE_SIZE = 64
BATCH_LEADS = 256  # the shadow scores what is queued together, up to this many leads
BATCH_WAIT_S = 0.1  # ... and what comes within this long after the first of them
CPU_SHARE = 0.2  # the most of one core a shadow process uses (LEADSCORE_SHADOW_CPU_SHARE)
FAILURE_LOG_EVERY_S = 60.0
CLOSE_TIMEOUT_S = 5.0
_POLL_S = 1.0  # how often an idle shadow process checks that its worker is alive


class ShadowScorer:
    """The worker's side: the shadow process and the queue to it (module docstring)."""

    def __init__(
        self,
        model_tag: str,
        log_options: dict[str, Any],
        queue_size: int = QUEUE_SIZE,
        cpu_share: float = CPU_SHARE,
    ):
        ctx = mp.get_context("spawn")  # never fork a worker that runs threads
        self.model_tag = model_tag
        self._queue: Any = ctx.Queue(maxsize=queue_size)
        self._process = ctx.Process(
            target=run_shadow,
            args=(model_tag, log_options, self._queue, cpu_share),
            name="leadscore-shadow",
            daemon=True,
        )
        self.submitted = 0
        self.dropped = 0

    def start(self) -> ShadowScorer:
        self._process.start()
        return self

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def submit(self, request_id: str, moment: datetime, leads: list[Any]) -> bool:
        """Queue a request's leads for the shadow (its process scores them); never
        blocks. False (and counted) when the queue is full or the shadow process is gone.
        Leads the fast decoder made travel as MessagePack bytes (:func:`pack_leads`): the
        queue's feeder thread then only copies bytes, it does not pickle objects under
        this worker's GIL."""
        from serving import metrics

        if self._process.is_alive():
            try:
                self._queue.put_nowait((request_id, moment, pack_leads(leads), len(leads)))
            except queue.Full:
                pass
            else:
                self.submitted += 1
                return True
        self.dropped += 1
        metrics.shadow_instruments().dropped.inc()
        return False

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Let the process finish what is queued and flush its log, then stop it."""
        deadline = time.monotonic() + timeout
        if self._process.is_alive():
            try:
                self._queue.put(None, timeout=max(0.1, timeout / 2))
            except queue.Full:
                pass
            self._process.join(max(0.1, deadline - time.monotonic()))
        if self._process.is_alive():
            logger.warning(
                "shadow process did not finish its queue in %.0f s: killed (its queued "
                "requests are not shadowed)",
                timeout,
            )
            self._process.kill()  # it ignores SIGTERM: the worker decides when it stops
            self._process.join(2.0)
        self._queue.cancel_join_thread()  # what is still queued is not waited for
        self._queue.close()
        # drop the last references, so the queue's semaphores are released now and not
        # reported as leaked when the worker exits
        self._process = _Stopped()
        self._queue = None


def pack_leads(leads: list[Any]) -> bytes | list[Any]:
    """The leads as they go to the shadow process: MessagePack bytes when they are the fast
    decoder's structs (``serving.fast_body.Lead``; :func:`unpack_leads` gives them back
    equal), else the objects themselves (the pydantic path's, pickled by the queue)."""
    import msgspec

    from serving.fast_body import Lead

    if leads and all(type(lead) is Lead for lead in leads):
        return msgspec.msgpack.encode(leads)
    return leads


def unpack_leads(packed: bytes | list[Any]) -> list[Any]:
    """:func:`pack_leads`'s leads back."""
    if not isinstance(packed, bytes):
        return packed
    import msgspec

    from serving.fast_body import Lead

    return msgspec.msgpack.decode(packed, type=list[Lead])


class _Stopped:
    """What a closed scorer's process is: not alive, nothing to join."""

    def is_alive(self) -> bool:
        return False


def start_shadow(settings: Any, secret: bytes) -> ShadowScorer | None:
    """The shadow of this worker for ``LEADSCORE_SHADOW_MODEL`` (None when unset), writing
    to the worker's database with its lead-key secret (``secret``, as its log resolved it)."""
    model_tag = settings.shadow_model
    if not model_tag:
        return None
    options = {"db_url": settings.db_url, "secret": secret, "history_days": settings.history_days}
    scorer = ShadowScorer(
        model_tag, options, settings.shadow_queue_size, settings.shadow_cpu_share
    ).start()
    logger.info("shadow model %s: scored beside the served one, never returned", model_tag)
    return scorer


# ------------------------------------------------------------------ the shadow process


def _lower_priority() -> str:
    """Run only on CPU the service leaves idle: SCHED_IDLE, else nice 19; for every thread
    of the process (the policy is per thread on Linux, and the libraries loaded with the
    model may have started thread pools), and the threads started later inherit it."""
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    try:
        for tid in tids:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined]
        return "SCHED_IDLE"
    except (AttributeError, OSError):
        for tid in tids:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, 19)
            except OSError:
                pass
        return "nice 19"


def _load(model_tag: str) -> tuple[Any, dict[str, str]]:
    import bentoml

    from scoring.registry import load_scoring_model

    bento_model = bentoml.models.get(model_tag)
    model = load_scoring_model(lambda: bentoml.mlflow.load_model(bento_model), model_tag)
    labels = bento_model.info.labels
    ref = {
        "name": labels.get("mlflow_model", str(bento_model.tag.name)),
        "version": labels.get("mlflow_version", str(bento_model.tag.version)),
    }
    return model.for_serving(), ref


class _Failures:
    """Counts failures; says so at most once per :data:`FAILURE_LOG_EVERY_S`."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter
        self.unsaid = 0
        self.said_at = -FAILURE_LOG_EVERY_S

    def failed(self, what: str) -> None:
        self.counter.inc()
        self.unsaid += 1
        now = time.monotonic()
        if now - self.said_at >= FAILURE_LOG_EVERY_S:
            logger.warning(
                "shadow model failed on %d request(s) since the last report (answers "
                "unaffected): %s",
                self.unsaid,
                what,
            )
            self.said_at, self.unsaid = now, 0


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300] if text else ''}"


class CpuBudget:
    """Keeps a process within ``share`` of one CPU core: :meth:`pause`, called after each
    piece of work, sleeps until the CPU the process used since the last call (every
    thread) is at most ``share`` of the time passed. Time spent idle before the work
    counts, so a process that waited for work owes nothing for a short burst."""

    def __init__(self, share: float) -> None:
        self.share = share
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def pause(self) -> float:
        """Sleep as long as the share asks; the seconds slept."""
        wait = 0.0
        if self.share < 1.0:
            used = time.process_time() - self._cpu
            wait = used / self.share - (time.monotonic() - self._wall)
            if wait > 0:
                time.sleep(wait)
        self._cpu, self._wall = time.process_time(), time.monotonic()
        return max(wait, 0.0)


def run_shadow(
    model_tag: str, log_options: dict[str, Any], jobs: Any, cpu_share: float = CPU_SHARE
) -> None:
    """The shadow process: load the model, then score and log the queued requests (several
    at a time, :func:`_more`) until ``None`` arrives or the worker is gone, within
    ``cpu_share`` of a core (:class:`CpuBudget`)."""
    from serving import metrics
    from serving.predlog import PredictionLog

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker stops it (close)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    counters = metrics.shadow_instruments()
    failures = _Failures(counters.failures)
    model, ref, load_error = None, {}, ""
    try:  # at normal priority, once: an idle-only load could wait for minutes under load
        model, ref = _load(model_tag)
    except Exception as e:  # noqa: BLE001 - any failure of the shadow is counted, not raised
        load_error = f"could not load {model_tag}: {_describe(e)}"
        logger.error("shadow model %s", load_error)
    policy = _lower_priority()
    if model is not None:
        logger.info("shadow model %s v%s loaded (%s)", ref["name"], ref["version"], policy)
    log = PredictionLog(
        log_options["db_url"],
        secret=log_options["secret"],
        history_days=log_options.get("history_days", 0),
        shadow=True,
    ).start()
    parent = mp.parent_process()
    budget = CpuBudget(cpu_share)
    try:
        while True:
            try:
                job = jobs.get(timeout=_POLL_S)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    break
                continue
            if job is None:
                break
            batch, stop = _more([job], jobs)
            if model is None:
                for _ in batch:
                    failures.failed(load_error)
            else:
                n = _score_and_log(model, ref, log, batch, failures)
                if n:
                    counters.scored.inc(n)
            if stop:
                break
            budget.pause()
    finally:
        log.close(timeout=5.0)


def _more(batch: list[Any], jobs: Any, wait_s: float = BATCH_WAIT_S) -> tuple[list[Any], bool]:
    """``batch`` with the jobs queued behind it within ``wait_s``, up to
    :data:`BATCH_LEADS` leads; and whether the stop mark (None) came among them. The
    shadow is never waited for, so it waits for company: a call of the scoring path costs
    about as much for one lead as for a dozen."""
    leads = sum(job[3] for job in batch)
    deadline = time.monotonic() + wait_s
    while leads < BATCH_LEADS:
        try:
            job = jobs.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if job is None:
            return batch, True
        batch.append(job)
        leads += job[3]
    return batch, False


def _score_and_log(
    model: Any, ref: dict[str, str], log: Any, batch: list[Any], failures: _Failures
) -> int:
    """Score queued requests with the shadow model and log each one's answers under its
    own ``request_id`` and ``as_of``; the number of leads logged. Several requests are
    scored in one call of the per-request path, each lead at its request's moment (the
    records each request gets alone, ``scoring.single.score_request``): the fixed costs
    of a call are paid once, so on a busy machine the shadow needs less of the idle CPU
    (``serving.answers.score_leads`` with one moment per lead; a model without the
    per-request path goes through the table path, grouped by moment). A batch that fails
    is scored request by request, so one bad request fails (and is counted) alone."""
    from serving.answers import score_leads

    jobs = []
    for request_id, moment, packed, _ in batch:
        try:
            jobs.append((request_id, moment, unpack_leads(packed)))
        except Exception as e:  # noqa: BLE001 - the shadow's failure is counted, never raised
            failures.failed(_describe(e))
    answers: list[list[dict[str, Any]]] | None = None
    if len(jobs) > 1:
        leads = [lead for _, _, ls in jobs for lead in ls]
        moments = [moment for _, moment, ls in jobs for _ in ls]
        try:
            records = score_leads(model, leads, moments, ref)
        except Exception:  # noqa: BLE001 - scored again request by request below
            pass
        else:
            answers, start = [], 0
            for _, _, ls in jobs:
                answers.append(records[start : start + len(ls)])
                start += len(ls)
    logged = 0
    for i, (request_id, moment, leads) in enumerate(jobs):
        try:
            records = answers[i] if answers is not None else score_leads(model, leads, moment, ref)
            log.log_answers(
                records,
                request_id=request_id,
                model_name=ref["name"],
                model_version=ref["version"],
                as_of=moment,
            )
        except Exception as e:  # noqa: BLE001 - the shadow's failure is counted, never raised
            failures.failed(_describe(e))
            continue
        logged += len(records)
    return logged


__all__ = [
    "BATCH_LEADS",
    "BATCH_WAIT_S",
    "CPU_SHARE",
    "CpuBudget",
    "CLOSE_TIMEOUT_S",
    "FAILURE_LOG_EVERY_S",
    "QUEUE_SIZE",
    "ShadowScorer",
    "pack_leads",
    "start_shadow",
    "unpack_leads",
]
