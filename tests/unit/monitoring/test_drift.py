"""The drift report: real Evidently reports on small seeded data (both engines), the verdict rule, the edge cases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from evidently import DataDefinition, Dataset, Report
from evidently.metrics import ValueDrift

from core.monitoring_settings import DriftTests
from monitoring.drift import DriftResult, Engine, drift_report, read_columns
from monitoring.drift_methods import CONSTANT_REFERENCE_METHOD, MISSING_SHARE, ColumnTest, choose_tests, is_drifted
from monitoring.summary import ColumnResult, PredictionDrift

ROWS = 3000
ENGINES: tuple[Engine, ...] = ("fast", "public")


def _frame(
    rng: np.random.Generator, n: int = ROWS, shift: float = 0.0, plan_p: tuple[float, ...] = (0.5, 0.3, 0.2)
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": rng.normal(24, 6, n) + shift * 6,
            "spend": rng.lognormal(3, 0.5, n),
            "events": rng.poisson(4, n),
            "ratio": rng.uniform(0, 1, n),
            "plan": pd.Categorical(rng.choice(["basic", "plus", "pro"], n, p=plan_p)),
            "region": rng.choice(["north", "south", "east", "west"], n).astype(object),
            "auto_renew": rng.random(n) < 0.6,
            "churn_probability": rng.beta(2, 8, n),
        }
    )


@pytest.fixture(scope="module")
def shifted() -> tuple[pd.DataFrame, pd.DataFrame]:
    """tenure +0.5 sd and plan mix changed in current; everything else from the same distributions."""
    rng = np.random.default_rng(11)
    return _frame(rng), _frame(rng, shift=0.5, plan_p=(0.3, 0.3, 0.4))


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Engine:
    """Each test that takes it runs with the adapter's metrics and with Evidently's own."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def report(shifted: tuple[pd.DataFrame, pd.DataFrame], engine: Engine) -> tuple[Any, DriftResult]:
    reference, current = shifted
    return drift_report(reference, current, prediction_column="churn_probability", engine=engine)


def _drifted(result: DriftResult) -> list[str]:
    return [c.column for c in result.columns if c.drifted]


def test_shifted_numeric_and_categorical_columns_are_flagged_and_nothing_else(report: tuple[Any, DriftResult]) -> None:
    _, result = report
    assert _drifted(result) == ["tenure", "plan"]
    assert [c.column for c in result.columns] == ["tenure", "spend", "events", "ratio", "plan", "region", "auto_renew"]
    by_name = {c.column: c for c in result.columns}
    assert by_name["tenure"].method == "wasserstein" and by_name["tenure"].value == pytest.approx(0.5, abs=0.1)
    assert by_name["plan"].kind == "categorical" and by_name["plan"].method == "jensenshannon"
    assert max(c.value for c in result.columns if not c.drifted) < 0.06
    assert (result.n_columns, result.drifted_columns) == (7, 2)
    assert result.drifted_share == pytest.approx(2 / 7)
    assert result.status == "warning"  # 2/7 < 0.3 and the prediction did not drift


def test_prediction_is_tested_separately_and_not_drifted(
    report: tuple[Any, DriftResult], shifted: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, result = report
    reference, current = shifted
    assert "churn_probability" not in [c.column for c in result.columns]
    assert result.prediction is not None
    assert (result.prediction.method, result.prediction.threshold) == ("wasserstein", 0.2)
    assert not result.prediction.drifted and result.prediction.value < 0.06
    assert result.prediction.reference_mean == pytest.approx(reference["churn_probability"].mean())
    assert result.prediction.current_mean == pytest.approx(current["churn_probability"].mean())


def test_prediction_drift_is_detected_and_makes_the_status_drift(engine: Engine) -> None:
    rng = np.random.default_rng(3)
    reference, current = _frame(rng), _frame(rng)
    current["churn_probability"] = rng.beta(3, 6, ROWS)  # mean 0.2 -> 0.33
    _, result = drift_report(reference, current, prediction_column="churn_probability", engine=engine)
    assert result.prediction is not None and result.prediction.drifted
    assert result.prediction.current_mean == pytest.approx(1 / 3, abs=0.02)
    assert result.drifted_columns == 0
    assert result.status == "drift"


def test_the_snapshot_holds_one_explicit_value_drift_per_column_and_a_drifted_count(
    report: tuple[Any, DriftResult], engine: Engine
) -> None:
    snapshot, _ = report
    metrics = snapshot.dict()["metrics"]
    value_drift, drifted_count = {
        "fast": ("evidently:metric_v2:FastValueDrift", "evidently:metric_v2:FastDriftedColumnsCount"),
        "public": ("evidently:metric_v2:ValueDrift", "evidently:metric_v2:DriftedColumnsCount"),
    }[engine]
    drifts = {m["config"]["column"]: m["config"] for m in metrics if m["config"]["type"] == value_drift}
    assert set(drifts) == {"tenure", "spend", "events", "ratio", "plan", "region", "auto_renew", "churn_probability"}
    assert drifts["spend"]["method"] == "wasserstein" and drifts["spend"]["threshold"] == 0.15
    assert drifts["region"]["method"] == "jensenshannon"
    (count,) = [m for m in metrics if m["config"]["type"] == drifted_count]
    assert count["value"] == {"count": 2, "share": pytest.approx(2 / 7)}


def test_html_is_written_with_every_column_and_verdict(
    report: tuple[Any, DriftResult], engine: Engine, tmp_path: Path
) -> None:
    snapshot, _ = report
    path = tmp_path / "drift.html"
    snapshot.save_html(str(path))
    html = path.read_text()
    assert len(html) > 10_000
    if engine == "fast":  # the adapter's chart titles
        named, verdict, drift, no_drift = "{column}: ", "{column}: {verdict} (wasserstein", "DRIFT", "no drift"
    else:  # the counters of Evidently's own ValueDrift widgets
        named = "Drift in column '{column}'"
        verdict = named + '", "label": "Data drift {verdict}. Drift detection method: Wasserstein'
        drift, no_drift = "detected", "not detected"
    for column in ("tenure", "spend", "events", "ratio", "plan", "region", "auto_renew", "churn_probability"):
        assert named.format(column=column) in html
    assert verdict.format(column="tenure", verdict=drift) in html
    assert verdict.format(column="spend", verdict=no_drift) in html


@pytest.mark.parametrize(
    ("method", "threshold", "value", "drifted"),
    [
        ("ks", 0.05, 0.01, True),
        ("ks", 0.05, 0.05, False),
        ("chisquare", 0.05, 0.2, False),
        ("z", 0.05, 0.049, True),
        ("K-S p_value", 0.05, 0.01, True),  # the display name Evidently records for an automatic method
        ("wasserstein", 0.1, 0.1, True),
        ("wasserstein", 0.1, 0.0999, False),
        ("jensenshannon", 0.1, 0.5, True),
        ("psi", 0.2, 0.1, False),
        ("kl_div", 0.1, 0.3, True),
        ("hellinger", 0.1, 0.01, False),
        ("Wasserstein distance (normed)", 0.1, 0.2, True),
        (MISSING_SHARE, 0.1, 1.0, True),
        (MISSING_SHARE, 0.1, 0.0, False),
    ],
)
def test_is_drifted_reads_p_values_and_distances_the_right_way_round(
    method: str, threshold: float, value: float, drifted: bool
) -> None:
    assert is_drifted(method, threshold, value) is drifted


def test_is_drifted_rejects_unknown_methods_and_non_numbers() -> None:
    with pytest.raises(ValueError, match="unknown drift method 'magic'"):
        is_drifted("magic", 0.1, 0.5)
    with pytest.raises(ValueError, match="not a finite number"):
        is_drifted("wasserstein", 0.1, float("nan"))


def test_read_columns_takes_method_and_threshold_from_the_snapshot() -> None:
    def drift(kind: str, column: str, value: float, **config: object) -> dict[str, object]:
        return {"config": {"type": f"evidently:metric_v2:{kind}", "column": column, **config}, "value": value}

    snapshot = {
        "metrics": [
            drift("ValueDrift", "a", 0.03, method="ks", threshold=0.01),
            drift("FastValueDrift", "b", 0.25, method="psi", threshold=0.2),
            drift("MeanValue", "a", 3.0),
        ]
    }
    tests = [ColumnTest("a", "numeric", "wasserstein", 0.1), ColumnTest("b", "categorical", "jensenshannon", 0.1)]
    assert read_columns(snapshot, tests) == [
        ColumnResult(column="a", kind="numeric", method="ks", threshold=0.01, value=0.03, drifted=False),
        ColumnResult(column="b", kind="categorical", method="psi", threshold=0.2, value=0.25, drifted=True),
    ]
    with pytest.raises(ValueError, match="no drift metric for column 'c'"):
        read_columns(snapshot, [ColumnTest("c", "numeric", "wasserstein", 0.1)])


def test_choose_tests_by_dtype_and_methods() -> None:
    reference = pd.DataFrame(
        {
            "f": [1.5, 2.5, 3.5],
            "i": [1, 2, 3],
            "o": ["a", "b", "a"],
            "s": pd.array(["a", "b", None], dtype="string"),
            "c": pd.Categorical(["x", "y", "x"]),
            "b": [True, False, True],
            "const": [4.0, 4.0, np.nan],
        }
    )
    methods = DriftTests(numeric="ks", numeric_threshold=0.01, categorical="psi", categorical_threshold=0.2)
    tests = choose_tests(reference, ["f", "i", "o", "s", "c", "b", "const"], methods)
    assert [(t.column, t.kind, t.method, t.threshold) for t in tests] == [
        ("f", "numeric", "ks", 0.01),
        ("i", "numeric", "ks", 0.01),
        ("o", "categorical", "psi", 0.2),
        ("s", "categorical", "psi", 0.2),
        ("c", "categorical", "psi", 0.2),
        ("b", "categorical", "psi", 0.2),
        ("const", "numeric", "ks", 0.01),  # a p-value test copes with a constant column
    ]
    default = choose_tests(reference, ["f", "const", "o"], DriftTests())
    assert [(t.method, t.threshold) for t in default] == [
        ("wasserstein", 0.15),
        CONSTANT_REFERENCE_METHOD,  # Wasserstein is normed by the std, 0 here
        ("jensenshannon", 0.1),
    ]


def test_choose_tests_rejects_bad_methods_and_columns() -> None:
    reference = pd.DataFrame({"f": [1.0, 2.0], "o": ["a", "b"], "t": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    with pytest.raises(ValueError, match="'wasserstein' cannot test categorical column 'o'"):
        choose_tests(reference, ["o"], DriftTests(categorical="wasserstein"))
    with pytest.raises(ValueError, match="'nope' cannot test numeric column 'f'"):
        choose_tests(reference, ["f"], DriftTests(numeric="nope"))
    with pytest.raises(ValueError, match=r"not in the reference data: \['zz'\]"):
        choose_tests(reference, ["zz"], DriftTests())
    with pytest.raises(ValueError, match="'t' has dtype datetime64"):
        choose_tests(reference, ["t"], DriftTests())


def test_status_policy() -> None:
    def result(drifted: int, n: int, prediction_drifted: bool | None = None) -> DriftResult:
        prediction = None
        if prediction_drifted is not None:
            prediction = PredictionDrift(
                method="wasserstein", threshold=0.1, value=0.5 if prediction_drifted else 0.01,
                drifted=prediction_drifted, reference_mean=0.2, current_mean=0.3,
            )  # fmt: skip
        return DriftResult([], n, drifted, drifted / n, prediction, drift_share=0.3)

    assert result(0, 10).status == "ok"
    assert result(2, 10).status == "warning"
    assert result(3, 10).status == "drift"
    assert result(0, 10, prediction_drifted=True).status == "drift"
    assert result(0, 10, prediction_drifted=False).status == "ok"


def test_no_shared_column_empty_frames_and_missing_columns_are_errors() -> None:
    rng = np.random.default_rng(5)
    reference = _frame(rng, 200)
    with pytest.raises(ValueError, match=r"share no feature column.*'tenure'.*\['other'\]"):
        drift_report(reference, pd.DataFrame({"other": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="current has 0"):
        drift_report(reference, reference.iloc[:0])
    with pytest.raises(ValueError, match="reference has 0"):
        drift_report(reference.iloc[:0], reference)
    with pytest.raises(ValueError, match=r"not in the current data: \['spend'\]"):
        drift_report(reference, reference.drop(columns="spend"), columns=["tenure", "spend"])
    with pytest.raises(ValueError, match="prediction column 'score' not in the reference data"):
        drift_report(reference, reference, prediction_column="score")
    with pytest.raises(ValueError, match="'tenure' is also among the feature columns"):
        drift_report(reference, reference, columns=["tenure"], prediction_column="tenure")
    current = reference.assign(spend=reference["spend"].astype(str))
    with pytest.raises(ValueError, match="'spend' is numeric in the reference but object in the current"):
        drift_report(reference, current)


def test_a_column_without_values_is_tested_on_its_missing_share(engine: Engine) -> None:
    rng = np.random.default_rng(6)
    reference, current = _frame(rng, 1000), _frame(rng, 1000)
    current["spend"] = np.nan  # went missing
    current["plan"] = pd.Categorical([None] * 1000, categories=["basic", "plus", "pro"])
    reference["ratio"] = np.nan  # missing on both sides
    current["ratio"] = np.inf  # infinities count as missing, as in Evidently
    snapshot, result = drift_report(reference, current, engine=engine)
    by_name = {c.column: c for c in result.columns}
    assert (by_name["spend"].method, by_name["spend"].value, by_name["spend"].drifted) == (MISSING_SHARE, 1.0, True)
    assert (by_name["plan"].method, by_name["plan"].drifted) == (MISSING_SHARE, True)
    assert (by_name["ratio"].method, by_name["ratio"].value, by_name["ratio"].drifted) == (MISSING_SHARE, 0.0, False)
    assert _drifted(result) == ["spend", "plan"]
    assert by_name["tenure"].method == "wasserstein"


def test_partly_missing_values_are_dropped_not_drift(engine: Engine) -> None:
    rng = np.random.default_rng(7)
    reference, current = _frame(rng), _frame(rng)
    current.loc[current.sample(frac=0.3, random_state=1).index, ["tenure", "region"]] = np.nan
    _, result = drift_report(reference, current, columns=["tenure", "region"], engine=engine)
    assert _drifted(result) == []


def test_a_constant_reference_column_neither_crashes_nor_flags_spuriously(engine: Engine) -> None:
    rng = np.random.default_rng(8)
    n = 2000
    reference = pd.DataFrame({"flag": np.zeros(n), "x": rng.normal(size=n)})
    same = reference.assign(x=rng.normal(size=n))
    few = same.assign(flag=np.where(np.arange(n) < 10, 1.0, 0.0))  # 0.5 % ones
    many = same.assign(flag=np.where(np.arange(n) < 400, 1.0, 0.0))  # 20 % ones
    for current, drifted in ((same, False), (few, False), (many, True)):
        _, result = drift_report(reference, current, engine=engine)
        flag = result.columns[0]
        assert (flag.column, flag.method) == ("flag", "jensenshannon")
        assert flag.drifted is drifted, (flag, current["flag"].mean())
        assert not result.columns[1].drifted
    # Evidently's Wasserstein, normed by max(std, 0.001), would call even 0.5 % ones a huge drift:
    definition = DataDefinition(numerical_columns=["flag"])
    raw = Report([ValueDrift(column="flag", method="wasserstein", threshold=0.1)]).run(
        Dataset.from_pandas(few[["flag"]], data_definition=definition),
        Dataset.from_pandas(reference[["flag"]], data_definition=definition),
    )
    (wasserstein,) = raw.dict()["metrics"]
    assert wasserstein["value"] == pytest.approx(5.0) and is_drifted("wasserstein", 0.1, wasserstein["value"])


def test_other_methods_run_through_evidently(engine: Engine) -> None:
    rng = np.random.default_rng(9)
    reference, current = _frame(rng), _frame(rng, shift=0.5)
    methods = DriftTests(numeric="ks", numeric_threshold=0.05, categorical="chisquare", categorical_threshold=0.05)
    _, result = drift_report(reference, current, columns=["tenure", "spend", "region"], methods=methods, engine=engine)
    by_name = {c.column: c for c in result.columns}
    assert by_name["tenure"].method == "ks" and by_name["tenure"].value < 1e-6 and by_name["tenure"].drifted
    assert by_name["region"].method == "chisquare" and 0.0 <= by_name["region"].value <= 1.0
