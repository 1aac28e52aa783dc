"""Batch scoring on one machine: chunked, in worker processes, with progress, and still the
same answers as one ``score_tables`` call over the whole tables."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from features.contract import read_tables
from serving.scoring import score_batch, score_tables
from training.dataset import data_end
from training.tracking import MODEL_NAME


@pytest.fixture(scope="module")
def scored(trained):
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion").unwrap_python_model().model
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


def test_events_of_unknown_leads_are_ignored_and_duplicates_rejected(scored):
    model, d, leads, moment, whole = scored
    few = leads.head(30)
    stray = d.events.head(3).assign(lead_id="nobody")
    events = pd.concat([d.events, stray], ignore_index=True)
    batch = score_batch(model, few, d.accounts, events, moment, 7, stage_history=d.stage_history)
    pd.testing.assert_frame_equal(batch, whole.loc[few["lead_id"]], check_exact=True)
    with pytest.raises(ValueError, match="unique"):
        score_batch(model, pd.concat([few, few.head(1)]), d.accounts, d.events, moment)
