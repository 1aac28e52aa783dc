"""Shared, expensive fixtures: one simulated CRM, one MLflow store, one trained model and one
real `bentoml serve` process per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


#: Session fixtures that simulate, train or serve for real: a test that uses one of them, or
#: any test under tests/e2e, is marked ``slow`` (``make test-fast`` leaves those out).
HEAVY_FIXTURES = frozenset({"sim_dir", "small_sim_dir", "trained", "api_server"})


E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        heavy = HEAVY_FIXTURES & set(getattr(item, "fixturenames", ()))
        if heavy or E2E in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-golden",
        action="store_true",
        help="write tests/golden/*.json from this run instead of comparing against them",
    )


@pytest.fixture(scope="session")
def record_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--record-golden"))


@dataclass(frozen=True)
class Trained:
    data_dir: Path
    store: Path
    tracking_uri: str
    result: object


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("leadscore")


@pytest.fixture(scope="session")
def isolated_stores(workdir: Path) -> Iterator[str]:
    """A fresh MLflow store and BentoML home for the whole session."""
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    (workdir / "mlruns").mkdir()
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "BENTOML_HOME")}
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["BENTOML_HOME"] = str(workdir / "bentoml")
    yield uri
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def own_mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A test's own MLflow store. ``use_store`` also points MLflow's process-wide tracking
    and registry URIs at it, which the environment's restore does not undo: put them back,
    or the tests after this one look for the session's model in this store."""
    import mlflow

    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    uri = f"sqlite:///{tmp_path / 'own-mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


@pytest.fixture(scope="session")
def sim_dir(workdir: Path) -> Path:
    from crm.simulate import write_simulation

    out = workdir / "sim"
    write_simulation(out, n_leads=6000, seed=11)
    return out


@pytest.fixture(scope="session")
def small_sim_dir(workdir: Path) -> Path:
    """A smaller simulated CRM (2,000 leads) for tests that train their own models in their
    own stores and check what the runs record, not how good the model is: each training
    run on it costs about half of one on ``sim_dir``. Read only: nothing may write to it."""
    from crm.simulate import write_simulation

    out = workdir / "small-sim"
    write_simulation(out, n_leads=2000, seed=11)
    return out


@pytest.fixture(scope="session")
def trained(sim_dir: Path, isolated_stores: str, workdir: Path) -> Trained:
    from training.registry import promote
    from training.train import train

    result = train(sim_dir, target="sal", seed=11)
    promote()
    return Trained(sim_dir, workdir / "mlruns", isolated_stores, result)


@pytest.fixture(scope="session")
def api_server(trained, workdir: Path):
    """One real `bentoml serve` with API tokens and a SQLite prediction log, shared by the
    service, bad-request and schema tests (helpers in tests/serving_helpers.py)."""
    from serving_helpers import start_served

    from serving.process import stop_server

    served = start_served(trained, workdir, "api")
    try:
        yield served
    finally:
        stop_server(served.proc)
