"""`model.matrix.model_frame`: the model's columns typed for XGBoost, built without stacking them twice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model.matrix import known_categories, model_frame


def _column_by_column(
    frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]] | None
) -> pd.DataFrame:
    """The frame as one typed column at a time into a dict: what `model_frame` must equal."""
    out: dict[str, pd.Series] = {}
    for name in features:
        column = frame[name]
        if categories is not None and name in categories:
            values = column.astype("object").where(column.notna(), None)
            out[name] = pd.Series(pd.Categorical(values, categories=categories[name]), index=frame.index)
        elif categories is None and (column.dtype == object or pd.api.types.is_string_dtype(column.dtype)):
            known = sorted(str(v) for v in column.dropna().unique())
            out[name] = pd.Series(pd.Categorical(column.astype("object"), categories=known), index=frame.index)
        else:
            out[name] = pd.to_numeric(column, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index)


@pytest.fixture
def frame() -> pd.DataFrame:
    """Numbers of several dtypes around string attributes, on an index that is not 0..n-1."""
    rng = np.random.default_rng(3)
    n = 200
    plans = np.array(["basic", "premium", None, "gold"], dtype=object)
    return pd.DataFrame(
        {
            "count_7d": rng.integers(0, 9, n).astype("float64"),
            "profile_plan": plans[rng.integers(0, 4, n)],
            "spend_7d": pd.array(np.where(rng.random(n) < 0.2, None, rng.random(n)), dtype="Float64"),
            "flag": rng.random(n) < 0.5,
            "profile_region": pd.Series(
                np.array(["north", "south", None], dtype=object)[rng.integers(0, 3, n)], dtype="string"
            ),
            "as_text": np.array(["1.5", "x", None, "2"], dtype=object)[rng.integers(0, 4, n)],
            "days": rng.integers(0, 400, n),
            "ignored": rng.random(n),
        },
        index=pd.Index(rng.permutation(n) + 1_000),
    )


FEATURES = ["count_7d", "profile_plan", "spend_7d", "flag", "profile_region", "days"]


def test_known_categories_give_the_frame_of_typing_each_column_alone(frame: pd.DataFrame) -> None:
    categories = {"profile_plan": ["basic", "premium"], "profile_region": ["north", "south", "west"]}
    features = [*FEATURES, "as_text"]
    typed = model_frame(frame, features, categories)
    pd.testing.assert_frame_equal(typed, _column_by_column(frame, features, categories))
    assert list(typed.columns) == features
    assert typed["profile_plan"].isna().sum() == frame["profile_plan"].isin([None, "gold"]).sum()
    assert typed["as_text"].isna().sum() == frame["as_text"].isin(["x", None]).sum()


def test_inferred_categories_give_the_frame_of_typing_each_column_alone(frame: pd.DataFrame) -> None:
    typed = model_frame(frame, FEATURES)
    pd.testing.assert_frame_equal(typed, _column_by_column(frame, FEATURES, None))
    assert list(typed["profile_plan"].cat.categories) == ["basic", "gold", "premium"]


def test_known_categories_are_the_sorted_strings_present_whatever_the_columns_type() -> None:
    values = ["gold", None, "basic", np.nan, "gold", "premium"]
    expected = ["basic", "gold", "premium"]
    assert known_categories(pd.Series(values, dtype=object)) == expected
    assert known_categories(pd.Series(values, dtype="string")) == expected
    # A category no row holds any more (rows selected after the typing) is not known.
    unused = pd.Series(pd.Categorical(values, categories=["basic", "gold", "premium", "silver"]))
    assert known_categories(unused) == expected
    assert known_categories(pd.Series([3, None, 1], dtype=object)) == ["1", "3"]
    assert known_categories(pd.Series([None, np.nan], dtype=object)) == []


def test_an_object_column_with_both_kinds_of_missing_value_is_typed_as_the_string_column() -> None:
    values = ["gold", None, "basic", np.nan, "silver"]
    categories = {"plan": ["basic", "gold"]}
    as_object = model_frame(pd.DataFrame({"plan": pd.Series(values, dtype=object)}), ["plan"], categories)
    as_string = model_frame(pd.DataFrame({"plan": pd.Series(values, dtype="string")}), ["plan"], categories)
    pd.testing.assert_frame_equal(as_object, as_string)
    assert as_object["plan"].isna().tolist() == [False, True, False, True, True]


def test_the_typed_frame_is_a_copy(frame: pd.DataFrame) -> None:
    typed = model_frame(frame, FEATURES)
    typed.loc[:, "count_7d"] = -1.0
    assert (frame["count_7d"] >= 0).all()


def test_without_a_copy_the_float_columns_are_the_frames_own_and_the_frame_is_the_same(frame: pd.DataFrame) -> None:
    shared = model_frame(frame, FEATURES, copy=False)
    pd.testing.assert_frame_equal(shared, model_frame(frame, FEATURES))
    floats = [name for name in FEATURES if frame[name].dtype == np.float64]
    assert floats and all(np.shares_memory(shared[name].to_numpy(), frame[name].to_numpy()) for name in floats)
    converted = [
        name for name in FEATURES if name not in floats and not isinstance(shared[name].dtype, pd.CategoricalDtype)
    ]
    assert converted and not any(
        np.shares_memory(shared[name].to_numpy(), frame[name].to_numpy()) for name in converted
    )


def test_no_numeric_column_and_no_rows() -> None:
    only = pd.DataFrame({"profile_plan": ["basic", None]})
    typed = model_frame(only, ["profile_plan"], {"profile_plan": ["basic"]})
    assert list(typed.columns) == ["profile_plan"] and typed["profile_plan"].isna().tolist() == [False, True]
    empty = model_frame(pd.DataFrame({"a": pd.Series(dtype="float64"), "b": pd.Series(dtype=object)}), ["b", "a"])
    assert list(empty.columns) == ["b", "a"] and len(empty) == 0 and empty["a"].dtype == "float64"
