"""Spark runs the single-machine pandas code per lead bucket: features and answers from a
local Spark equal those from pandas, row for row. One local[2] session, small data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from crm.contract import data_end, read_tables
from crm.simulate import write_simulation
from features.build import compute_features
from features.spark import (
    compute_features_spark,
    data_end_spark,
    from_spark_features,
    read_spark_tables,
    spark_session,
)
from scoring.batch import score_tables
from scoring.registry import load_registered
from serving.spark_batch import from_spark_answers, score_spark

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java", allow_module_level=True)

# pyspark 4.3 warns about pandas 3 and its own use of a deprecated pandas keyword
pytestmark = [
    pytest.mark.slow,  # a local Spark session
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]


@pytest.fixture(scope="session")
def spark():
    session = spark_session(
        "local[2]",
        **{"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"},
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("spark") / "sim"
    write_simulation(folder, n_leads=500, seed=23)
    d = read_tables(folder)
    return folder, d


def test_features_on_spark_equal_pandas_row_for_row(spark, small):
    folder, d = small
    moment = data_end(d) + pd.Timedelta(seconds=1)
    tables = read_spark_tables(spark, folder)
    assert data_end_spark(tables) == data_end(d)
    got = from_spark_features(
        compute_features_spark(tables, moment, n_buckets=3).toPandas(), _cfg()
    )
    want = compute_features(d.leads, d.accounts, d.events, moment)
    assert sorted(got.index) == sorted(want.index)
    pd.testing.assert_frame_equal(got.loc[want.index], want, check_exact=True)


def _cfg():
    from features.build import FeatureConfig

    return FeatureConfig()


def test_scores_on_spark_equal_pandas_row_for_row(spark, small, trained):
    folder, d = small
    model = load_registered()
    moment = data_end(d) + pd.Timedelta(seconds=1)
    tables = read_spark_tables(spark, folder)
    got = from_spark_answers(score_spark(model, tables, moment, n_buckets=3).toPandas())
    want = score_tables(model, d.leads, d.accounts, d.events, moment, d.stage_history)
    assert sorted(got.index) == sorted(want.index)
    got = got.loc[want.index, list(want.columns)]
    for column in want.columns:
        a, b = got[column].tolist(), want[column].tolist()
        assert [_plain(v) for v in a] == [_plain(v) for v in b], column


def _plain(value):
    """Lists, arrays and missing values compared by content."""
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        return [_plain(v) for v in list(value)]
    return None if pd.isna(value) else value


def test_cli_scores_a_parquet_folder_on_spark(spark, small, trained, tmp_path):
    from leadscore.cli import app

    folder, d = small
    out = tmp_path / "scored"
    res = CliRunner().invoke(
        app, ["score", "--engine", "spark", "--data", str(folder), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    written = pd.read_parquet(out)
    assert len(written) == len(d.leads) and written["lead_id"].is_unique
    assert {"p_convert", "quadrant", "persona", "segment", "next_content", "model_version"} <= set(
        written.columns
    )
    assert spark.sparkContext._jsc is not None  # the CLI left the test's session running
