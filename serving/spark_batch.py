"""Batch scoring on Apache Spark with the same code path as the HTTP service.

Each lead bucket (see ``features.spark``) goes through ``scoring.batch.score_tables``, the
function behind ``POST /score`` and ``leadscore score``: features, the registered model's
``score`` and the funnel profile (persona, lifecycle stage, segment, content phase, next
content). So a lead gets the same answer from Spark, from one machine and over HTTP.

Why not ``mlflow.pyfunc.spark_udf``: the pyfunc maps a *feature* row to the model columns
only; persona, segment and next content need the lead's events and stage history, which
``score_tables`` has per bucket. The model object is the registered champion's (loaded
once on the driver, shipped to the executors as a broadcast pickle, single-threaded there:
Spark already runs one task per core).

The output schema is read off the answer itself (one synthetic lead scored on the driver),
so new answer columns flow through without code changes here.
"""

from __future__ import annotations

import pickle
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.spark import SparkTables, apply_per_bucket, check_accounts, to_spark_rows
from scoring.batch import score_tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

_MODELS: dict[str, Any] = {}  # shipment key -> unpickled model, once per Python worker


def _sample_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One lead with an account, two events and a stage change: enough to type every
    answer column (lists get elements, text gets values)."""
    at = pd.Timestamp("2025-01-01")
    leads = pd.DataFrame(
        {
            "lead_id": ["sample"],
            "account_id": ["a"],
            "created_at": [at],
            "job_title": ["Head of IT"],
            "source": ["organic_search"],
            "email_domain_kind": ["business"],
            "do_not_email": [False],
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": ["a"],
            "industry": ["software"],
            "employees": [250.0],
            "annual_revenue": [1e7],
            "country": ["DE"],
        }
    )
    events = pd.DataFrame(
        {
            "lead_id": ["sample", "sample"],
            "at": [at + pd.Timedelta(days=1), at + pd.Timedelta(days=2)],
            "type": ["page_view", "content_download"],
            "topic": ["pricing", "security"],
            "content_id": [None, None],
        }
    )
    stages = pd.DataFrame(
        {"lead_id": ["sample"], "stage": ["lead"], "entered_at": [at]},
    )
    return accounts, leads, events, stages


def _arrow_out(answers: pd.DataFrame) -> pd.DataFrame:
    """Answer frame -> rows with lead_id as a column, text as Python objects."""
    return to_spark_rows(answers)


def answers_schema(model: Any) -> StructType:
    """Spark schema of ``score_tables`` rows for this model (read off a sample answer)."""
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import from_arrow_type

    accounts, leads, events, stages = _sample_tables()
    sample = _arrow_out(
        score_tables(model, leads, accounts, events, pd.Timestamp("2025-02-01"), stages)
    )
    fields = []
    for f in pa.Schema.from_pandas(sample, preserve_index=False):
        kind = f.type
        if pa.types.is_null(kind):
            kind = pa.string()
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            value = kind.value_type
            kind = pa.list_(pa.string() if pa.types.is_null(value) else value)
        elif pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_large_string(kind):
            kind = pa.string()
        fields.append(T.StructField(f.name, from_arrow_type(kind), f.name != "lead_id"))
    return T.StructType(fields)


def score_spark(
    model: Any,
    tables: SparkTables,
    as_of: pd.Timestamp,
    n_buckets: int | None = None,
    check: bool = True,
) -> DataFrame:
    """Score every lead on Spark: one row per lead (lead_id plus the answer columns), the
    same values ``score_tables`` gives for the lead on one machine or over HTTP."""
    moment = pd.Timestamp(as_of)
    schema = answers_schema(model)
    spark = tables.leads.sparkSession
    shipped = spark.sparkContext.broadcast(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    if check:
        check_accounts(tables)
    columns = [f.name for f in schema.fields]
    key = uuid.uuid4().hex

    def score(
        accounts: pd.DataFrame, leads: pd.DataFrame, events: pd.DataFrame, stages: pd.DataFrame
    ) -> pd.DataFrame:
        scorer = _MODELS.get(key)
        if scorer is None:
            scorer = pickle.loads(shipped.value)
            if hasattr(scorer, "for_serving"):
                scorer = scorer.for_serving()  # one thread per task: Spark runs a task per core
            _MODELS[key] = scorer
        if len(leads) == 0:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        out = _arrow_out(score_tables(scorer, leads, accounts, events, moment, stages))
        return out[columns]

    return apply_per_bucket(tables, score, schema, n_buckets=n_buckets, check=check)


def from_spark_answers(pdf: pd.DataFrame) -> pd.DataFrame:
    """Spark answers (``toPandas()``) -> the ``score_tables`` layout (index lead_id); list
    columns come back as lists."""
    out = pdf.set_index(pd.Index(pdf["lead_id"].astype("str"), name="lead_id")).drop(
        columns="lead_id"
    )
    for column in out.columns:
        values = out[column]
        if values.dtype == object and len(values) and isinstance(values.iloc[0], np.ndarray):
            out[column] = values.map(list)
    return out
