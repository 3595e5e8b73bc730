"""Scores of customers from their online features, as POST /score answers them (for the consumer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core import names
from core.settings import Settings

if TYPE_CHECKING:
    from features.feast_adapter import WrittenRows


class OnlineScorer:
    """The champion and its feature service's reader: customer ids in, /score answers out."""

    def __init__(self, settings: Settings, store: Any) -> None:  # noqa: ANN401  (a feast.FeatureStore)
        """Load the champion (raises when there is none) and resolve its feature service."""
        from features.online import OnlineReader
        from model.champion import load_champion
        from model.predictor import predictor_of

        self.settings = settings
        self.predictor = predictor_of(
            load_champion(settings.mlflow_uri, settings.training.model_name), settings.serving
        )
        self.reader = OnlineReader(store, self.predictor.info["feature_service"])

    def __call__(self, customer_ids: list[str], written: WrittenRows | None = None) -> list[dict[str, Any]]:
        """`answers_for` with this champion."""
        return answers_for(self.settings, self.predictor, self.reader, customer_ids, written)


def answers_for(
    settings: Settings,
    predictor: Any,  # noqa: ANN401
    reader: Any,  # noqa: ANN401
    customer_ids: list[str],
    written: WrittenRows | None = None,
) -> list[dict[str, Any]]:
    """/score answers (probability, tier, reasons, rule hits, action) of customers from the online
    store; an error for an unknown id.

    Args:
        settings: The profile (risk tiers, CRM config).
        predictor: The model (`model.predictor.Predictor`).
        reader: Its feature service's `features.online.OnlineReader`.
        customer_ids: Who to score.
        written: What the caller has just written to the online store, when it has: the features
            are then taken from it instead of read back (the same values,
            `features.online.OnlineReader.rows_of`), unless it lacks a view or a customer.
    """
    from crm.answers import answers, with_early_warning

    online = None if written is None else reader.rows_of(written, customer_ids)
    if online is None:
        online = reader.read(customer_ids)
    where = [i for i, stamp in enumerate(online.snapshot_at) if stamp is not None]
    out: list[dict[str, Any]] = [
        {names.CUSTOMER_ID: c, "error": f"unknown customer_id '{c}': no online features"} for c in customer_ids
    ]
    if not where:
        return out
    rows = online.rows(predictor.features, where)
    method = predictor.method(len(where))
    outputs = predictor.model_outputs(rows, method=method)
    scored = answers(predictor, rows, outputs, settings.serving.risk_tiers, method)
    scored = with_early_warning(settings, predictor, rows, scored)
    for i, answer in zip(where, scored, strict=True):
        out[i] = {names.CUSTOMER_ID: customer_ids[i], **answer}
    return out
