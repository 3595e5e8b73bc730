"""The evaluation (training.metrics, .baselines, .importance, .plots, .report): metrics on constructed
examples, calibration, baselines, SHAP importance, plots and the HTML report."""

from __future__ import annotations

import pickle
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.metrics import log_loss, precision_recall_curve, roc_curve

from model.calibration import fit_calibrator, should_calibrate
from model.matrix import dmatrix, model_frame
from training.baselines import baseline_scores, recency_rule
from training.importance import EXPLAINED_ROWS, held_out_importance, shap_importance
from training.metrics import NO_CONTACT, Evaluation, evaluate, top_fraction
from training.plots import (
    make_figures,
    plot_calibration,
    plot_gains,
    plot_importance,
    plot_precision_recall,
    plot_profit,
    plot_roc,
    thinned,
)
from training.report import render_report, write_artifacts

ROOT = Path(__file__).resolve().parents[3]
COSTS = {"retention_cost": 10.0, "customer_value": 200.0}


def _calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels drawn from them: calibrated by construction."""
    rng = np.random.default_rng(seed)
    proba = rng.beta(1.5, 4.0, size=n)
    return proba, (rng.random(n) < proba).astype(int)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _customers(n: int, seed: int, driver: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Feature rows like the feature store's, with churn driven by recency or by another feature."""
    rng = np.random.default_rng(seed)
    days = rng.exponential(30.0, n)
    days[rng.random(n) < 0.05] = np.nan  # never purchased
    other = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "purchases_days_since_last": days,
            "service_complaints_30d": other,
            "noise": rng.normal(size=n),
            "plan": rng.choice(["basic", "pro", "team"], n),
        }
    )
    logit = (np.nan_to_num(days, nan=150.0) - 30.0) / 12.0 if driver == "recency" else 2.5 * other
    return frame, (rng.random(n) < _sigmoid(logit)).astype(int)


# --- ranking and lift ---------------------------------------------------------------------------


def test_perfect_scores() -> None:
    y = np.zeros(1000, dtype=int)
    y[:200] = 1
    np.random.default_rng(0).shuffle(y)

    ev = evaluate(y, y.astype(float), **COSTS)

    assert ev.roc_auc == 1.0
    assert ev.pr_auc == 1.0
    assert ev.brier == 0.0
    assert ev.log_loss < 1e-12
    assert ev.lift == pytest.approx(1 / 0.2)  # the top decile is all churners
    assert ev.capture == pytest.approx(100 / 200)


def test_lift_and_capture_on_a_constructed_example() -> None:
    y = np.zeros(20, dtype=int)
    y[[0, 5, 6, 7]] = 1  # 4 churners, base rate 0.2
    proba = np.linspace(0.99, 0.01, 20)  # row 0 highest, then row 1, ...

    lift, capture = top_fraction(y, proba, 0.1)  # top 2 rows: 0 (churner) and 1

    assert capture == pytest.approx(1 / 4)
    assert lift == pytest.approx((1 / 2) / (4 / 20))
    assert top_fraction(y, proba, 0.4) == pytest.approx(((4 / 8) / 0.2, 1.0))  # top 8 rows hold all 4


def test_ties_at_the_cut_count_their_expected_share() -> None:
    y = np.array([1, 0] * 50)
    lift, capture = top_fraction(y, np.full(100, 0.3), 0.1)
    assert lift == pytest.approx(1.0)
    assert capture == pytest.approx(0.1)


def test_random_scores_rank_like_chance() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(20_000) < 0.2).astype(int)

    ev = evaluate(y, rng.random(20_000), **COSTS)

    assert ev.roc_auc == pytest.approx(0.5, abs=0.02)
    assert ev.pr_auc == pytest.approx(0.2, abs=0.02)
    assert ev.lift == pytest.approx(1.0, abs=0.15)
    assert ev.capture == pytest.approx(0.1, abs=0.015)


def test_metrics_are_flat_floats_for_mlflow() -> None:
    proba, y = _calibrated(2000, seed=2)
    metrics = evaluate(y, proba, **COSTS, lift_fraction=0.05).metrics()

    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "lift_top5", "capture_top5", "ece"):
        assert name in metrics
    assert {"best_threshold", "best_profit", "expected_best_threshold", "expected_best_profit"} <= metrics.keys()
    assert all(isinstance(value, float) for value in metrics.values())


def test_one_class_leaves_ranking_metrics_undefined() -> None:
    ev = evaluate(np.zeros(50, dtype=int), np.linspace(0, 1, 50), **COSTS)
    assert np.isnan(ev.roc_auc) and np.isnan(ev.pr_auc) and np.isnan(ev.lift)
    assert ev.best_threshold == NO_CONTACT  # nobody to save: contact nobody


@pytest.mark.parametrize(
    ("y", "proba", "message"),
    [
        ([0, 2, 1], [0.1, 0.2, 0.3], "0/1"),
        ([0, 1, 1], [0.1, 1.2, 0.3], r"\[0, 1\]"),
        ([0, 1, 1], [0.1, np.nan, 0.3], "NaN"),
        ([0, 1, 1], [0.1, 0.2], "shape"),
    ],
)
def test_bad_inputs_are_refused(y: list[int], proba: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(y, proba, **COSTS)


# --- calibration metrics --------------------------------------------------------------------------


def test_ece_is_small_when_calibrated_and_large_when_not() -> None:
    proba, y = _calibrated(20_000, seed=3)

    calibrated = evaluate(y, proba, **COSTS)
    squashed = evaluate(y, proba**3, **COSTS)

    assert calibrated.ece < 0.02
    assert squashed.ece > 0.15
    assert calibrated.calibration_true.size == calibrated.calibration_pred.size == 10
    weights = np.full(10, 0.1)  # 10 quantile bins of distinct scores hold a tenth of the rows each
    manual = np.sum(weights * np.abs(calibrated.calibration_true - calibrated.calibration_pred))
    assert calibrated.ece == pytest.approx(manual, rel=1e-3)


# --- profit ---------------------------------------------------------------------------------------


def test_profit_maximising_threshold_matches_hand_computation() -> None:
    proba = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.15])
    y = np.array([1, 1, 0, 1, 0, 0])
    # Each contact costs 10, each contacted churner saves 0.5 * 100 = 50. Contacting the top k:
    # k=1: 40, k=2: 80, k=3: 70, k=4: 110, k=5: 100, k=6: 90 -> best k=4: threshold in (0.3, 0.6].
    ev = evaluate(y, proba, retention_cost=10.0, customer_value=100.0, success_rate=0.5)

    assert ev.best_profit == pytest.approx(110.0)
    assert ev.best_contacted == 4
    assert ev.best_threshold == pytest.approx(0.6)  # ties go to the highest threshold of the grid

    # Expected: p * 50 - 10 per contact = 35, 30, 25, 20, 5, -2.5 -> contact the top 5.
    assert ev.expected_best_profit == pytest.approx(115.0)
    assert ev.expected_best_threshold == pytest.approx(0.3)
    assert ev.profit_at_expected_threshold == pytest.approx(100.0)


def test_profit_curve_matches_its_formula_with_per_row_values() -> None:
    rng = np.random.default_rng(4)
    proba, y = _calibrated(300, seed=4)
    value = rng.uniform(50, 500, 300)

    ev = evaluate(y, proba, retention_cost=12.0, customer_value=value, success_rate=0.3)

    for t, contacted, profit, expected in zip(ev.thresholds, ev.contacted, ev.profit, ev.profit_expected, strict=True):
        chosen = proba >= t
        assert contacted == chosen.sum()
        assert profit == pytest.approx(np.sum(y[chosen] * 0.3 * value[chosen] - 12.0))
        assert expected == pytest.approx(np.sum(proba[chosen] * 0.3 * value[chosen] - 12.0))
    assert ev.best_profit == pytest.approx(ev.profit.max())
    assert ev.thresholds[-1] == NO_CONTACT and ev.contacted[-1] == 0


def test_contact_nobody_when_contacting_costs_more_than_it_saves() -> None:
    proba, y = _calibrated(1000, seed=5)

    ev = evaluate(y, proba, retention_cost=60.0, customer_value=100.0, success_rate=0.5)  # saves at most 50

    assert ev.best_threshold == NO_CONTACT
    assert ev.best_profit == 0.0
    assert ev.best_contacted == 0
    assert ev.expected_best_threshold == NO_CONTACT
    assert ev.expected_best_profit == 0.0


def test_expected_profit_peaks_near_the_break_even_probability() -> None:
    proba, y = _calibrated(20_000, seed=6)
    ev = evaluate(y, proba, retention_cost=20.0, customer_value=200.0, success_rate=0.5)  # break-even p = 0.2
    assert ev.expected_best_threshold == pytest.approx(0.2, abs=0.011)


# --- calibrators ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_repairs_squashed_probabilities(method: str) -> None:
    proba, y = _calibrated(6000, seed=7)
    squashed = proba**3
    fit_rows, test_rows = slice(0, 3000), slice(3000, None)

    calibrator = fit_calibrator(squashed[fit_rows], y[fit_rows], method=method)  # type: ignore[arg-type]
    repaired = calibrator.transform(squashed[test_rows])

    before = log_loss(y[test_rows], squashed[test_rows])
    after = log_loss(y[test_rows], repaired)
    assert after < before - 0.2
    assert after == pytest.approx(log_loss(y[test_rows], proba[test_rows]), abs=0.02)
    assert np.all(np.diff(calibrator.transform(np.linspace(0, 1, 50))) >= 0)  # monotone
    restored = pickle.loads(pickle.dumps(calibrator))
    np.testing.assert_array_equal(restored.transform(squashed[test_rows]), repaired)


def test_should_calibrate_only_when_it_helps() -> None:
    proba, y = _calibrated(4000, seed=8)

    squashed = should_calibrate(proba**3, y, seed=0)
    calibrated = should_calibrate(proba, y, seed=0)

    assert squashed.calibrate
    assert squashed.log_loss_calibrated < squashed.log_loss_raw
    assert squashed.brier_calibrated < squashed.brier_raw
    assert squashed.method in {"isotonic", "sigmoid"}
    assert not calibrated.calibrate
    assert "not worth it" in calibrated.reason
    assert squashed.metrics()["calibration_applied"] == 1.0


def test_should_calibrate_says_no_without_enough_churners() -> None:
    y = np.zeros(100, dtype=int)
    y[:3] = 1
    decision = should_calibrate(np.linspace(0, 1, 100), y, n_splits=5)
    assert not decision.calibrate and decision.method is None


# --- baselines ------------------------------------------------------------------------------------


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    return evaluate(y, scores, **COSTS).roc_auc


def test_logistic_baseline_beats_recency_when_churn_follows_another_feature() -> None:
    frame, y = _customers(4000, seed=9, driver="other")
    train, test = frame.iloc[:2000], frame.iloc[2000:].reset_index(drop=True)

    scores = baseline_scores(train, y[:2000], test)

    assert set(scores) == {"logistic_regression", "recency_rule"}
    assert _auc(y[2000:], scores["logistic_regression"]) > 0.8
    assert _auc(y[2000:], scores["logistic_regression"]) > _auc(y[2000:], scores["recency_rule"]) + 0.2


def test_recency_rule_ranks_well_when_churn_follows_recency() -> None:
    frame, y = _customers(4000, seed=10, driver="recency")
    train, test = frame.iloc[:2000], frame.iloc[2000:].reset_index(drop=True)

    scores = baseline_scores(train, y[:2000], test)

    assert _auc(y[2000:], scores["recency_rule"]) > 0.7
    rule = scores["recency_rule"]
    assert rule.min() > 0 and rule.max() <= 1.0
    assert (rule[test["purchases_days_since_last"].isna().to_numpy()] == rule.max()).all()  # never purchased


def test_recency_rule_puts_missing_at_highest_risk() -> None:
    scores = recency_rule(pd.Series([5.0, np.nan, 40.0, 5.0]))
    assert scores[1] == scores.max()
    assert scores[2] > scores[0] == scores[3]


def test_recency_rule_falls_back_to_engagement_and_is_skipped_without_either() -> None:
    frame, y = _customers(600, seed=11, driver="recency")
    fallback = frame.rename(columns={"purchases_days_since_last": "engagement_days_since_last_activity"})
    neither = frame.drop(columns="purchases_days_since_last")

    with_fallback = baseline_scores(fallback.iloc[:300], y[:300], fallback.iloc[300:])
    without = baseline_scores(neither.iloc[:300], y[:300], neither.iloc[300:])

    np.testing.assert_array_equal(
        with_fallback["recency_rule"], recency_rule(fallback["engagement_days_since_last_activity"].iloc[300:])
    )
    assert set(without) == {"logistic_regression"}


def test_logistic_baseline_ignores_unseen_categories() -> None:
    frame, y = _customers(400, seed=12, driver="other")
    test = frame.iloc[200:].assign(plan="enterprise")  # never seen in training
    scores = baseline_scores(frame.iloc[:200], y[:200], test)
    assert scores["logistic_regression"].shape == (200,)
    assert np.isfinite(scores["logistic_regression"]).all()


# --- SHAP importance ------------------------------------------------------------------------------


def test_shap_importance_ranks_the_informative_feature_first() -> None:
    rng = np.random.default_rng(13)
    n = 2000
    frame = pd.DataFrame(
        {
            "noise_a": rng.normal(size=n),
            "signal": rng.normal(size=n),
            "noise_b": rng.uniform(size=n),
            "plan": rng.choice(["basic", "pro", "team"], n),
        }
    )
    y = (rng.random(n) < _sigmoid(2.5 * frame["signal"].to_numpy())).astype(int)
    x = model_frame(frame, list(frame.columns))
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": 0, "nthread": 1}
    booster = xgb.train(params, dmatrix(x, label=y), num_boost_round=30)

    importance = shap_importance(booster, frame)

    assert importance.index[0] == "signal"
    assert sorted(importance.index) == sorted(frame.columns)  # one per feature, the bias excluded
    assert importance.is_monotonic_decreasing
    assert importance["signal"] > 5 * importance.drop("signal").max()
    pd.testing.assert_series_equal(shap_importance(booster, dmatrix(x)), importance)


def test_held_out_importance_explains_a_seeded_sample_of_the_validation_rows_or_else_the_training_rows() -> None:
    rng = np.random.default_rng(15)
    n = EXPLAINED_ROWS + 1000
    frame = pd.DataFrame({"signal": rng.normal(size=n), "noise": rng.normal(size=n)})
    y = (rng.random(n) < _sigmoid(2.0 * frame["signal"].to_numpy())).astype(int)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": 0, "nthread": 1}
    booster = xgb.train(params, dmatrix(model_frame(frame, list(frame.columns)), label=y), num_boost_round=10)
    sample = frame.sample(n=EXPLAINED_ROWS, random_state=3)

    of_valid = held_out_importance(booster, frame, frame.head(0), seed=3)
    of_train = held_out_importance(booster, frame.head(0), frame, seed=3)

    pd.testing.assert_series_equal(of_valid, shap_importance(booster, sample))
    pd.testing.assert_series_equal(of_train, of_valid)
    small = frame.head(100)
    pd.testing.assert_series_equal(held_out_importance(booster, small, frame, seed=3), shap_importance(booster, small))
    assert not held_out_importance(booster, frame, frame.head(0), seed=4).equals(of_valid)  # another sample


# --- plots and report -----------------------------------------------------------------------------


def test_thinned_curves_keep_their_ends_and_shape_to_a_cell_and_short_curves_whole() -> None:
    proba, y = _calibrated(300_000, seed=16)
    fpr, tpr, _ = roc_curve(y, proba, drop_intermediate=False)
    x, y_thin = thinned(fpr, tpr, cells=1000)
    assert len(fpr) > 100_000 and len(x) <= 4_000
    assert (x[0], y_thin[0], x[-1], y_thin[-1]) == (fpr[0], tpr[0], fpr[-1], tpr[-1])
    assert np.abs(np.interp(fpr, x, y_thin) - tpr).max() <= 1 / 1000  # no point strays a cell from the line
    precision, recall, _ = precision_recall_curve(y, proba)
    r, p = thinned(recall, precision, cells=1000)
    kept = np.isin(recall, r) & np.isin(precision, p)
    assert kept[0] and kept[-1] and len(r) < len(recall) / 10
    cells = np.floor(recall * 1000) * 1001 + np.floor(precision * 1000)
    assert set(np.floor(r * 1000) * 1001 + np.floor(p * 1000)) == set(cells)  # every cell the curve visits is drawn
    short = np.linspace(0, 1, 50)
    np.testing.assert_array_equal(thinned(short, short**2)[1], short**2)


@pytest.fixture(scope="module")
def evaluated() -> tuple[Evaluation, dict[str, Evaluation], pd.Series]:
    proba, y = _calibrated(1500, seed=14)
    rng = np.random.default_rng(14)
    baselines = {
        "logistic_regression": evaluate(y, np.clip(proba + rng.normal(0, 0.2, proba.size), 0, 1), **COSTS),
        "recency_rule": evaluate(y, rng.random(proba.size), **COSTS),
    }
    importance = pd.Series([0.5, 0.2, 0.1], index=["purchases_days_since_last", "plan", "noise"])
    return evaluate(y, proba, **COSTS), baselines, importance


def test_every_figure_is_titled_and_labelled(evaluated: tuple[Evaluation, dict[str, Evaluation], pd.Series]) -> None:
    ev, baselines, importance = evaluated
    figures = [
        plot_roc(ev, baselines),
        plot_precision_recall(ev, baselines),
        plot_calibration(ev),
        plot_gains(ev, baselines),
        plot_profit(ev),
        plot_importance(importance),
    ]
    for fig in figures:
        ax = fig.axes[0]
        assert ax.get_title()
        assert ax.get_xlabel() and ax.get_ylabel()
        if len(ax.get_lines()) + len(ax.containers) > 1:
            assert ax.get_legend() is not None
    legend = figures[0].axes[0].get_legend()
    assert legend is not None
    roc_labels = [text.get_text() for text in legend.get_texts()]
    assert any(label.startswith("recency_rule") for label in roc_labels)


def test_importance_chart_shows_at_most_twenty_features() -> None:
    importance = pd.Series(np.arange(30, dtype=float), index=[f"f{i}" for i in range(30)])
    bars = plot_importance(importance).axes[0].patches
    assert len(bars) == 20


class _Page(HTMLParser):
    """What the report tests look at in a page; an end tag that closes no open element fails."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.doctype = ""
        self.open: list[str] = []
        self.title = ""
        self.cells: list[tuple[str, str]] = []  # (td or th, its text)
        self.tables = 0
        self.images: list[dict[str, str | None]] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.open.append(tag)
        if tag in ("td", "th"):
            self.cells.append((tag, ""))
        self.tables += tag == "table"
        if tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        where = self.open[-1] if self.open else ""
        if where in ("td", "th"):
            self.cells[-1] = (where, self.cells[-1][1] + data)
        elif where == "title":
            self.title += data


def _page(document: str) -> _Page:
    """The parsed page, asserting it is a well-formed HTML document (every element closed in order)."""
    page = _Page()
    page.feed(document)
    page.close()
    assert page.doctype.lower() == "doctype html"
    assert not page.open, f"unclosed elements: {page.open}"
    return page


def test_report_holds_every_metric_and_baseline(
    evaluated: tuple[Evaluation, dict[str, Evaluation], pd.Series],
) -> None:
    ev, baselines, importance = evaluated
    hostile = 'Churn <model> v3 <script>alert("x")</script>'

    report = render_report(
        ev, baselines=baselines, importance=importance, figures={"ROC <i>": "roc.png"}, title=hostile
    )

    page = _page(report)
    assert page.tables == 2  # the metrics and the top features
    for name in ev.metrics():
        assert ("td", name) in page.cells
    for name in baselines:
        assert ("th", name) in page.cells
    assert ("td", "purchases_days_since_last") in page.cells
    assert page.images == [{"src": "roc.png", "alt": "ROC <i>"}]
    assert page.title == hostile  # shown as text, never as markup
    assert "Churn &lt;model&gt; v3" in report
    assert "<script>" not in report and "<i>" not in report
    assert f"{ev.best_threshold:.2f}" in report


def test_write_artifacts_saves_pngs_and_a_self_contained_report(
    evaluated: tuple[Evaluation, dict[str, Evaluation], pd.Series], tmp_path: Path
) -> None:
    ev, baselines, importance = evaluated

    written = write_artifacts(tmp_path / "evaluation", ev, baselines, importance)

    names = {path.name for path in written}
    assert names == {f"{stem}.png" for stem in make_figures(ev, baselines, importance)} | {"report.html"}
    assert len(names) == 7
    for path in written:
        assert path.parent == tmp_path / "evaluation" and path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "evaluation" / "report.html").read_text(encoding="utf-8")
    assert report.count("data:image/png;base64,") == 6
    page = _page(report)
    assert len(page.images) == 6 and all(str(image["src"]).startswith("data:image/png;") for image in page.images)
    assert ("th", "logistic_regression") in page.cells and page.title == "Churn model evaluation"


def test_the_plotting_library_is_imported_by_the_warm_up_not_by_the_module() -> None:
    code = (
        "import sys; import training.plots as p; a = 'matplotlib' in sys.modules; p.warm_up(); "
        "print(a, 'matplotlib.figure' in sys.modules, 'matplotlib.backends.backend_agg' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.split() == ["False", "True", "True"]
