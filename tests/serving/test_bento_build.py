"""`leadscore build` for real, the way a user runs it: the champion goes from the MLflow
registry into a BentoML store and a bento is built; that bento then serves with no MLflow
reachable, and serves the model it was built with.

The build reads a private copy of the session's MLflow store (SQLite and artifacts, its rows
rewritten to point at the copy), so the session store is never touched. After the builds the
copy is deleted, and the bento is served by `bentoml serve <bento tag>` from an empty
directory with MLFLOW_TRACKING_URI pointing at a port nobody listens on: nothing it could
read MLflow from is left. A second bento, built afterwards for another registry version,
makes that version the latest `lead-scorer` model in the BentoML store, so the champion's
bento proves it is pinned to its own model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from serving_helpers import AUTH, LEAD_KEY_SECRET, crm_sample, request_leads

from scoring.registry import scoring_model
from serving.process import bentoml_bin, free_port, stop_server, wait_ready
from training.tracking import MODEL_NAME

pytestmark = pytest.mark.slow
TOKEN = AUTH["Authorization"].removeprefix("Bearer ")
UNREACHABLE_MLFLOW = "http://127.0.0.1:9"  # the discard port: connection refused
QUADRANTS = {"qualified", "qualified_low_interest", "low_fit_interested", "drop"}


@dataclass
class Built:
    root: Path
    home: Path  # BENTOML_HOME used by the builds and by the server
    bento: str  # the champion's bento tag
    model: str  # the BentoML model tag inside it
    champion: dict[str, str]  # {"name", "version"} of the registered champion
    other_bento: str
    other_version: str
    build_seconds: float


def private_store_copy(src: Path, dst: Path) -> str:
    """Copy an MLflow SQLite store with its artifacts and point every row at the copy; the
    tracking URI of the copy."""
    shutil.copytree(src, dst)
    old, new = str(src.resolve()), str(dst.resolve())
    assert old not in new
    con = sqlite3.connect(dst / "mlflow.db")
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for col in [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')]:
                con.execute(
                    f'UPDATE "{table}" SET "{col}" = replace("{col}", ?, ?) '
                    f'WHERE typeof("{col}") = \'text\' AND instr("{col}", ?) > 0',
                    (old, new, old),
                )
        con.commit()
        left = [
            (table, col)
            for table in tables
            for col in [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')]
            if con.execute(
                f'SELECT count(*) FROM "{table}" WHERE instr(CAST("{col}" AS TEXT), ?) > 0',
                (old,),
            ).fetchone()[0]
        ]
    finally:
        con.close()
    assert not left, f"rows still pointing at the session store: {left}"
    return f"sqlite:///{dst / 'mlflow.db'}"


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    leadscore = Path(sys.executable).parent / "leadscore"
    res = subprocess.run(
        [str(leadscore), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, f"leadscore {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res


def built_tags(stdout: str) -> tuple[str, str]:
    """(bento tag, model tag) from `leadscore build`'s output."""
    m = re.search(r"built (\S+) with model (\S+)", stdout)
    assert m, stdout
    return m.group(1), m.group(2)


@pytest.fixture(scope="module")
def built(trained, tmp_path_factory: pytest.TempPathFactory) -> Built:
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("bento-build")
    uri = private_store_copy(trained.store, root / "mlruns")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champ = client.get_model_version_by_alias(MODEL_NAME, "champion")
    # another registry version (same files): the bento built for it comes second
    other = client.create_model_version(MODEL_NAME, champ.source, run_id=champ.run_id)

    home = root / "bentoml"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "BENTOML_HOME": str(home)}
    env.pop("LEADSCORE_BENTO_MODEL", None)
    t0 = time.monotonic()
    bento, model = built_tags(run_cli(["build"], env, root).stdout)
    build_seconds = time.monotonic() - t0
    other_bento, _ = built_tags(run_cli(["build", "--alias", str(other.version)], env, root).stdout)
    return Built(
        root,
        home,
        bento,
        model,
        {"name": MODEL_NAME, "version": str(champ.version)},
        other_bento,
        str(other.version),
        build_seconds,
    )


def test_build_puts_a_small_bento_in_the_store(built: Built):
    env = {**os.environ, "BENTOML_HOME": str(built.home)}
    listed = subprocess.run(
        [bentoml_bin(), "list", "-o", "json"], env=env, capture_output=True, text=True, check=True
    )
    tags = {b["tag"] for b in json.loads(listed.stdout)}
    assert {built.bento, built.other_bento} <= tags

    name, version = built.bento.split(":")
    path = built.home / "bentos" / name / version
    info = yaml.safe_load((path / "bento.yaml").read_text())
    assert info["service"] == "serving.bento_entry:LeadScoringService"
    assert info["args"] == {"model": built.model}  # the pin the entry module reads
    assert [m["tag"] for m in info["services"][0]["models"]] == [built.model]
    model_info = yaml.safe_load(
        (
            built.home / "models" / "lead-scorer" / built.model.split(":")[1] / "model.yaml"
        ).read_text()
    )
    assert model_info["labels"]["mlflow_model"] == built.champion["name"]
    assert model_info["labels"]["mlflow_version"] == built.champion["version"]

    files = [p.relative_to(path / "src").as_posix() for p in (path / "src").rglob("*")]
    files = [f for f in files if (path / "src" / f).is_file()]
    for needed in ("serving/service.py", "serving/bento_entry.py", "scoring/model.py",
                   "features/build.py", "features/personas.yaml", "pyproject.toml"):  # fmt: skip
        assert needed in files
    assert not [f for f in files if f.endswith((".db", ".parquet"))], files
    assert sum((path / "src" / f).stat().st_size for f in files) < 5_000_000
    # built after the champion's bento: the latest `lead-scorer` in the store is not the champion
    latest = (built.home / "models" / "lead-scorer" / "latest").read_text().strip()
    assert f"lead-scorer:{latest}" != built.model
    assert built.build_seconds < 180, f"leadscore build took {built.build_seconds:.0f} s"


def test_built_bento_refuses_insecure_dev_mode_even_on_loopback(built: Built):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADSCORE_API_TOKENS",))}
    env.update({"BENTOML_HOME": str(built.home), "LEADSCORE_INSECURE_DEV": "1"})
    env.pop("LEADSCORE_BENTO_MODEL", None)
    res = subprocess.run(
        [bentoml_bin(), "serve", built.bento, "--host", "127.0.0.1", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert res.returncode != 0
    assert "refused in a built bento" in res.stderr, res.stderr[-3000:]


@pytest.fixture(scope="module")
def bento_server(built: Built) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """`bentoml serve <champion bento>` with MLflow out of reach: the store copy is gone,
    the tracking URI refuses connections, the working directory is empty."""
    shutil.rmtree(built.root / "mlruns")
    cwd = built.root / "elsewhere"
    cwd.mkdir()
    env = {
        **os.environ,
        "BENTOML_HOME": str(built.home),
        "MLFLOW_TRACKING_URI": UNREACHABLE_MLFLOW,
        "MLFLOW_REGISTRY_URI": UNREACHABLE_MLFLOW,
        "LEADSCORE_API_TOKENS": TOKEN,
        "LEADSCORE_DB_URL": f"sqlite:///{built.root / 'predictions.db'}",
        "LEADSCORE_LEAD_KEY_SECRET": LEAD_KEY_SECRET,
    }
    env.pop("LEADSCORE_BENTO_MODEL", None)
    port = free_port()
    log = built.root / "bento-serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [bentoml_bin(), "serve", built.bento, "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=cwd,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            wait_ready(port, proc, timeout=180)
        except RuntimeError as exc:
            raise AssertionError(f"{exc}\n{log.read_text()[-4000:]}") from None
        yield f"http://127.0.0.1:{port}", proc, log
    finally:
        stop_server(proc)


def test_built_bento_scores_without_mlflow(bento_server, built: Built, trained):
    import bentoml

    from scoring.batch import score_batch
    from serving.model_store import import_registered

    url, _, _ = bento_server
    d, picks, moment = crm_sample(trained.data_dir, n=12, seed=5)
    body = {"leads": request_leads(d, picks, moment), "as_of": moment.isoformat()}
    assert httpx.post(f"{url}/score", json=body, timeout=60).status_code == 401
    r = httpx.post(f"{url}/score", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["model"] == built.champion
    assert answer["request_id"]
    scores = answer["scores"]
    assert [s["lead_id"] for s in scores] == picks["lead_id"].tolist()
    for s in scores:
        assert s["model"] == built.champion
        assert 0.0 <= s["p_sal"] <= 1.0 and 0.0 <= s["p_mql"] <= 1.0
        assert s["p_convert"] == s["p_sal"]
        assert 0.0 <= s["fit_score"] <= 100.0 and 0.0 <= s["interest_score"] <= 100.0
        assert s["quadrant"] in QUADRANTS
        assert s["segment"] == f"{s['persona']}/{s['lifecycle_stage']}"
        assert s["reasons"], s["lead_id"]
        for reason in s["reasons"]:
            assert reason["feature"] and reason["text"]
            assert isinstance(reason["contribution"], float)

    # the same numbers as the registered champion scored in this process
    model = import_registered(MODEL_NAME, "champion", trained.tracking_uri)
    scorer = scoring_model(bentoml.mlflow.load_model(model))
    batch = score_batch(
        scorer, picks, d.accounts, d.events, moment, chunk_size=50, stage_history=d.stage_history
    ).loc[[s["lead_id"] for s in scores]]
    http = pd.DataFrame(scores)
    for col in ("p_sal", "p_mql", "fit_score", "interest_score"):
        np.testing.assert_allclose(http[col], batch[col], rtol=0, atol=1e-12, err_msg=col)
    assert http["quadrant"].tolist() == batch["quadrant"].tolist()


def test_built_bento_model_endpoint_names_the_champion(bento_server, built: Built):
    url, _, _ = bento_server
    assert httpx.get(f"{url}/model", timeout=30).status_code == 401
    r = httpx.get(f"{url}/model", headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    info = r.json()
    assert {k: info[k] for k in ("name", "version")} == built.champion
    assert info["version"] != built.other_version
    assert info["target"] == "sal"
    assert info["trained_at"]
    assert 0.5 < info["holdout_metrics"]["roc_auc"] <= 1.0
    assert {"fit_threshold", "interest_threshold"} <= set(info["quadrant_thresholds"])


def test_built_bento_stops_cleanly_and_never_called_mlflow(bento_server, built: Built):
    _, proc, log = bento_server
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(60) == 0
    text = log.read_text()
    assert f"ready: model {MODEL_NAME} v{built.champion['version']}" in text
    assert "prediction log closed" in text
    assert "Traceback" not in text
    assert not re.search(r"127\.0\.0\.1:9(?!\d)", text)  # the unreachable tracking URI
    assert "MlflowException" not in text
