"""Batch scoring on one machine: chunked, in worker processes, with progress, and still the
same answers as one ``score_tables`` call over the whole tables."""

from __future__ import annotations

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from crm.contract import data_end, read_tables
from scoring.batch import score_batch, score_tables, write_answers
from scoring.registry import load_registered
from training.tracking import MODEL_NAME


@pytest.fixture(scope="module")
def scored(trained):
    model = load_registered()
    d = read_tables(trained.data_dir)
    moment = data_end(d) + pd.Timedelta(seconds=1)
    leads = d.leads.sample(n=900, random_state=5)
    whole = score_tables(model, leads, d.accounts, d.events, moment, d.stage_history)
    return model, d, leads, moment, whole


def test_chunks_in_worker_processes_equal_one_call(scored):
    model, d, leads, moment, whole = scored
    done: list[int] = []
    batch = score_batch(
        model,
        leads,
        d.accounts,
        d.events,
        moment,
        chunk_size=250,
        on_chunk=done.append,
        stage_history=d.stage_history,
        workers=2,
    )
    assert done == [250, 250, 250, 150]  # progress per chunk, in order
    assert batch.index.tolist() == leads["lead_id"].tolist()
    pd.testing.assert_frame_equal(batch, whole, check_exact=True)


def test_one_process_equals_worker_processes(scored):
    model, d, leads, moment, whole = scored
    batch = score_batch(
        model, leads, d.accounts, d.events, moment, 400, stage_history=d.stage_history, workers=1
    )
    pd.testing.assert_frame_equal(batch, whole, check_exact=True)


def test_events_already_in_lead_order_are_sliced_with_the_same_answers(scored):
    """Events grouped by lead in the leads' order (as the simulator writes them) are handed
    to each chunk as a slice, without a sort or a copy: the answers do not change."""
    import numpy as np

    from scoring.batch import _ChunkPlan

    model, d, leads, moment, whole = scored
    ordered = d.leads[d.leads["lead_id"].isin(leads["lead_id"])]  # the file's order
    events = d.events[d.events["lead_id"].isin(ordered["lead_id"])]
    rank = pd.Index(ordered["lead_id"]).get_indexer(events["lead_id"])
    events = events.iloc[np.argsort(rank, kind="stable")]
    plan = _ChunkPlan.build(ordered, d.accounts, events, d.stage_history, moment, 250)
    assert plan.events.sliced and not plan.history.sliced  # history: other leads' rows too
    batch = score_batch(
        model, ordered, d.accounts, events, moment, 250, stage_history=d.stage_history, workers=2
    )
    want = whole.loc[ordered["lead_id"]]
    pd.testing.assert_frame_equal(batch, want, check_exact=True)


def test_events_of_unknown_leads_are_ignored_and_duplicates_rejected(scored):
    model, d, leads, moment, whole = scored
    few = leads.head(30)
    stray = d.events.head(3).assign(lead_id="nobody")
    events = pd.concat([d.events, stray], ignore_index=True)
    batch = score_batch(model, few, d.accounts, events, moment, 7, stage_history=d.stage_history)
    pd.testing.assert_frame_equal(batch, whole.loc[few["lead_id"]], check_exact=True)
    with pytest.raises(ValueError, match="unique"):
        score_batch(model, pd.concat([few, few.head(1)]), d.accounts, d.events, moment)


def test_cli_streams_the_answers_score_batch_gives_to_parquet(trained, tmp_path):
    """`leadscore score` writes each chunk's answers as it comes: the file equals the one
    ``score_batch``'s frame (plus the model and moment columns) gives with ``to_parquet``."""
    from typer.testing import CliRunner

    from leadscore.cli import app

    out = tmp_path / "out" / "scored.parquet"
    args = ["score", "--data", str(trained.data_dir), "--out", str(out)]
    res = CliRunner().invoke(app, [*args, "--chunk-size", "1500", "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert [p.name for p in out.parent.iterdir()] == ["scored.parquet"]  # no temp file left
    assert pq.ParquetFile(out).metadata.num_row_groups == 4  # 6,000 leads, one per chunk

    model = load_registered()
    d = read_tables(trained.data_dir)
    moment = data_end(d) + pd.Timedelta(seconds=1)
    version = mlflow.MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion").version
    batch = score_batch(
        model, d.leads, d.accounts, d.events, moment, 2000, stage_history=d.stage_history
    )
    want = batch.reset_index()
    want["model_name"] = MODEL_NAME
    want["model_version"] = str(version)
    want["as_of"] = moment
    want.to_parquet(tmp_path / "want.parquet", index=False)  # what the CLI used to write

    got = pd.read_parquet(out)
    assert pq.read_schema(out).equals(pq.read_schema(tmp_path / "want.parquet"))
    pd.testing.assert_frame_equal(got, pd.read_parquet(tmp_path / "want.parquet"), check_exact=True)
    flat = [c for c in want.columns if c not in ("reasons", "flags", "next_content")]
    pd.testing.assert_frame_equal(got[flat], want[flat], check_exact=True)
    assert got["flags"].map(list).tolist() == want["flags"].tolist()
    assert [[dict(r) for r in rs] for rs in got["reasons"]] == want["reasons"].tolist()


def test_a_failing_chunk_leaves_no_partial_file(scored, tmp_path):
    model, d, leads, moment, whole = scored
    target = tmp_path / "scored.parquet"
    target.write_bytes(b"an earlier run")

    def parts():
        yield whole.head(10)
        raise ValueError("chunk 2 failed")

    with pytest.raises(ValueError, match="chunk 2 failed"):
        write_answers(target, parts(), {"as_of": moment})
    assert target.read_bytes() == b"an earlier run"  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["scored.parquet"]  # temp file removed

    # bad input: the CLI says what is wrong and writes nothing
    from typer.testing import CliRunner

    from leadscore.cli import app

    bad = tmp_path / "bad"
    bad.mkdir()
    for table in ("accounts", "events", "stage_history"):
        getattr(d, table).to_parquet(bad / f"{table}.parquet", index=False)
    pd.concat([d.leads, d.leads.head(1)]).to_parquet(bad / "leads.parquet", index=False)
    out = tmp_path / "new" / "scored.parquet"
    res = CliRunner().invoke(app, ["score", "--data", str(bad), "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert "lead_id" in res.output and "error" in res.output
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_parquet_types_settled_when_a_first_chunk_leaves_them_open(scored, tmp_path):
    """A first chunk whose leads have no flags (lists all empty) must not fix `flags` as
    list<null>: later chunks with flags still fit."""
    model, d, leads, moment, whole = scored
    first = whole.head(5).copy()
    first["flags"] = [[] for _ in range(len(first))]
    second = whole.iloc[5:20].copy()
    second.iloc[0, second.columns.get_loc("flags")] = ["missing job_title"]
    n = write_answers(tmp_path / "a.parquet", iter([first, second]))
    assert n == 20
    got = pd.read_parquet(tmp_path / "a.parquet")
    assert got["flags"].map(list).tolist() == [*first["flags"], *second["flags"]]
    assert pq.read_schema(tmp_path / "a.parquet").field("flags").type == pa.list_(pa.string())


def test_the_gc_freeze_is_the_batch_runs_not_the_iterations(scored):
    """``score_batch`` freezes the heap for its run and undoes it after; iterating
    ``iter_score_batch`` itself has no effect on the garbage collector."""
    import gc

    from scoring.batch import iter_score_batch

    model, d, leads, moment, whole = scored
    few = leads.head(20)
    before = gc.get_freeze_count()  # 0 unless something in this process froze its heap
    during: list[int] = []
    score_batch(
        model, few, d.accounts, d.events, moment, 10,
        on_chunk=lambda n: during.append(gc.get_freeze_count()),
    )  # fmt: skip
    assert len(during) == 2 and all(n >= max(before, 1) for n in during)
    assert gc.get_freeze_count() == before
    chunks = iter_score_batch(model, few, d.accounts, d.events, moment, 10)
    next(chunks)
    assert gc.get_freeze_count() == before
    chunks.close()


def test_without_reasons_every_other_answer_is_the_same(scored, trained, tmp_path):
    """``reasons=False`` (`leadscore score --no-reasons`) leaves the reasons column out and
    changes nothing else, in one call, in chunks over worker processes and in the CLI file."""
    from typer.testing import CliRunner

    from leadscore.cli import app

    model, d, leads, moment, whole = scored
    want = whole.drop(columns="reasons")
    one = score_tables(model, leads, d.accounts, d.events, moment, d.stage_history, reasons=False)
    pd.testing.assert_frame_equal(one, want, check_exact=True)
    batch = score_batch(
        model, leads, d.accounts, d.events, moment, 250, stage_history=d.stage_history,
        workers=2, reasons=False,
    )  # fmt: skip
    pd.testing.assert_frame_equal(batch, want, check_exact=True)
    with pytest.raises(ValueError, match="needs reasons"):
        score_tables(
            model, leads, d.accounts, d.events, moment, with_contributions=True, reasons=False
        )

    out = tmp_path / "bare.parquet"
    args = ["score", "--data", str(trained.data_dir), "--out", str(out), "--no-reasons"]
    res = CliRunner().invoke(app, [*args, "--chunk-size", "2500", "--workers", "2"])
    assert res.exit_code == 0, res.output
    got = pd.read_parquet(out)
    assert "reasons" not in got.columns
    all_leads = score_batch(
        model, d.leads, d.accounts, d.events, moment, 2500, stage_history=d.stage_history,
        reasons=False,
    )  # fmt: skip
    flat = [c for c in all_leads.columns if c not in ("flags", "next_content")]
    pd.testing.assert_frame_equal(
        got.set_index("lead_id")[flat], all_leads[flat], check_exact=True, check_names=False
    )
    res = CliRunner().invoke(app, [*args[:-1], "--engine", "spark", "--no-reasons"])
    assert res.exit_code != 0 and "always gives reasons" in res.output


@pytest.mark.parametrize("as_table", [False, True])
def test_a_chunk_that_does_not_fit_the_file_is_named_and_nothing_is_left(tmp_path, as_table):
    first = pd.DataFrame({"p_convert": [0.1, 0.2]}, index=pd.Index(["a", "b"], name="lead_id"))
    second = pd.DataFrame(
        {"p_convert": ["high", "low"]}, index=pd.Index(["c", "d"], name="lead_id")
    )
    if as_table:
        second = pa.Table.from_pandas(second.reset_index(), preserve_index=False)
    out = tmp_path / "answers.parquet"
    with pytest.raises(ValueError, match=r"row 2 on .*p_convert: (string|large_string)"):
        write_answers(out, [first, second])
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
