"""The test of a training run: the model beside every baseline on the same test rows, and the verdict.

Baselines: the logistic regression the run fitted on its training rows, the recency rule, and for
activity labels (no purchase within the horizon) the BG/NBD model of buy-till-you-die fame,
fitted on the training rows (`features.btyd`). The verdict says whether the model beats each of
them on the test rows, and by how much, on the objective metric, or on ROC AUC when the objective
is the log loss (the recency rule ranks customers, it gives no probabilities).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from core import names
from core.settings import Settings
from features.btyd import SUMMARY, fit_bg_nbd
from training.baselines import baseline_scores
from training.dataset import Split
from training.metrics import Evaluation, evaluate

RANKING = ("roc_auc", "pr_auc")
"""The metrics every baseline can be judged on."""


@dataclass(frozen=True)
class Verdict:
    """Whether the model beats every baseline on the test rows."""

    metric: str
    model: float
    baselines: dict[str, float]

    @property
    def best_baseline(self) -> str | None:
        """The strongest baseline's name (None without baselines)."""
        return max(self.baselines, key=lambda b: self.baselines[b]) if self.baselines else None

    @property
    def margin(self) -> float:
        """The model's lead over the strongest baseline (negative: it loses)."""
        best = self.best_baseline
        return self.model - self.baselines[best] if best is not None else float("inf")

    @property
    def beats_all(self) -> bool:
        """Whether the model scores above every baseline."""
        return self.margin > 0

    def line(self) -> str:
        """One sentence for people: which baselines it beats, by how much."""
        if self.best_baseline is None:
            return f"no baseline to compare with on {self.metric}"
        detail = ", ".join(f"{b} {v:.4f}" for b, v in sorted(self.baselines.items(), key=lambda kv: -kv[1]))
        if self.beats_all:
            return (
                f"beats every baseline on test {self.metric}: {self.model:.4f} against {detail} "
                f"(+{self.margin:.4f} over {self.best_baseline})"
            )
        return (
            f"does NOT beat every baseline on test {self.metric}: {self.model:.4f} against {detail} "
            f"({self.margin:+.4f} against {self.best_baseline})"
        )


def verdict_metric(metric: str) -> str:
    """The metric model and baselines are compared on: the objective, or ROC AUC for the log loss."""
    return metric if metric in RANKING else "roc_auc"


def verdict(metric: str, model: Evaluation, baselines: Mapping[str, Evaluation]) -> Verdict:
    """The model's standing against the baselines on `verdict_metric(metric)`."""
    judged = verdict_metric(metric)
    return Verdict(judged, model.metrics()[judged], {b: e.metrics()[judged] for b, e in baselines.items()})


def customer_values(settings: Settings, frame: pd.DataFrame) -> np.ndarray | float:
    """Each row's yearly value (`crm.customer_value`), or a flat 100 when the data lacks the feature."""
    cfg = settings.crm.customer_value
    if cfg.feature not in frame:
        return 100.0
    return pd.to_numeric(frame[cfg.feature], errors="coerce").fillna(0.0).to_numpy() * cfg.per_year


def all_baseline_scores(settings: Settings, split: Split, regression: Pipeline) -> dict[str, np.ndarray]:
    """Each baseline's scores of the test rows.

    - "logistic_regression": the run's regression (fitted on its training rows), and
      "recency_rule": `training.baselines.baseline_scores`.
    - "bg_nbd": for activity labels, P(no purchase in the horizon) of a BG/NBD model fitted on the
      training rows (out of time: the last training date, one row per customer); a test row without
      a purchase before its date scores 1. Skipped when the features lack the BTYD summary.
    """
    features = list(split.features)
    train, test = split.train, split.test
    # The regression is fitted: of the training rows only the columns' types matter, not a copy of them all.
    head = train.iloc[:0]
    scores = baseline_scores(head[features], head[names.LABEL], test[features], model=regression)
    if settings.labels.kind == "activity" and all(c in train.columns for c in SUMMARY):
        if not split.cross_validated:
            train = train[train[names.EVENT_TIMESTAMP] == train[names.EVENT_TIMESTAMP].max()]
        frequency, recency, age = SUMMARY
        model = fit_bg_nbd(train[frequency].to_numpy(), train[recency].to_numpy(), train[age].to_numpy())
        silent = model.no_purchase_probability(
            test[frequency].to_numpy(), test[recency].to_numpy(), test[age].to_numpy(), settings.labels.horizon_days
        )
        scores["bg_nbd"] = np.where(np.isnan(silent), 1.0, silent)
    return scores


@dataclass(frozen=True)
class Judged:
    """The model and the baselines on the test rows."""

    model: Evaluation
    baselines: dict[str, Evaluation]
    verdict: Verdict

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow: test_*, baseline_<name>_* and the verdict's margin."""
        out = {f"test_{k}": v for k, v in self.model.metrics().items()}
        for name, ev in self.baselines.items():
            out.update(
                {f"baseline_{name}_{k}": v for k, v in ev.metrics().items() if k in ("roc_auc", "pr_auc", "lift_top10")}
            )
        out[f"beats_baselines_margin_{self.verdict.metric}"] = self.verdict.margin
        return out


def judge_on_test(
    settings: Settings, split: Split, proba: np.ndarray, regression: Pipeline, success_rate: float | None = None
) -> Judged:
    """Evaluate the model's test probabilities and every baseline's scores on the same rows.

    `success_rate` is the offer's success in the profit (`crm.campaigns.evaluation.retention_success`);
    None: `training.retention_success`.
    """
    cfg = settings.training
    y = split.test[names.LABEL].to_numpy()
    value = customer_values(settings, split.test)
    success = cfg.retention_success if success_rate is None else success_rate

    def assess(scores: np.ndarray) -> Evaluation:
        return evaluate(y, scores, retention_cost=cfg.retention_cost, customer_value=value, success_rate=success)

    model = assess(proba)
    baselines = {name: assess(s) for name, s in all_baseline_scores(settings, split, regression).items()}
    return Judged(model, baselines, verdict(cfg.metric, model, baselines))
