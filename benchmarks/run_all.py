"""``make bench``: every benchmark side by side in one run, with its comparator and the
ratio, as one markdown table (stdout and a file).

    .venv/bin/python benchmarks/run_all.py [--leads 1000000] [--seconds 20] \\
        [--work data/bench] [--out data/bench/summary.md]

It prepares its own data and model in ``--work``: simulates ``--leads`` leads (measuring
the simulator's peak memory, the sum of RSS over its process tree, sampled every 0.25 s),
simulates ``--train-leads`` leads and trains and promotes a champion on them in an MLflow
store of its own (``sqlite:///<work>/mlruns/mlflow.db``, ``BENTOML_HOME=<work>/bentoml_home``).
Then it runs each benchmark script through its command line, one at a time:

- ``serve.py``: the service against ``mlflow models serve`` of the same champion;
- ``single_lead.py`` (when present): one lead in process, per stage (given ``--data`` and
  ``--tracking-uri`` if its ``--help`` lists them; its output is shown as printed);
- ``batch.py`` (pandas engine by default) and ``lightgbm_predict.py``: the scoring step
  against LightGBM's own ``predict`` on the same feature rows;
- ``features_speed.py``: ``compute_features`` against plain pandas group-bys.

A script that is not there is reported as "not present"; one that fails as "failed" (its
output's tail is printed), and the run goes on. Extra arguments for a script come from
``--extra NAME=ARGS`` (e.g. ``--extra "serve=--shadow"``). Every process a step starts is
stopped when the step ends: the step's process group, then any descendant seen while it
ran (servers start sessions of their own).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GIB = 2**30


# --------------------------------------------------------------------------- running


@dataclass
class Step:
    """One child process: its output, exit code, wall and CPU seconds, peak tree RSS."""

    name: str
    code: int | None = None
    output: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_gib: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-lines:])


@dataclass
class Tree:
    """Samples a process tree: peak summed RSS, CPU seconds per process, every pid seen."""

    root: int
    every: float = 0.25
    peak: int = 0
    cpu: dict[int, float] = field(default_factory=dict)
    seen: dict[int, float] = field(default_factory=dict)  # pid -> create_time
    _done: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        try:
            root = psutil.Process(self.root)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = 0
        for p in procs:
            try:
                self.seen.setdefault(p.pid, p.create_time())
                rss += p.memory_info().rss
                t = p.cpu_times()
                self.cpu[p.pid] = t.user + t.system + t.children_user + t.children_system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self.peak = max(self.peak, rss)

    def run(self) -> None:
        while not self._done.wait(self.every):
            self.sample()

    def stop_all(self, proc: subprocess.Popen) -> None:
        """Stop every process of the tree still running: SIGINT to the group (scripts stop
        their servers in ``finally``), SIGTERM, then SIGKILL to anything seen and alive."""
        self._done.set()
        for sig, wait in ((signal.SIGINT, 20), (signal.SIGTERM, 10)):
            try:
                os.killpg(self.root, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                proc.poll()  # reap the root, or the group never looks empty
                if not _group_alive(self.root):
                    break
                time.sleep(0.2)
        alive = []
        for pid, created in self.seen.items():
            try:
                p = psutil.Process(pid)
                if p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                continue
        for p in alive:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, left = psutil.wait_procs(alive, timeout=10)
        for p in left:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def run_step(name: str, cmd: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Step:
    """Run ``cmd`` in a session of its own, sampling its tree; stop everything it left."""
    print(f"\n== {name}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    step = Step(name)
    log = cwd / f"{name}.log"
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        tree = Tree(proc.pid)
        tree.sample()
        sampler = threading.Thread(target=tree.run, daemon=True)
        sampler.start()
        try:
            step.code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            step.note = f"timed out after {timeout:.0f} s"
        finally:
            tree.stop_all(proc)
            sampler.join()
            if step.code is None:
                step.code = proc.wait()
    step.wall_s = time.perf_counter() - start
    step.cpu_s = sum(tree.cpu.values())
    step.peak_rss_gib = tree.peak / GIB
    step.output = log.read_text(errors="replace")
    status = "ok" if step.ok else f"FAILED (exit {step.code}) {step.note}"
    print(f"   {status}, {step.wall_s:.0f} s wall; log {log}", file=sys.stderr, flush=True)
    if not step.ok:
        print(step.tail(), file=sys.stderr, flush=True)
    return step


# --------------------------------------------------------------------------- the steps


@dataclass
class Bench:
    """The scratch directory, its MLflow store and the settings every step shares."""

    work: Path
    leads: int
    seconds: float
    train_leads: int
    feature_leads: int
    feature_events: int
    engines: str
    extra: dict[str, list[str]]
    timeout: float

    @property
    def data(self) -> Path:
        return self.work / "data"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.work / 'mlruns' / 'mlflow.db'}"

    def env(self) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)
        return {
            **os.environ,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "BENTOML_HOME": str(self.work / "bentoml_home"),
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }

    def offered(self, script: str, options: dict[str, str]) -> list[str]:
        """Those of ``options`` a script's ``--help`` lists (for scripts of other branches
        whose command line is not known here)."""
        path = HERE / script
        text = _help(path, self.env()) if path.exists() else ""
        return [x for k, v in options.items() if re.search(rf"{k}(?![\w-])", text) for x in (k, v)]

    def run(self, name: str, args: list[str], script: str | None = None) -> Step:
        """A benchmark script by its command line (``script`` under benchmarks/), or a
        module/command; a missing script is a Step with code None and note "not present"."""
        if script is not None:
            path = HERE / script
            if not path.exists():
                print(f"\n== {name}: {script} not present", file=sys.stderr, flush=True)
                return Step(name, note="not present")
            cmd = [sys.executable, str(path), *args]
        else:
            cmd = args
        return run_step(name, cmd + self.extra.get(name, []), self.env(), self.work, self.timeout)


def _help(path: Path, env: dict[str, str]) -> str:
    try:
        done = subprocess.run(
            [sys.executable, str(path), "--help"], env=env, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return ""
    return done.stdout


def prepare(b: Bench) -> tuple[Step, Step]:
    """The simulated export (its peak memory is the simulator benchmark) and a champion."""
    py = sys.executable
    for folder in (b.data, b.work / "train"):
        for f in folder.glob("*.parquet"):
            f.unlink()
    sim = b.run(
        "simulate", [py, "-m", "crm.simulate", str(b.data), "--leads", str(b.leads), "--seed", "5"]
    )
    leadscore = str(Path(py).parent / "leadscore")
    train_data = str(b.work / "train")
    script = (
        f"{shlex.quote(py)} -m crm.simulate {shlex.quote(train_data)} "
        f"--leads {b.train_leads} --seed 7 && "
        f"{shlex.quote(leadscore)} train --data {shlex.quote(train_data)} --seed 7 && "
        f"{shlex.quote(leadscore)} promote --force"
    )
    model = b.run("train", ["/bin/sh", "-c", script])
    return sim, model


def benchmarks(b: Bench) -> dict[str, Step]:
    steps: dict[str, Step] = {}
    data, uri = str(b.data), b.tracking_uri
    steps["serve"] = b.run(
        "serve", ["--data", data, "--seconds", f"{b.seconds:g}"], script="serve.py"
    )
    steps["single_lead"] = b.run(
        "single_lead", b.offered("single_lead.py", {"--data": data, "--tracking-uri": uri}),
        script="single_lead.py",
    )  # fmt: skip
    steps["batch"] = b.run(
        "batch",
        ["--leads", str(b.leads), "--data", data, "--tracking-uri", uri, "--engines", b.engines,
         "--results", str(b.work / "batch.json")],
        script="batch.py",
    )  # fmt: skip
    steps["lightgbm"] = b.run(
        "lightgbm",
        ["--data", data, "--rows", str(min(b.leads, 100_000)), "--tracking-uri", uri,
         "--json", str(b.work / "lightgbm.json")],
        script="lightgbm_predict.py",
    )  # fmt: skip
    steps["features"] = b.run(
        "features",
        ["--leads", str(b.feature_leads), "--events", str(b.feature_events), "--skip-one-lead",
         "--data", data, "--json", str(b.work / "features.json")],
        script="features_speed.py",
    )  # fmt: skip
    return steps


# --------------------------------------------------------------------------- the table

_NUM = r"([\d.,]+)"


def _find(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(1).replace(",", "")) if m else None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _fmt(v: float | None, spec: str, unit: str = "") -> str:
    return "—" if v is None else f"{v:{spec}}{unit}"


def _ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def _met(v: float | None, ok: bool | None) -> str:
    return "—" if v is None or ok is None else ("yes" if ok else "**no**")


def _status(step: Step) -> str | None:
    if step.note == "not present":
        return "not present"
    return None if step.ok else f"failed ({step.note or f'exit {step.code}'})"


Row = tuple[str, str, str, str, str, str]


def serve_rows(step: Step) -> list[Row]:
    bad = _status(step)
    if bad:
        return [("service vs `mlflow models serve`", bad, "", "", "", "")]
    out = step.output
    ls = _find(r"leadscore @16 conn:\s+" + _NUM + " req/s", out)
    errors = _find(r"leadscore @16 conn:.*errors (\d+)", out)
    ml = _find(r"mlflow serve @16 conn:\s+" + _NUM + " req/s", out)
    p99 = _find(r"leadscore @4 conn:.*p99\s+" + _NUM + " ms", out)
    big = _find(r"1,000-lead request: median " + _NUM + " ms", out)
    split = re.search(r"workers' CPU s during the @16 run: \[([^\]]*)\]", out)
    per_worker = f"; workers' CPU s {split.group(1).replace(', ', ' / ')}" if split else ""
    ratio_ok = None if ls is None or ml is None else ls >= 3 * ml and errors == 0
    return [
        ("single lead @16 conn, req/s",
         _fmt(ls, ",.0f") + f" ({_fmt(errors, '.0f')} errors{per_worker})",
         "mlflow serve " + _fmt(ml, ",.0f"), _ratio(ls, ml), ">= 3x, 0 errors",
         _met(ls, ratio_ok)),
        ("p99 @4 conn, ms", _fmt(p99, ".1f"), "", "", "<= 50",
         _met(p99, p99 is not None and p99 <= 50)),
        ("one 1,000-lead request, median ms", _fmt(big, ".0f"), "", "", "<= 250",
         _met(big, big is not None and big <= 250)),
    ]  # fmt: skip


def _whole_run_goal(seconds: float | None, leads: int) -> tuple[str, str]:
    """Issue 16 states the whole run's goal for 1M and for 100k leads only."""
    limit = {1_000_000: 30.0, 100_000: 6.0}.get(leads)
    if limit is None:
        return "", ""
    known = seconds is not None and seconds == seconds  # not missing, not NaN
    return f"<= {limit:.0f}", _met(seconds if known else None, known and seconds <= limit)


def batch_rows(step: Step, lgbm_step: Step, work: Path, leads: int) -> list[Row]:
    rows: list[Row] = []
    res = _json(work / "batch.json") if step.ok else None
    lg = _json(work / "lightgbm.json") if lgbm_step.ok else None
    lg_base = lg["lightgbm_predict"]["leads_per_s"] if lg else None
    lg_contrib = lg["lightgbm_predict_contrib"]["leads_per_s"] if lg else None
    if res is None:
        rows.append(("batch scoring (batch.py)", _status(step) or "no results", "", "", "", ""))
    for r in (res or {}).get("rows", []):
        e, lps, bare = r["engine"], r["leads_per_s"], r.get("leads_per_s_no_reasons")
        run, run_bare = r.get("run_s"), r.get("run_s_no_reasons")
        run_text = r.get("run_s_text_ids")
        rows += [
            (f"batch scoring step with reasons, leads/s ({e}, batch.py)", _fmt(lps, ",.0f"),
             "LightGBM predict + pred_contrib " + _fmt(lg_contrib, ",.0f"),
             _ratio(lps, lg_contrib), ">= 30k", _met(lps, lps >= 30_000)),
            (f"batch scoring step without reasons, leads/s ({e}, batch.py)", _fmt(bare, ",.0f"),
             "LightGBM predict " + _fmt(lg_base, ",.0f"), _ratio(bare, lg_base),
             ">= 100k", _met(bare, bare is not None and bare >= 100_000)),
            (f"`leadscore score` run, s ({e}: read, validate, features, score)", _fmt(run, ".1f"),
             "", "", *_whole_run_goal(run, leads)),
            (f"the same with --no-reasons, s ({e})", _fmt(run_bare, ".1f"),
             "", "", *_whole_run_goal(run_bare, leads)),
            (f"before: ids read as text, scoring step leads/s / run s ({e})",
             f"{_fmt(r.get('leads_per_s_text_ids'), ',.0f')} / {_fmt(run_text, '.1f')}",
             "", "", "", ""),
            (f"features on the export, events/s ({e}, str ids)",
             _fmt(r["events_per_s"] / 1e6, ".2f", "M"), "", "", "", ""),
        ]  # fmt: skip
    if lg:
        for key, label, base in (
            ("leadscore_score_no_reasons", "in process, no reasons", lg_base),
            ("leadscore_score", "in process, with reasons", lg_contrib),
        ):
            if key in lg:
                v = lg[key]["leads_per_s"]
                other = "LightGBM predict" + (" + pred_contrib" if base is lg_contrib else "")
                rows.append((f"model.score on {lg['rows']:,} rows, leads/s ({label})",
                             _fmt(v, ",.0f"), f"{other} {_fmt(base, ',.0f')}", _ratio(v, base),
                             "", ""))  # fmt: skip
    elif lgbm_step.name:
        rows.append(("LightGBM comparator", _status(lgbm_step) or "no results", "", "", "", ""))
    return rows


def feature_rows(step: Step, work: Path) -> list[Row]:
    res = _json(work / "features.json") if step.ok else None
    if res is None:
        return [("features (features_speed.py)", _status(step) or "no results", "", "", "", "")]
    rows: list[Row] = []
    for key, label in (("categorical", "dictionary-encoded ids"), ("str", "str ids")):
        r = res[key]
        ours, theirs = r["events_per_cpu_s"], r["pandas_events_per_cpu_s"]
        goal = (">= 5M", _met(ours, ours >= 5e6)) if key == "categorical" else ("", "")
        rows.append((f"features, events per CPU s ({label}, {r['events']:,} events)",
                     _fmt(ours / 1e6, ".2f", "M"), "pandas group-bys " +
                     _fmt(theirs / 1e6, ".2f", "M"), _ratio(ours, theirs), *goal))  # fmt: skip
    for key, label in (("export_categorical", "categorical"), ("export_str", "str")):
        if key in res:
            r = res[key]
            v = r["events_per_cpu_s"]
            goal = (">= 5M", _met(v, v >= 5e6)) if key == "export_categorical" else ("", "")
            rows.append((f"features on the simulated export, events per CPU s ({label} lead_id "
                         f"and topic, {r['events']:,} events)", _fmt(v / 1e6, ".2f", "M"),
                         "", "", *goal))  # fmt: skip
    return rows


def summary(b: Bench, sim: Step, model: Step, steps: dict[str, Step]) -> str:
    rows: list[Row] = []
    rows += serve_rows(steps["serve"])
    rows += batch_rows(steps["batch"], steps["lightgbm"], b.work, b.leads)
    rows += feature_rows(steps["features"], b.work)
    gib = sim.peak_rss_gib if sim.ok else None
    rows.append(
        (
            f"simulator peak memory at {b.leads:,} leads, GiB (RSS, tree)",
            _status(sim) or f"{gib:.2f} ({sim.wall_s:.0f} s, {sim.cpu_s:.0f} CPU s)",
            "",
            "",
            "<= 4 at 1M",
            _met(gib if b.leads >= 1_000_000 else None, gib is not None and gib <= 4),
        )
    )
    head = ["benchmark", "leadscore", "comparator", "ratio", "goal", "met"]
    lines = [
        f"# make bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{b.leads:,} leads; {os.cpu_count()} cores; load average at the end "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; model: {b.train_leads:,} leads"
        + ("" if model.ok else " (**training failed**)"),
        "",
        "| " + " | ".join(head) + " |",
        "|---|---:|---|---:|---|---|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
    single = steps["single_lead"]
    lines += ["", "single lead in process (single_lead.py): " + (_status(single) or "output:")]
    if single.ok:
        lines += ["", "```", single.tail(30), "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--leads", type=int, default=1_000_000)
    p.add_argument("--seconds", type=float, default=20.0, help="load time per serving run")
    p.add_argument("--work", type=Path, default=ROOT / "data" / "bench")
    p.add_argument("--out", type=Path, default=None, help="default: <work>/summary.md")
    p.add_argument("--train-leads", type=int, default=20_000)
    p.add_argument("--feature-leads", type=int, default=200_000)
    p.add_argument("--feature-events", type=int, default=10_000_000)
    p.add_argument("--engines", default="pandas", help="batch.py engines (pandas,spark)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per step")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=ARGS",
                   help="more arguments for one step (serve, single_lead, batch, lightgbm, "
                        "features, simulate), e.g. --extra 'serve=--seconds 5'")  # fmt: skip
    a = p.parse_args()
    work = a.work.resolve()
    for own in ("mlruns", "bentoml_home"):  # a fresh store: the champion is this run's model
        shutil.rmtree(work / own, ignore_errors=True)
    (work / "mlruns").mkdir(parents=True, exist_ok=True)
    extra = {}
    for item in a.extra:
        name, _, args = item.partition("=")
        extra[name] = shlex.split(args)
    b = Bench(work, a.leads, a.seconds, a.train_leads, a.feature_leads, a.feature_events,
              a.engines, extra, a.timeout)  # fmt: skip
    for f in ("batch.json", "lightgbm.json", "features.json"):
        (work / f).unlink(missing_ok=True)
    sim, model = prepare(b)
    steps = benchmarks(b)
    text = summary(b, sim, model, steps)
    out = a.out or work / "summary.md"
    out.write_text(text)
    print(text)
    print(f"(written to {out}; logs in {work})", file=sys.stderr)


if __name__ == "__main__":
    main()
