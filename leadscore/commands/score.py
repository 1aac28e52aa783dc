"""``leadscore score``: batch-score every lead of a data folder with the served model, on
this machine (pandas, in chunks and processes) or on Apache Spark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from leadscore.shared import DataDir, ModelName, console, err, import_served, user_errors
from scoring.registry import MODEL_NAME, load_scoring_model

Engine = Annotated[
    str,
    typer.Option(
        help="pandas: this machine (--out is a Parquet file); spark: Apache Spark "
        "(--data/--out are Parquet folders, local or cluster paths)"
    ),
]


@user_errors
def score(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="Output Parquet file")] = Path("scored.parquet"),
    as_of: Annotated[
        str | None, typer.Option(help="Score as of this moment (default: end of the data)")
    ] = None,
    alias: Annotated[str, typer.Option(help="Registry alias or version to use")] = "champion",
    chunk_size: Annotated[int, typer.Option(help="Leads per chunk (bounds memory)")] = 50_000,
    engine: Engine = "pandas",
    workers: Annotated[
        int, typer.Option(help="pandas engine: processes scoring chunks (0 = one per core)")
    ] = 0,
    master: Annotated[
        str | None,
        typer.Option(help="spark engine: master URL (default: spark-submit's, else local[*])"),
    ] = None,
    model_name: ModelName = MODEL_NAME,
    reasons: Annotated[
        bool,
        typer.Option(
            help="pandas engine: give each lead its reasons in words (--no-reasons: "
            "scores only, no reasons column; faster)"
        ),
    ] = True,
) -> None:
    """Batch-score every lead in a data folder with the same code path as the HTTP service."""
    if engine not in ("pandas", "spark"):
        raise typer.BadParameter("choose pandas or spark", param_hint="--engine")
    if engine == "spark" and not reasons:
        raise typer.BadParameter("the spark engine always gives reasons", param_hint="--no-reasons")
    bento_model = import_served(alias, model_name)
    import bentoml

    model = load_scoring_model(lambda: bentoml.mlflow.load_model(bento_model), str(bento_model.tag))
    if engine == "spark":
        _score_spark(bento_model, model, data, out, as_of, master)
    else:
        _score_pandas(bento_model, model, data, out, as_of, chunk_size, workers, reasons)


def _score_pandas(
    bento_model: Any,
    model: Any,
    data: Path,
    out: Path,
    as_of: str | None,
    chunk_size: int,
    workers: int,
    reasons: bool = True,
) -> None:
    """`score --engine pandas`: chunks of leads, each scored and written, with a progress
    bar on stderr and the quadrant counts at the end."""
    import pandas as pd
    from rich.progress import Progress

    from crm.contract import data_end, read_tables
    from scoring.batch import score_to_parquet

    d = read_tables(data, dictionary_ids=True)  # ids and topics as categoricals: faster
    moment = pd.Timestamp(as_of) if as_of else data_end(d) + pd.Timedelta(seconds=1)
    labels = bento_model.info.labels
    quadrants: list[pd.Series] = []
    with Progress(console=err()) as bar:
        task = bar.add_task("scoring", total=len(d.leads))

        def tally(part: Any) -> None:  # each chunk (an Arrow table) is written, then dropped
            quadrants.append(part.column("quadrant").to_pandas().value_counts())
            bar.advance(task, part.num_rows)

        n = score_to_parquet(
            out, model, d, moment, chunk_size, workers,
            columns={
                "model_name": labels.get("mlflow_model"),
                "model_version": labels.get("mlflow_version"),
                "as_of": moment,
            },
            on_part=tally,
            reasons=reasons,
        )  # fmt: skip
    console().print(f"scored {n:,} leads as of {moment} -> {out}")
    if quadrants:
        counts = pd.concat(quadrants).groupby(level=0).sum()
        console().print(counts.sort_values(ascending=False, kind="stable").to_string())


def _score_spark(
    bento_model: Any, model: Any, data: Path, out: Path, as_of: str | None, master: str | None
) -> None:
    """`score --engine spark`: read Parquet, score per lead bucket, write a Parquet folder."""
    import pandas as pd
    from pyspark.errors import PythonException
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from crm.contract import DataContractError, Problem
    from features.spark import data_end_spark, read_spark_tables, spark_session
    from serving.spark_batch import score_spark

    owned = SparkSession.getActiveSession() is None
    spark = spark_session(master)  # None: spark-submit's master, else local[*]
    try:
        tables = read_spark_tables(spark, data)
        moment = pd.Timestamp(as_of) if as_of else data_end_spark(tables) + pd.Timedelta(seconds=1)
        labels = bento_model.info.labels
        answers = score_spark(model, tables, moment).select(
            "*",
            F.lit(labels.get("mlflow_model")).alias("model_name"),
            F.lit(labels.get("mlflow_version")).alias("model_version"),
            F.lit(moment.to_pydatetime()).cast("timestamp_ntz").alias("as_of"),
        )
        answers.write.mode("overwrite").parquet(str(out))
        written = spark.read.parquet(str(out))
        counts = written.groupBy("quadrant").count().orderBy(F.desc("count")).collect()
    except PythonException as exc:  # a contract problem found inside a Spark task
        text = str(exc)
        if "DataContractError" not in text:
            raise
        reason = text[text.index("DataContractError") :].split("\n", 1)[-1].strip()
        raise DataContractError([Problem("-", "-", "-", reason[:4000])]) from None
    finally:
        if owned:
            spark.stop()
    console().print(f"scored {sum(r['count'] for r in counts):,} leads as of {moment} -> {out}/")
    console().print("\n".join(f"{r['quadrant']}  {r['count']}" for r in counts))
