"""Batch features and scoring at scale: pandas on one machine versus Spark local.

Run (the data folder is simulated when it holds no tables; without --tracking-uri a model
is trained on 6,000 simulated leads in a temporary MLflow store)::

    .venv/bin/python benchmarks/batch.py --leads 1000000 --data data/bench1m \\
        [--tracking-uri sqlite:///mlruns/mlflow.db] [--engines pandas,spark] \\
        [--results figures.json]

Each engine runs in its own child process; this process samples the child's whole process
tree (workers, the Spark JVM and its Python workers) every 0.25 s for peak memory (sum of
RSS, and of PSS, which counts pages shared after fork once), overall and per step, and CPU
seconds.

Figures: events per second turned into features (all events in the input / wall time of
the feature step), leads per second scored (leads / wall time of the scoring step: features,
model, persona/segment/next content, per lead bucket or chunk, and the answers written to
Parquet as `leadscore score` writes them), with reasons and again without
(`leadscore score --no-reasons`), also per CPU second; peak memory.
Goals on a 2-core machine: >= 2M events/s, >= 30k leads/s with reasons and >= 100k without
(single-machine path), <= 8 GiB (PSS of the process tree).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from scoring.registry import load_registered

ROOT = Path(__file__).resolve().parents[1]
GOALS = {
    "events_per_s": 2_000_000,
    "leads_per_s": 100_000,  # without reasons
    "leads_per_s_reasons": 30_000,
    "peak_gib": 8.0,
}


# --------------------------------------------------------------------------- measuring


class TreeSampler(threading.Thread):
    """Peak memory and CPU seconds of a process and all its descendants."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_rss = self.peak_pss = 0
        self.samples: list[tuple[float, int, int]] = []  # (epoch seconds, sum RSS, sum PSS)
        self.cpu: dict[int, float] = {}
        self._done = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._done.is_set():
            rss = pss = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for p in procs:
                try:
                    info = p.memory_full_info()
                    rss += info.rss
                    pss += getattr(info, "pss", info.rss)
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.samples.append((time.time(), rss, pss))
            self._done.wait(self.every)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class Phases:
    """Wall and CPU seconds (this process and its reaped children) per named step."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, float]] = {}

    def __call__(self, name: str, fn: Any) -> Any:
        t, c, start = time.perf_counter(), _cpu(), time.time()
        out = fn()
        self.steps[name] = {
            "wall": time.perf_counter() - t,
            "cpu": _cpu() - c,
            "start": start,  # epoch seconds: the sampler's peak memory per step
            "end": time.time(),
        }
        print(f"  {name}: {self.steps[name]['wall']:.1f} s wall", file=sys.stderr, flush=True)
        return out


def _model(tracking_uri: str) -> Any:
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    mlflow.set_tracking_uri(tracking_uri)
    return load_registered()


#: the steps that read and score as before `leadscore score` read ids as dictionaries
TEXT_IDS = "before, ids as text: "


# --------------------------------------------------------------------------- engines


def run_pandas(data: Path, tracking_uri: str, workers: int, chunk_size: int) -> dict[str, Any]:
    import pandas as pd
    import pyarrow.parquet as pq

    from crm.contract import data_end, read_tables
    from features.build import compute_features
    from features.content import funnel_profile
    from scoring.batch import _ChunkPlan, input_flags, score_to_parquet

    ph = Phases()
    model = ph("load model", lambda: _model(tracking_uri))
    # before (side by side): ids, topics and content ids read as one string per row
    d = ph(f"{TEXT_IDS}read + validate", lambda: read_tables(data))
    moment = data_end(d) + pd.Timedelta(seconds=1)
    before = Path(tempfile.mkdtemp(prefix="leadscore-pandas-text-ids-")) / "scored.parquet"
    ph(
        f"{TEXT_IDS}score (chunks, process pool) -> Parquet",
        lambda: score_to_parquet(
            before, model, d, moment, chunk_size, workers, columns={"as_of": moment}
        ),
    )
    del d
    # as `leadscore score` reads: the long tables' ids as categoricals (dictionary pages)
    d = ph("read + validate", lambda: read_tables(data, dictionary_ids=True))
    X = ph(
        "features (one process)",
        lambda: compute_features(d.leads, d.accounts, d.events, moment, model.feature_config),
    )
    del X
    # as `leadscore score` does: each chunk's answers appended to one Parquet file
    scored = Path(tempfile.mkdtemp(prefix="leadscore-pandas-scored-")) / "scored.parquet"
    written = ph(
        "score (chunks, process pool) -> Parquet",
        lambda: score_to_parquet(
            scored, model, d, moment, chunk_size, workers, columns={"as_of": moment}
        ),
    )
    assert written == len(d.leads), (written, len(d.leads))
    answer_columns = pq.read_schema(scored).names
    same = pq.read_table(before).equals(pq.read_table(scored))
    assert same, "text ids and dictionary ids gave different answers"
    before.unlink()
    before.parent.rmdir()
    # `leadscore score --no-reasons`: the same run without reasons (nor their contributions)
    written = ph(
        "no reasons: score (chunks, process pool) -> Parquet",
        lambda: score_to_parquet(
            scored, model, d, moment, chunk_size, workers, columns={"as_of": moment}, reasons=False
        ),
    )
    assert written == len(d.leads), (written, len(d.leads))
    scored.unlink()
    scored.parent.rmdir()
    # where a chunk's time goes, one process, one thread
    serving = model.for_serving()
    # the first chunk's tables as a worker gets them (lead ids coded over the chunk's leads)
    plan = _ChunkPlan.build(
        d.leads, d.accounts, d.events, d.stage_history, moment, chunk_size, reasons=True
    )
    part, acc, ev, st = plan.tables(0)
    prof = Phases()
    Xc = prof("features", lambda: compute_features(part, acc, ev, moment, serving.feature_config))
    prof("model.score", lambda: serving.score(Xc))
    prof("model.score, no reasons", lambda: serving.score(Xc, reasons=False))
    prof(
        "funnel_profile",
        lambda: funnel_profile(part, ev, st, moment, serving.personas, serving.content),
    )
    prof("input_flags", lambda: input_flags(part, acc, Xc))
    return {
        "leads": len(d.leads),
        "events": len(d.events),
        "steps": ph.steps,
        "chunk_profile": {"leads": len(part), "events": len(ev), "steps": prof.steps},
        "answer_columns": answer_columns,
    }


def run_spark(data: Path, tracking_uri: str, driver_memory: str) -> dict[str, Any]:
    import pandas as pd

    from features.spark import (
        compute_features_spark,
        data_end_spark,
        read_spark_tables,
        spark_session,
    )
    from serving.spark_batch import score_spark

    ph = Phases()
    model = ph("load model", lambda: _model(tracking_uri))
    spark = ph(
        "start Spark local[*]",
        lambda: spark_session("local[*]", **{"spark.driver.memory": driver_memory}),
    )
    spark.sparkContext.setLogLevel("ERROR")
    tables = read_spark_tables(spark, data)
    n_leads, n_events = ph("count", lambda: (tables.leads.count(), tables.events.count()))
    moment = data_end_spark(tables) + pd.Timedelta(seconds=1)
    features = compute_features_spark(tables, moment, model.feature_config)
    ph("features (validate + compute_features per bucket)", lambda: _noop(features))
    out = Path(tempfile.mkdtemp(prefix="leadscore-spark-scored-"))
    answers = score_spark(model, tables, moment)
    ph(
        "score (score_tables per bucket) -> Parquet",
        lambda: answers.write.mode("overwrite").parquet(str(out / "scored")),
    )
    written = spark.read.parquet(str(out / "scored")).count()
    assert written == n_leads, (written, n_leads)
    spark.stop()
    return {"leads": n_leads, "events": n_events, "steps": ph.steps}


def _noop(df: Any) -> None:
    df.write.format("noop").mode("overwrite").save()


# --------------------------------------------------------------------------- driver


def _child(args: list[str]) -> tuple[dict[str, Any], TreeSampler, float]:
    """Run this script as a child for one engine; its result, sampler and wall seconds."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        result_path = f.name
    cmd = [sys.executable, __file__, *args, "--result", result_path]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    code = proc.wait()
    sampler.stop()
    if code:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {code}")
    return json.loads(Path(result_path).read_text()), sampler, time.perf_counter() - start


def _ensure_data(data: Path, leads: int, seed: int) -> dict[str, float] | None:
    if (data / "events.parquet").exists():
        return None
    print(f"simulating {leads:,} leads into {data}", file=sys.stderr, flush=True)
    code = "from crm.simulate import write_simulation as w; import sys; " + (
        f"w(sys.argv[1], n_leads={leads}, seed={seed})"
    )
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, str(data)], cwd=ROOT)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    if proc.wait():
        raise SystemExit("simulation failed")
    sampler.stop()
    return {"wall": time.perf_counter() - t, "peak_gib": sampler.peak_rss / 2**30}


def _ensure_model(tracking_uri: str | None, work: Path) -> str:
    if tracking_uri:
        return tracking_uri
    store = work / "mlruns"
    store.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    print("training a model on 6,000 simulated leads", file=sys.stderr, flush=True)
    code = (
        "from crm.simulate import write_simulation; from training.train import train; "
        "from training.registry import promote; import sys; "
        "write_simulation(sys.argv[1], n_leads=6000, seed=11); "
        "train(sys.argv[1], target='sal', seed=11); promote()"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    subprocess.run([sys.executable, "-c", code, str(work / "train")], cwd=ROOT, env=env, check=True)
    return uri


def _row(engine: str, r: dict[str, Any], s: TreeSampler, wall: float) -> dict[str, Any]:
    steps = r["steps"]
    feat = next(v for k, v in steps.items() if k.startswith("features"))
    score = next(v for k, v in steps.items() if k.startswith("score"))
    bare = steps.get("no reasons: score (chunks, process pool) -> Parquet")
    text_read = steps.get(f"{TEXT_IDS}read + validate")
    text_score = steps.get(f"{TEXT_IDS}score (chunks, process pool) -> Parquet")
    for v in steps.values():  # peak memory of the process tree while each step ran
        during = [(rss, pss) for t, rss, pss in s.samples if v["start"] <= t <= v["end"]]
        v["peak_rss_gib"] = max((m[0] for m in during), default=0) / 2**30
        v["peak_pss_gib"] = max((m[1] for m in during), default=0) / 2**30
    return {
        "engine": engine,
        "leads": r["leads"],
        "events": r["events"],
        "events_per_s": r["events"] / feat["wall"],
        "leads_per_s": r["leads"] / score["wall"],
        "leads_per_s_no_reasons": r["leads"] / bare["wall"] if bare else float("nan"),
        "leads_per_cpu_s": r["leads"] / score["cpu"],
        "leads_per_cpu_s_no_reasons": r["leads"] / bare["cpu"] if bare else float("nan"),
        "features_s": feat["wall"],
        "score_s": score["wall"],
        "total_s": wall,
        # a `leadscore score` run: read + validate, then the scoring step (features per chunk)
        "run_s": steps.get("read + validate", {"wall": 0.0})["wall"] + score["wall"],
        "run_s_no_reasons": steps.get("read + validate", {"wall": 0.0})["wall"]
        + (bare["wall"] if bare else float("nan")),
        # the same run before, ids read as text
        "leads_per_s_text_ids": r["leads"] / text_score["wall"] if text_score else float("nan"),
        "run_s_text_ids": text_read["wall"] + text_score["wall"] if text_score else float("nan"),
        "cpu_s": sum(s.cpu.values()),
        "peak_rss_gib": s.peak_rss / 2**30,
        "peak_pss_gib": s.peak_pss / 2**30,
        "steps": steps,
        "chunk_profile": r.get("chunk_profile"),
    }


def table(rows: list[dict[str, Any]]) -> str:
    def goal(value: float, target: float, more: bool = True) -> str:
        ok = value >= target if more else value <= target
        return "meets" if ok else f"{value / target:.0%} of goal" if more else "over"

    names = [r["engine"] for r in rows]
    lines = [
        "| | " + " | ".join(names) + " | goal (single machine) |",
        "|---|" + "---:|" * len(rows) + "---|",
    ]

    def line(label: str, fmt: Any, key: str, target: str = "") -> None:
        lines.append(f"| {label} | " + " | ".join(fmt(r[key]) for r in rows) + f" | {target} |")

    line("leads", lambda v: f"{v:,}", "leads")
    line("events", lambda v: f"{v:,}", "events")
    line("features: events/s", lambda v: f"{v / 1e6:.2f} M", "events_per_s", ">= 2 M")
    line("scoring with reasons: leads/s", lambda v: f"{v / 1e3:.1f} k", "leads_per_s", ">= 30 k")
    line(
        "scoring without reasons: leads/s",
        lambda v: f"{v / 1e3:.1f} k",
        "leads_per_s_no_reasons",
        ">= 100 k",
    )
    line(
        "the same, ids read as text (before): leads/s",
        lambda v: f"{v / 1e3:.1f} k",
        "leads_per_s_text_ids",
    )
    line("with reasons: leads / CPU s", lambda v: f"{v / 1e3:.1f} k", "leads_per_cpu_s")
    line("without: leads / CPU s", lambda v: f"{v / 1e3:.1f} k", "leads_per_cpu_s_no_reasons")
    line("feature step, s", lambda v: f"{v:.1f}", "features_s")
    line("scoring step, s", lambda v: f"{v:.1f}", "score_s")
    line("`leadscore score` run (read, validate, score), s", lambda v: f"{v:.1f}", "run_s")
    line("the same, --no-reasons, s", lambda v: f"{v:.1f}", "run_s_no_reasons", "<= 30 (1M)")
    line("the run with ids read as text (before), s", lambda v: f"{v:.1f}", "run_s_text_ids")
    line("benchmark, all steps, s", lambda v: f"{v:.0f}", "total_s")
    line("CPU seconds, process tree", lambda v: f"{v:.0f}", "cpu_s")
    line("peak memory, sum RSS, GiB", lambda v: f"{v:.2f}", "peak_rss_gib")
    line("peak memory, sum PSS, GiB", lambda v: f"{v:.2f}", "peak_pss_gib", "<= 8")
    pandas_row = next((r for r in rows if r["engine"] == "pandas"), None)
    if pandas_row:
        lines.append("")
        lines.append(
            "single-machine goals: features "
            + goal(pandas_row["events_per_s"], GOALS["events_per_s"])
            + ", scoring with reasons "
            + goal(pandas_row["leads_per_s"], GOALS["leads_per_s_reasons"])
            + ", without "
            + goal(pandas_row["leads_per_s_no_reasons"], GOALS["leads_per_s"])
            + ", memory "
            + goal(pandas_row["peak_pss_gib"], GOALS["peak_gib"], more=False)
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--leads", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--data", type=Path, default=ROOT / "data" / "bench1m")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--engines", default="pandas,spark")
    p.add_argument("--workers", type=int, default=0, help="pandas processes (0 = all cores)")
    p.add_argument("--chunk-size", type=int, default=50_000)
    p.add_argument("--driver-memory", default="6g")
    p.add_argument("--results", type=Path, default=None, help="write the figures here (JSON)")
    p.add_argument("--run", choices=["pandas", "spark"], help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.run:  # child: one engine
        if a.run == "pandas":
            r = run_pandas(a.data, a.tracking_uri, a.workers, a.chunk_size)
        else:
            r = run_spark(a.data, a.tracking_uri, a.driver_memory)
        Path(a.result).write_text(json.dumps(r))
        return
    work = Path(tempfile.mkdtemp(prefix="leadscore-bench-"))
    sim = _ensure_data(a.data, a.leads, a.seed)
    uri = _ensure_model(a.tracking_uri, work)
    rows = []
    for engine in a.engines.split(","):
        print(f"engine {engine}", file=sys.stderr, flush=True)
        extra = ["--workers", str(a.workers), "--chunk-size", str(a.chunk_size)]
        extra += ["--driver-memory", a.driver_memory]
        r, sampler, wall = _child(
            ["--run", engine, "--data", str(a.data), "--tracking-uri", uri, *extra]
        )
        rows.append(_row(engine, r, sampler, wall))
    load = os.getloadavg()
    print(table(rows))
    for r in rows:
        print(f"\n{r['engine']} steps (wall s / CPU s / peak PSS GiB, process tree):")
        for k, v in r["steps"].items():
            print(f"  {k}: {v['wall']:.1f} / {v['cpu']:.1f} / {v['peak_pss_gib']:.2f}")
        if r["chunk_profile"]:
            cp = r["chunk_profile"]
            print(f"  one chunk of {cp['leads']:,} leads, {cp['events']:,} events, one thread:")
            for k, v in cp["steps"].items():
                print(
                    f"    {k}: {v['wall']:.2f} s wall, {v['cpu']:.2f} s CPU = "
                    f"{v['cpu'] / cp['leads'] * 1e6:.0f} µs CPU/lead"
                )
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_end": load,
        "simulation": sim,
    }
    print(f"\n{meta}")
    if a.results:
        a.results.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
