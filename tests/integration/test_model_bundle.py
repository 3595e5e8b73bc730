"""The model bundle: one MLflow pyfunc model that any MLflow consumer loads, and the one champion loader."""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from mlflow import MlflowClient

from core import names
from model.bundle import ModelBundle, read_bundle, reference_sample, write_bundle
from model.calibration import calibrate
from model.champion import NoChampionError, load_champion, load_version
from model.matrix import dmatrix, model_frame, remember_categories
from model.pyfunc import log_bundle

FEATURES = ["visits_30d", "spend_90d", "plan"]
CATEGORIES = {"plan": ["basic", "plus", "pro"]}
CALIBRATION = {"method": "sigmoid", "slope": 0.8, "intercept": -0.3}


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "visits_30d": rng.poisson(4, n).astype(float),
            "spend_90d": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 30.0, n)),
            "plan": rng.choice(["basic", "plus", "pro", None], n),
        }
    )


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    train = _frame(400, seed=1)
    label = (train["visits_30d"] < 3).astype(int)
    matrix = dmatrix(model_frame(train, FEATURES, CATEGORIES), label=label)
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": 1, "nthread": 1}
    booster = remember_categories(xgb.train(params, matrix, num_boost_round=15), CATEGORIES)
    bundle = ModelBundle(booster, CALIBRATION)
    observed = pd.Timestamp("2025-03-03", tz="UTC") + pd.to_timedelta(np.arange(len(train)) % 4 * 7, unit="D")
    bundle.reference = reference_sample(bundle, train.assign(**{names.EVENT_TIMESTAMP: observed}), 100, seed=1)
    return bundle


def test_bundle_files_round_trip(bundle: ModelBundle, tmp_path: Path) -> None:
    rows = _frame(50, seed=2)
    again = read_bundle(write_bundle(bundle, tmp_path))
    np.testing.assert_array_equal(again.probabilities(rows), bundle.probabilities(rows))
    assert again.calibration == CALIBRATION and again.categories == CATEGORIES
    pd.testing.assert_frame_equal(again.reference, bundle.reference.reset_index(drop=True))  # type: ignore[union-attr]
    assert len(bundle.reference) == 100 and names.PREDICTION in bundle.reference  # type: ignore[arg-type]


def test_the_reference_holds_the_newest_dates_scored_by_the_bundle(bundle: ModelBundle) -> None:
    """Whole dates from the newest back until `size` rows, then `size` of them, with the bundle's probabilities."""
    rows = _frame(400, seed=5)
    observed = pd.Timestamp("2025-03-03", tz="UTC") + pd.to_timedelta(np.arange(400) % 4 * 7, unit="D")
    # 4 weekly dates of 100 rows each; visits_30d tells the rows apart.
    rows = rows.assign(**{names.EVENT_TIMESTAMP: observed, "visits_30d": np.arange(400.0)})
    for size, dates in ((100, 1), (150, 2), (250, 3), (1000, 4)):
        reference = reference_sample(bundle, rows, size, seed=2)
        assert list(reference.columns) == [*FEATURES, names.PREDICTION]
        assert len(reference) == min(size, 400)
        drawn = rows.loc[rows["visits_30d"].isin(reference["visits_30d"])]
        assert set(drawn[names.EVENT_TIMESTAMP]) == set(observed.unique()[-dates:]), size
        expected = calibrate(CALIBRATION, bundle.raw_probabilities(reference))
        np.testing.assert_allclose(reference[names.PREDICTION].to_numpy(), expected)


def test_a_registered_bundle_is_one_pyfunc_model_and_the_champion(
    bundle: ModelBundle, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("bundle", artifact_location=(tmp_path / "artifacts").as_uri())
    client = MlflowClient(uri)
    with pytest.raises(NoChampionError, match="run `churn train`"):
        load_champion(uri, "churn-test")
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught, mlflow.start_run(experiment_id=experiment) as run:
        warnings.simplefilter("always")
        mlflow.log_metric("test_roc_auc", 0.75)
        tags = {"calibration": "isotonic", "features": "a,b"}
        info = log_bundle(bundle, _frame(10, seed=3), registered_model_name="churn-test", version_tags=tags)
    # MLflow writes its warnings through a handler of its own, straight to stderr.
    said = [*"\n".join(capfd.readouterr()).splitlines(), *(str(w.message) for w in caught)]
    assert not [line for line in said if "example" in line.lower() and "WARNING" in line], said
    assert not [line for line in said if "pickle" in line.lower()], said  # logged from code, not pickled
    version = str(info.registered_model_version)
    registered = client.get_model_version("churn-test", version)
    assert registered.tags == tags and registered.run_id == run.info.run_id  # tagged as created, linked to its run
    client.set_registered_model_alias("churn-test", names.CHAMPION_ALIAS, version)

    rows = _frame(30, seed=4)
    # Any MLflow consumer: the alias alone gives calibrated probabilities, through the signature.
    served = mlflow.pyfunc.load_model("models:/churn-test@champion").predict(rows)
    np.testing.assert_allclose(served[names.PREDICTION].to_numpy(), bundle.probabilities(rows), rtol=1e-6)
    signature = mlflow.models.get_model_info("models:/churn-test@champion").signature
    assert signature.inputs.input_names() == FEATURES

    champion = load_champion(uri, "churn-test")
    assert (champion.version, champion.run_id) == (version, info.run_id)
    assert champion.metrics == {"test_roc_auc": 0.75}
    assert champion.bundle.calibration == CALIBRATION
    np.testing.assert_array_equal(champion.bundle.probabilities(rows), bundle.probabilities(rows))


def test_a_booster_logged_alone_is_refused_with_what_to_run(bundle: ModelBundle, tmp_path: Path) -> None:
    """An older platform registered the bare XGBoost model: the loader says to retrain, not a traceback."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("old", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.xgboost.log_model(bundle.booster, name="model", registered_model_name="churn-old")
    with pytest.raises(NoChampionError, match="not a model bundle.*churn train"):
        load_version(uri, "churn-old", str(info.registered_model_version))
