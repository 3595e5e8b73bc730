"""What POST /score_features does with the rows a caller sends: `serving.validation.validate_feature_rows`
(JSON rows) and `validate_feature_table` (an Arrow table of the same columns).

The numeric features are checked and converted in bulk; a bad value anywhere still gets the
message the value-by-value check gives, naming the row and the field.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import xgboost as xgb
from bentoml.exceptions import InvalidArgument

from crm.answers import score
from model.matrix import dmatrix, model_frame, remember_categories
from model.predictor import Predictor
from serving.validation import validate_feature_rows, validate_feature_table

TIERS = {"high": 0.5, "low": 0.0}
FEATURES = ["visits_30d", "plan", "spend"]
CATEGORIES = {"plan": ["basic", "pro"]}


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """A small real model with two numeric features around a categorical one."""
    rng = np.random.default_rng(3)
    train = pd.DataFrame(
        {"visits_30d": rng.poisson(4, 400).astype(float), "plan": rng.choice(["basic", "pro"], 400)}
    ).assign(spend=rng.gamma(2, 30, 400))
    label = (train["visits_30d"] + rng.normal(0, 1, 400) < 4).astype(int)
    matrix = dmatrix(model_frame(train, FEATURES, CATEGORIES), label=label)
    params = {"objective": "binary:logistic", "max_depth": 2, "seed": 3, "nthread": 1}
    booster = remember_categories(xgb.train(params, matrix, num_boost_round=5), CATEGORIES)
    return Predictor(booster, "1", top_reasons=2)


def rows() -> list[dict[str, Any]]:
    """Four valid rows as the endpoint's schema parses them: finite floats, strings, nulls."""
    out: list[dict[str, Any]] = [{"visits_30d": float(i), "plan": "pro", "spend": 10.5 * i} for i in range(4)]
    out[1]["spend"] = None
    out[2]["plan"] = None
    out[3]["plan"] = "gold"  # a category the model has not seen is valid (missing to the model)
    return out


def test_rows_become_typed_columns(predictor: Predictor) -> None:
    sent = rows()
    sent[0]["customer_id"] = "C0"
    columns = validate_feature_rows(predictor, sent)
    assert list(columns) == [*FEATURES, "customer_id"]
    for feature in ("visits_30d", "spend"):
        assert columns[feature].dtype == np.float64 and columns[feature].flags.c_contiguous
    assert columns["visits_30d"].tolist() == [0.0, 1.0, 2.0, 3.0]
    np.testing.assert_array_equal(columns["spend"], [0.0, math.nan, 21.0, 31.5])
    assert columns["plan"] == ["pro", "pro", None, "gold"]
    assert columns["customer_id"] == ["C0", None, None, None]
    assert "customer_id" not in validate_feature_rows(predictor, rows())


def test_columns_score_as_the_same_rows_in_a_frame(predictor: Predictor) -> None:
    sent = rows()
    columns = validate_feature_rows(predictor, sent)
    frame = pd.DataFrame(sent, columns=FEATURES)
    np.testing.assert_array_equal(predictor.model_outputs(columns), predictor.model_outputs(frame))
    assert score(predictor, columns, TIERS) == score(predictor, frame, TIERS)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("spend", "12.5", "rows[2].spend: expected a number, got the string '12.5'"),
        ("spend", "lots", "rows[2].spend: expected a number, got the string 'lots'"),
        ("spend", math.nan, "rows[2].spend: must be a finite number, got nan"),
        ("visits_30d", math.inf, "rows[2].visits_30d: must be a finite number, got inf"),
        ("visits_30d", -math.inf, "rows[2].visits_30d: must be a finite number, got -inf"),
        ("spend", [1.0], "rows[2].spend: expected a finite number, got [1.0]"),
        ("spend", 10**400, "rows[2].spend: expected a finite number, got 1000"),
        ("plan", 1.0, "rows[2].plan: expected a string (a category), got 1.0"),
        ("customer_id", 7.0, "rows[2].customer_id: expected a string"),
    ],
)
def test_a_bad_value_is_named_by_row_and_field(predictor: Predictor, field: str, value: Any, message: str) -> None:  # noqa: ANN401
    sent = rows()
    sent[2][field] = value
    with pytest.raises(InvalidArgument) as raised:
        validate_feature_rows(predictor, sent)
    assert str(raised.value).startswith(message)


def test_a_nan_beside_nulls_is_still_refused(predictor: Predictor) -> None:
    """The bulk check counts the nulls: a NaN sent as a number among them is not taken for one."""
    sent = rows()
    sent[0]["spend"] = None
    sent[3]["visits_30d"] = math.nan
    with pytest.raises(InvalidArgument, match=r"rows\[3\]\.visits_30d: must be a finite number"):
        validate_feature_rows(predictor, sent)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bogus": 1.0}, "rows[1]: unknown field(s) bogus"),
        ({"customer_id": "C1", "bogus": 1.0}, "rows[1]: unknown field(s) bogus"),
        ({"plan": ...}, "rows[1]: missing field(s) plan"),
        ({"spend": ..., "visits_30d": ...}, "rows[1]: missing field(s) spend, visits_30d"),
        ({"spend": ..., "bogus": 1.0}, "rows[1]: unknown field(s) bogus"),
        ({"plan": ..., "bogus": 1.0}, "rows[1]: unknown field(s) bogus"),
        ({"plan": ..., "customer_id": "C1"}, "rows[1]: missing field(s) plan"),
    ],
)
def test_unknown_and_missing_fields_are_named(predictor: Predictor, change: dict[str, Any], message: str) -> None:
    sent = rows()
    for field, value in change.items():
        if value is ...:
            del sent[1][field]
        else:
            sent[1][field] = value
    with pytest.raises(InvalidArgument) as raised:
        validate_feature_rows(predictor, sent)
    assert str(raised.value).startswith(message)


def test_python_numbers_other_than_floats_convert(predictor: Predictor) -> None:
    """The schema hands over floats; a Python caller's ints and bools are numbers all the same."""
    sent = rows()[:2]
    sent[0]["visits_30d"] = 3
    sent[1]["visits_30d"] = True
    assert validate_feature_rows(predictor, sent)["visits_30d"].tolist() == [3.0, 1.0]


# --- the same rows as an Arrow table -------------------------------------------------------------


def _same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert list(got) == list(want)
    for field, values in want.items():
        if isinstance(values, np.ndarray):
            assert got[field].dtype == np.float64
            np.testing.assert_array_equal(got[field], values)
        else:
            assert got[field] == values, field


def test_a_table_gives_the_columns_its_rows_give_as_json(predictor: Predictor) -> None:
    sent = rows()
    sent[0]["customer_id"] = "C0"
    for row in sent[1:]:
        row["customer_id"] = None
    _same(validate_feature_table(predictor, pa.Table.from_pylist(sent)), validate_feature_rows(predictor, sent))
    plain = rows()
    _same(validate_feature_table(predictor, pa.Table.from_pylist(plain)), validate_feature_rows(predictor, plain))


def test_a_table_takes_integers_booleans_null_columns_and_dictionary_categories(predictor: Predictor) -> None:
    table = pa.table(
        {
            "spend": pa.array([None, None], pa.null()),
            "visits_30d": pa.array([3, 1], pa.int8()),
            "plan": pa.array(["pro", None]).dictionary_encode(),
        }
    )
    columns = validate_feature_table(predictor, table)
    assert columns["visits_30d"].tolist() == [3.0, 1.0]
    assert np.isnan(columns["spend"]).all() and columns["plan"] == ["pro", None]
    assert validate_feature_table(predictor, table.set_column(2, "plan", pa.nulls(2)))["plan"] == [None, None]
    flags = table.set_column(1, "visits_30d", pa.array([True, False]))
    assert validate_feature_table(predictor, flags)["visits_30d"].tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    ("field", "column", "message"),
    [
        ("spend", pa.array([1.0, None, math.nan, 2.0]), "rows[2].spend: must be a finite number, got nan"),
        ("spend", pa.array([1.0, math.inf, None, 2.0]), "rows[1].spend: must be a finite number, got inf"),
        ("spend", pa.array(["1", "2", "3", "4"]), "rows.spend: expected numbers, got an Arrow column of string"),
        ("plan", pa.array([1, 2, 3, 4]), "rows.plan: expected strings (a category), got an Arrow column of int64"),
        ("plan", pa.array(["a", "b", "c" * 257, None]), "rows[2].plan: longer than 256 characters"),
        ("customer_id", pa.array([1, 2, 3, 4]), "rows.customer_id: expected a string, got an Arrow column of int64"),
    ],
)
def test_a_bad_table_column_is_named(predictor: Predictor, field: str, column: pa.Array, message: str) -> None:
    table = pa.Table.from_pylist(rows())
    table = (
        table.set_column(table.column_names.index(field), field, column)
        if field in table.column_names
        else (table.append_column(field, column))
    )
    with pytest.raises(InvalidArgument) as raised:
        validate_feature_table(predictor, table)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.append_column("bogus", pa.array([1.0] * 4)), "rows: unknown column(s) bogus;"),
        (lambda t: t.drop_columns(["plan", "spend"]), "rows: missing column(s) plan, spend"),
        (lambda t: t.append_column("spend", pa.array([1.0] * 4)), "rows: column(s) spend sent more than once"),
    ],
)
def test_unknown_missing_and_repeated_columns_are_named(predictor: Predictor, change: Any, message: str) -> None:  # noqa: ANN401
    with pytest.raises(InvalidArgument) as raised:
        validate_feature_table(predictor, change(pa.Table.from_pylist(rows())))
    assert str(raised.value).startswith(message)
