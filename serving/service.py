"""The BentoML service the CRM calls. Thin by design: validate, build the canonical
tables, run the shared scoring path, shape the answer.

The model is a BentoML model (imported from the MLflow registry by `leadscore serve` or
`leadscore build`); LEADSCORE_BENTO_MODEL names its tag (default ``lead-scorer:latest``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import bentoml
import pandas as pd
from bentoml.exceptions import InvalidArgument

from serving.schemas import (
    MAX_LEADS_PER_REQUEST,
    Lead,
    ScoreResponse,
    leads_to_tables,
)
from serving.scoring import answer_records, score_tables

MODEL_TAG = os.environ.get("LEADSCORE_BENTO_MODEL", "lead-scorer:latest")


@bentoml.service(name="leadscore", traffic={"timeout": 30})
class LeadScoringService:
    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        pyfunc = bentoml.mlflow.load_model(self.bento_model)
        self.model = pyfunc.unwrap_python_model().model.for_serving()
        labels = self.bento_model.info.labels
        self.model_ref = {
            "name": labels.get("mlflow_model", str(self.bento_model.tag.name)),
            "version": labels.get("mlflow_version", str(self.bento_model.tag.version)),
        }

    @bentoml.api(route="/score")
    def score(self, leads: list[Lead], as_of: datetime | None = None) -> ScoreResponse:
        """Score 1 to 1,000 leads as of ``as_of`` (default: now, UTC)."""
        if not leads:
            raise InvalidArgument("field 'leads': give at least one lead")
        if len(leads) > MAX_LEADS_PER_REQUEST:
            raise InvalidArgument(
                f"field 'leads': {len(leads)} leads in one request; the limit is "
                f"{MAX_LEADS_PER_REQUEST}"
            )
        ids = [lead.lead_id for lead in leads]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise InvalidArgument(f"field 'leads[].lead_id': duplicate lead_id {dup[:5]}")
        moment = as_of or datetime.now(UTC)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        leads_df, accounts_df, events_df, stages_df = leads_to_tables(leads)
        answers = score_tables(
            self.model, leads_df, accounts_df, events_df, pd.Timestamp(moment), stages_df
        )
        return ScoreResponse(scores=answer_records(answers, self.model_ref))
