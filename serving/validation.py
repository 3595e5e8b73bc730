"""Checks of caller-supplied feature rows (POST /score_features) against the served model's signature.

The rows come as JSON objects (`validate_feature_rows`) or as the columns of an Arrow table
(`validate_feature_table`); both give the same columns, and every refusal names the row, the
field and the problem; the service answers it as a 400.
"""

from __future__ import annotations

import itertools
import operator
from typing import TYPE_CHECKING, Any

import numpy as np
from bentoml.exceptions import InvalidArgument

from core import names

if TYPE_CHECKING:  # the service imports this module before its workers start: keep XGBoost out of it
    import pyarrow as pa

    from model.predictor import Predictor

MAX_STRING = 256
"""The longest category value a row may send (the JSON body's schema says the same)."""


def validate_feature_rows(predictor: Predictor, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Check caller-supplied rows against the model's signature, and turn them into columns.

    Args:
        predictor: The model whose features the rows must hold.
        rows: The request's rows as its schema parsed them (`FeatureValue`: a finite float, a
            string or None per field); other values are refused here too.

    Returns:
        Feature -> one value per row: a float64 array for a numeric feature (NaN for null), a list
        (strings and None) for a categorical one; plus customer_id when any row sends one (None
        where a row does not).

    Raises:
        InvalidArgument: Naming the row, the field and the problem (unknown, missing, wrong type).
    """
    numeric, categorical = predictor.numeric_features, predictor.categorical_features
    width = len(predictor.features)
    with_id = [names.CUSTOMER_ID in row for row in rows]
    # Each row's values in one C call per kind: a missing field raises KeyError; with every field
    # there, a row longer than the features (and customer_id) has an unknown one.
    try:
        numeric_table, categorical_table = _picked(rows, numeric), _picked(rows, categorical)
        fields_ok = all(len(row) == width + has_id for row, has_id in zip(rows, with_id, strict=True))
    except KeyError:
        fields_ok = False
    if not fields_ok:
        _check_fields(predictor, rows)  # names the row and the field
        raise InvalidArgument("rows: every row must hold the model's features (GET /model) and no others")
    columns: dict[str, Any] = dict.fromkeys(predictor.features)
    if numeric:
        numbers = np.ascontiguousarray(_numbers(numeric_table, numeric).T)
        columns.update(zip(numeric, numbers, strict=True))
    for field, picked in zip(categorical, zip(*categorical_table, strict=True), strict=False):
        values = list(picked)
        _check_column(field, values, categorical=True)
        columns[field] = values
    if any(with_id):
        ids = [row.get(names.CUSTOMER_ID) for row in rows]
        bad = next((i for i, v in enumerate(ids) if v is not None and not isinstance(v, str)), None)
        if bad is not None:
            raise InvalidArgument(f"rows[{bad}].customer_id: expected a string")
        columns[names.CUSTOMER_ID] = ids
    return columns


def _check_fields(predictor: Predictor, rows: list[dict[str, Any]]) -> None:
    """Check that every row holds the model's features, and at most customer_id besides.

    Raises:
        InvalidArgument: Naming the first row with an unknown or a missing field.
    """
    expected = set(predictor.features)
    allowed = expected | {names.CUSTOMER_ID}
    for i, row in enumerate(rows):
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise InvalidArgument(
                f"rows[{i}]: unknown field(s) {', '.join(unknown)}; the model's features are listed at GET /model"
            )
        missing = sorted(expected - set(row))
        if missing:
            raise InvalidArgument(f"rows[{i}]: missing field(s) {', '.join(missing)} (send null for an unknown value)")


def _picked(rows: list[dict[str, Any]], fields: list[str]) -> list[tuple[Any, ...]]:
    """Per row, the values of `fields` (one `operator.itemgetter` call each).

    Raises:
        KeyError: A row lacks one of them.
    """
    if len(fields) <= 1:  # itemgetter of one field gives the value, not a tuple
        return [tuple(row[f] for f in fields) for row in rows]
    pick = operator.itemgetter(*fields)
    return [pick(row) for row in rows]


def _numbers(table: list[tuple[Any, ...]], fields: list[str]) -> np.ndarray:
    """`table` (rows of `fields`' values) as float64, null as NaN, checked in bulk.

    NumPy converts the whole table in one call; that holds the values as sent when every one is a
    float or None and each NaN came from a None (two passes in C tell). Anything else
    (a string, a number sent as NaN or infinity) goes column by column through `_check_column`,
    which names the row and the field.

    Raises:
        InvalidArgument: Naming the first row with a wrong value, field by field.
    """
    kinds = set(map(type, itertools.chain.from_iterable(table)))
    if kinds <= {float, type(None)}:
        numbers = np.array(table, dtype=np.float64).reshape(len(table), len(fields))
        nulls = sum(map(_NULLS, table)) if type(None) in kinds else 0
        if np.count_nonzero(np.isnan(numbers)) == nulls and not np.isinf(numbers).any():
            return numbers
    for j, field in enumerate(fields):
        _check_column(field, [values[j] for values in table], categorical=False)
    # Only ints and bools can pass unrefused (the schema gives floats): NumPy converts them.
    return np.array(table, dtype=np.float64).reshape(len(table), len(fields))


_NULLS = operator.methodcaller("count", None)
"""How many Nones a tuple holds (`tuple.count` checks identity first)."""


def _check_column(field: str, values: list[Any], categorical: bool) -> None:
    """Check one feature's values of every row: strings for a category, finite numbers otherwise (or null).

    Raises:
        InvalidArgument: Naming the first row with a wrong value.
    """
    if categorical:
        bad = next((i for i, v in enumerate(values) if v is not None and not isinstance(v, str)), None)
        if bad is not None:
            raise InvalidArgument(f"rows[{bad}].{field}: expected a string (a category), got {values[bad]!r}")
        return
    if str in set(map(type, values)):
        bad = next(i for i, v in enumerate(values) if isinstance(v, str))
        raise InvalidArgument(f"rows[{bad}].{field}: expected a number, got the string {values[bad]!r}")
    try:
        numbers = np.array(values, dtype=float)  # null becomes NaN; a NaN or infinity sent is not finite either
    except (TypeError, ValueError, OverflowError):  # a value no float holds, or no number at all
        bad = next(i for i, v in enumerate(values) if not _holds_float(v))
        raise InvalidArgument(f"rows[{bad}].{field}: expected a finite number, got {values[bad]!r}") from None
    for i in np.flatnonzero(~np.isfinite(numbers)).tolist():  # null (NaN here) is allowed
        if values[i] is not None:
            raise InvalidArgument(f"rows[{i}].{field}: must be a finite number, got {values[i]}")


def _holds_float(value: Any) -> bool:  # noqa: ANN401
    """Whether a float can hold `value` (None counts: it becomes NaN)."""
    try:
        float(value if value is not None else "nan")
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def validate_feature_table(predictor: Predictor, table: pa.Table) -> dict[str, Any]:
    """Check an Arrow table of feature rows against the model's signature, and turn it into columns.

    Args:
        predictor: The model whose features the table's columns must be.
        table: One column per model feature, optionally customer_id; a numeric feature as integers,
            floats or booleans, a categorical one as strings (dictionary-encoded too); a column of
            nulls only may have Arrow's null type.

    Returns:
        What `validate_feature_rows` returns for the same rows sent as JSON.

    Raises:
        InvalidArgument: Naming the column (and the row, for a value) and the problem.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    fields = table.column_names
    repeated = sorted({f for f in fields if fields.count(f) > 1})
    if repeated:
        raise InvalidArgument(f"rows: column(s) {', '.join(repeated)} sent more than once")
    allowed = {*predictor.features, names.CUSTOMER_ID}
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        raise InvalidArgument(
            f"rows: unknown column(s) {', '.join(unknown)}; the model's features are listed at GET /model"
        )
    missing = [f for f in predictor.features if f not in fields]
    if missing:
        raise InvalidArgument(f"rows: missing column(s) {', '.join(missing)} (send nulls for unknown values)")
    columns: dict[str, Any] = dict.fromkeys(predictor.features)
    for field in predictor.numeric_features:
        kind = table.schema.field(field).type
        numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        if not (numeric or pa.types.is_null(kind)):
            raise InvalidArgument(f"rows.{field}: expected numbers, got an Arrow column of {kind}")
        values = pc.cast(table.column(field), pa.float64())
        if pa.types.is_floating(kind):
            sent = pc.fill_null(pc.is_finite(values), True)  # null is allowed: it stands for unknown
            if not pc.all(sent).as_py():
                bad = pc.index(sent, False).as_py()
                raise InvalidArgument(f"rows[{bad}].{field}: must be a finite number, got {values[bad].as_py()}")
        columns[field] = values.to_numpy()  # a null becomes NaN
    for field in [*predictor.categorical_features, names.CUSTOMER_ID]:
        if field not in fields:
            continue
        column = table.column(field)
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
            what = "a string" if field == names.CUSTOMER_ID else "strings (a category)"
            raise InvalidArgument(f"rows.{field}: expected {what}, got an Arrow column of {column.type}")
        strings = pc.cast(column, pa.string())
        too_long = pc.fill_null(pc.greater(pc.utf8_length(strings), MAX_STRING), False)
        if pc.any(too_long).as_py():
            bad = pc.index(too_long, True).as_py()
            raise InvalidArgument(f"rows[{bad}].{field}: longer than {MAX_STRING} characters")
        columns[field] = strings.to_pylist()
    return columns
