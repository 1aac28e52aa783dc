"""Lead features on Apache Spark: the single-machine pandas function, one bucket of leads
at a time.

There is no Spark re-implementation of any feature (that would be train/serve skew). Leads
(with their account broadcast-joined onto them), events and stage changes are partitioned
by a hash of ``lead_id`` into buckets; ``cogroup(...).applyInPandas`` hands each bucket's
rows to the Python workers as pandas frames, which are validated against the contract and
passed to ``features.build.compute_features`` (or, for scoring, to
``scoring.batch.score_tables``) exactly as ``leadscore score`` does on one machine. All
rows of a lead land in one bucket, so per-lead features are complete; a bucket holds
roughly ``leads / n_buckets`` leads, which bounds a worker's memory.

Times travel as int64 nanoseconds (Spark timestamps stop at microseconds, and Spark cannot
read pandas' nanosecond Parquet timestamps without ``nanosAsLong``), so Spark and pandas
see identical instants. Events keep their input order inside a bucket (a row number taken
at read time), so floating-point sums add up in the same order as on one machine and the
features are bit-identical.

Needs the ``spark`` extra (``pip install "leadscore[spark]"``) and Java 17+.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crm.contract import TABLES, DataContractError, Problem, validate
from features.build import FeatureConfig, compute_features
from features.pointintime import NAT_NS, naive_utc

if TYPE_CHECKING:  # pyspark is an optional dependency: imported where it is used
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

# Prefixes keep the columns of the packed tables apart (leads and accounts share nothing
# but account_id; events and stage_history share nothing but lead_id).
LEAD, ACCOUNT, EVENT, STAGE = "l__", "a__", "e__", "s__"
TIME_COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": (),
    "leads": ("created_at",),
    "events": ("at",),
    "stage_history": ("entered_at",),
}
LEADS_PER_BUCKET = 25_000


@dataclass(frozen=True)
class SparkTables:
    """The four canonical tables as Spark DataFrames, times as int64 nanoseconds and a
    ``_row`` column holding each row's position in the input."""

    accounts: DataFrame
    leads: DataFrame
    events: DataFrame
    stage_history: DataFrame

    def table(self, name: str) -> DataFrame:
        return getattr(self, name)


def spark_session(master: str | None = None, app_name: str = "leadscore", **conf: str):
    """A SparkSession set up for the contract: UTC session time zone, nanosecond Parquet
    timestamps read as int64, Arrow transfers, this interpreter for the Python workers."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    settings = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.legacy.parquet.nanosAsLong": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        **conf,
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _table_path(folder: str | Path, name: str) -> str:
    """``<folder>/<name>.parquet`` (a file from pandas or a directory of part files)."""
    return str(Path(folder) / f"{name}.parquet")


def read_spark_tables(spark: SparkSession, folder: str | Path) -> SparkTables:
    """Read ``accounts/leads/events/stage_history.parquet`` from a folder (local, HDFS, S3...).

    Times become int64 nanoseconds since the epoch (naive UTC), missing ones ``NAT_NS``
    (int64 min: they travel as NaT, never as null).
    """
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    local = "://" not in str(folder)
    if local and not Path(folder).is_dir():
        raise DataContractError([Problem("-", "-", "-", f"data folder {folder} does not exist")])
    frames: dict[str, DataFrame] = {}
    problems = []
    for name in TABLES:
        path = _table_path(folder, name)
        if local and not Path(path).exists():
            problems.append(Problem(name, "-", "-", f"file {path} is missing"))
            continue
        df = spark.read.parquet(path)
        for column in TIME_COLUMNS[name]:
            if column not in df.columns:
                continue  # validate() names the missing column
            kind = df.schema[column].dataType
            if isinstance(kind, (T.LongType, T.IntegerType)):
                ns = F.col(column).cast("long")
            elif isinstance(kind, (T.TimestampType, T.TimestampNTZType, T.DateType)):
                ns = F.unix_micros(F.col(column).cast("timestamp")) * F.lit(1000)
            else:  # text: parsed by Spark in UTC; validate() rejects what does not parse
                ns = F.unix_micros(F.to_timestamp(F.col(column))) * F.lit(1000)
            df = df.withColumn(column, F.coalesce(ns, F.lit(NAT_NS)))
        frames[name] = df.withColumn("_row", F.monotonically_increasing_id())
    if problems:
        raise DataContractError(problems)
    return SparkTables(**frames)


def check_accounts(tables: SparkTables) -> None:
    """Duplicate account ids would duplicate leads in the join: name them first."""
    from pyspark.sql import functions as F

    dup = tables.accounts.groupBy("account_id").count().where(F.col("count") > 1).limit(5).collect()
    if dup:
        raise DataContractError(
            [
                Problem("accounts", "-", "account_id", f"duplicate id {r['account_id']!r}")
                for r in dup
            ]
        )


def n_buckets_for(tables: SparkTables, leads_per_bucket: int = LEADS_PER_BUCKET) -> int:
    """Enough buckets to keep every core busy and each bucket near ``leads_per_bucket``."""
    cores = tables.leads.sparkSession.sparkContext.defaultParallelism
    n_leads = tables.leads.count()
    return max(cores, -(-n_leads // leads_per_bucket))


def bucketed(tables: SparkTables, n_buckets: int) -> tuple[Any, Any]:
    """(leads with their account, events and stage changes), both grouped by lead bucket:
    ready for ``left.cogroup(right).applyInPandas``."""
    from pyspark.sql import functions as F

    def bucket(column: str = "lead_id"):
        return F.pmod(F.xxhash64(F.col(column).cast("string")), F.lit(n_buckets)).alias("_bucket")

    accounts = tables.accounts.select(
        *(F.col(c).alias(ACCOUNT + c) for c in tables.accounts.columns if c != "_row"),
        F.col("_row").alias(ACCOUNT + "_row"),
    )
    leads = tables.leads.select(
        "lead_id", *(F.col(c).alias(LEAD + c) for c in tables.leads.columns if c != "lead_id")
    )
    if "account_id" in tables.leads.columns:
        leads = leads.join(
            F.broadcast(accounts),
            leads[LEAD + "account_id"] == accounts[ACCOUNT + "account_id"],
            "left",
        )
    left = leads.select(bucket(), "*")
    events = tables.events.select(
        "lead_id",
        F.lit("events").alias("_table"),
        *(F.col(c).alias(EVENT + c) for c in tables.events.columns if c != "lead_id"),
    )
    stages = tables.stage_history.select(
        "lead_id",
        F.lit("stage_history").alias("_table"),
        *(F.col(c).alias(STAGE + c) for c in tables.stage_history.columns if c != "lead_id"),
    )
    right = events.unionByName(stages, allowMissingColumns=True).select(bucket(), "*")
    return left.groupBy("_bucket"), right.groupBy("_bucket")


def _strip(df: pd.DataFrame, prefix: str, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """The columns with ``prefix`` (prefix removed), in input order, after ``keep``."""
    names = {c: c[len(prefix) :] for c in df.columns if c.startswith(prefix)}
    out = df[[*keep, *names]].rename(columns=names)
    if "_row" in out.columns:
        order = np.argsort(out["_row"].to_numpy(), kind="stable")
        out = out.iloc[order].drop(columns="_row").reset_index(drop=True)
    return out


def _times(df: pd.DataFrame, table: str) -> pd.DataFrame:
    for column in TIME_COLUMNS[table]:
        if column in df.columns:
            ns = df[column].to_numpy()
            if ns.dtype.kind in "iu":
                df[column] = ns.astype(np.int64).view("datetime64[ns]")
    return df


def unpack(
    left: pd.DataFrame, right: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One bucket's packed rows -> (accounts, leads, events, stage_history) as pandas frames
    shaped like the Parquet tables (rows in input order)."""
    leads = _times(_strip(left, LEAD, ("lead_id",)), "leads")
    acc_cols = [c for c in left.columns if c.startswith(ACCOUNT)]
    if acc_cols:
        found = left[acc_cols][left[ACCOUNT + "account_id"].notna()]
        accounts = _strip(found.drop_duplicates(ACCOUNT + "account_id"), ACCOUNT)
    else:
        accounts = pd.DataFrame({"account_id": pd.Series(dtype="str")})
    table = right["_table"].to_numpy() if len(right) else np.array([], dtype=object)
    events = _times(_strip(right[table == "events"], EVENT, ("lead_id",)), "events")
    stages = _strip(right[table == "stage_history"], STAGE, ("lead_id",))
    return accounts, leads, events, _times(stages, "stage_history")


def bucket_tables(left: pd.DataFrame, right: pd.DataFrame, check: bool = True):
    """The bucket as four tables, validated (and typed) against the contract as
    ``read_tables`` does on one machine; a problem raises DataContractError."""
    accounts, leads, events, stages = unpack(left, right)
    if not check:
        return accounts, leads, events, stages
    d = validate(accounts, leads, events, stages)
    return d.accounts, d.leads, d.events, d.stage_history


# --------------------------------------------------------------------------- features


def feature_template(config: FeatureConfig) -> pd.DataFrame:
    """An empty features frame with the exact columns and dtypes of ``compute_features``."""
    leads = pd.DataFrame(
        {"lead_id": pd.Series(["x"], dtype="str"), "created_at": [pd.Timestamp("2000-01-01")]}
    )
    return compute_features(leads, None, None, pd.Timestamp("2000-01-02"), config).iloc[:0]


def features_schema(config: FeatureConfig) -> StructType:
    from pyspark.sql import types as T

    template = feature_template(config)
    fields = [T.StructField("lead_id", T.StringType(), False)]
    for column, dtype in template.dtypes.items():
        kind = T.StringType() if isinstance(dtype, pd.CategoricalDtype) else T.DoubleType()
        fields.append(T.StructField(str(column), kind, True))
    return T.StructType(fields)


def to_spark_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Index -> ``lead_id`` column; text and categories as plain Python objects, which
    pyspark turns into Arrow safely (pandas 3 Arrow-backed text can arrive in several
    chunks, which pyspark 4.3 does not accept)."""
    out = df.rename_axis("lead_id").reset_index()
    text = {
        c: object
        for c, d in out.dtypes.items()
        if isinstance(d, (pd.CategoricalDtype, pd.StringDtype))
    }
    return out.astype(text) if text else out


def _features_out(X: pd.DataFrame) -> pd.DataFrame:
    """Features frame -> Arrow-friendly rows: lead_id a column, categories as text."""
    return to_spark_rows(X)


def from_spark_features(pdf: pd.DataFrame, config: FeatureConfig) -> pd.DataFrame:
    """Spark features (``toPandas()``) -> the ``compute_features`` layout: index lead_id,
    the same column order and dtypes."""
    template = feature_template(config)
    out = pdf.set_index(pd.Index(pdf["lead_id"].astype("str"), name="lead_id"))
    out = out[list(template.columns)]
    return out.astype(template.dtypes.to_dict())


def compute_features_spark(
    tables: SparkTables,
    as_of: pd.Timestamp,
    config: FeatureConfig = FeatureConfig(),
    n_buckets: int | None = None,
    check: bool = True,
) -> DataFrame:
    """``compute_features`` for every lead, run per lead bucket on Spark: a Spark
    DataFrame with lead_id, the categorical features as text and the numbers as doubles."""
    moment = naive_utc(as_of)  # the as-of moment as every worker will read it
    left, right = bucketed(tables, n_buckets or n_buckets_for(tables))

    def features(leads_part: pd.DataFrame, events_part: pd.DataFrame) -> pd.DataFrame:
        accounts, leads, events, _ = bucket_tables(leads_part, events_part, check)
        return _features_out(compute_features(leads, accounts, events, moment, config))

    return left.cogroup(right).applyInPandas(features, schema=features_schema(config))


def apply_per_bucket(
    tables: SparkTables,
    fn: Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame], pd.DataFrame],
    schema: StructType,
    n_buckets: int | None = None,
    check: bool = True,
) -> DataFrame:
    """Run ``fn(accounts, leads, events, stage_history) -> rows`` on every lead bucket."""
    left, right = bucketed(tables, n_buckets or n_buckets_for(tables))

    def run(leads_part: pd.DataFrame, events_part: pd.DataFrame) -> pd.DataFrame:
        return fn(*bucket_tables(leads_part, events_part, check))

    return left.cogroup(right).applyInPandas(run, schema=schema)


def data_end_spark(tables: SparkTables) -> pd.Timestamp:
    """The moment the export was taken (as ``crm.contract.data_end``): the latest
    recorded timestamp in events, stage changes and lead creations."""
    from pyspark.sql import functions as F

    latest = []
    for name, column in (
        ("events", "at"),
        ("stage_history", "entered_at"),
        ("leads", "created_at"),
    ):
        value = tables.table(name).agg(F.max(column)).first()[0]
        if value is not None and value != NAT_NS:
            latest.append(value)
    if not latest:
        raise DataContractError([Problem("-", "-", "-", "the data holds no timestamp")])
    return pd.Timestamp(max(latest), unit="ns")
