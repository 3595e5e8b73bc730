"""Training sets: point-in-time feature rows from Feast joined to labels, and out-of-time splits."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from feast import FeatureStore

from core import names
from features.labels import in_time_order
from features.pipeline import historical_features
from model.bundle import reference_dates
from model.matrix import is_categorical, known_categories, model_frame


@dataclass(frozen=True)
class Split:
    """An out-of-time split: earlier dates train, later ones validate, the latest test.

    Test customers are a seeded hash-selected share of all customers; they appear in no other part.
    """

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    features: tuple[str, ...]
    categories: dict[str, list[str]] = field(default_factory=dict)
    """Categorical feature -> the values seen in `train` (others become missing)."""
    folds: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    """Cross-validation (one observation date): (fit rows, held-out rows) positions in `train` per
    fold, and `valid` is empty; out of time: none."""
    _typed: dict[str, pd.DataFrame] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Part -> its `model_frame`, built on first use: the trial, the final model and the pipeline
    ask for the same parts, and typing a part copies every column."""

    @property
    def cross_validated(self) -> bool:
        """Whether tuning cross-validates on `train` (one observation date) instead of using `valid`."""
        return bool(self.folds)

    def xy(self, part: str) -> tuple[pd.DataFrame, pd.Series]:
        """Model-typed features (see `model.matrix`) and label of `train`, `valid` or `test`.

        The features are built once per part and shared, and their float columns are the part's
        own (`model_frame(copy=False)`): callers must not modify them.
        """
        frame = getattr(self, part)
        if part not in self._typed:
            self._typed[part] = model_frame(frame, self.features, self.categories, copy=False)
        return self._typed[part], frame[names.LABEL]

    def y(self, part: str) -> pd.Series:
        """The label of `train`, `valid` or `test` (without typing the features)."""
        frame: pd.DataFrame = getattr(self, part)
        return frame[names.LABEL]

    def describe(self) -> dict[str, str | int]:
        """Sizes and date ranges of each part, for logging."""
        out: dict[str, str | int] = {}
        for part in ("train", "valid", "test"):
            frame = getattr(self, part)
            stamps = frame[names.EVENT_TIMESTAMP]
            out[f"{part}_rows"] = len(frame)
            out[f"{part}_customers"] = int(frame[names.CUSTOMER_ID].nunique())
            out[f"{part}_dates"] = f"{stamps.min():%Y-%m-%d}..{stamps.max():%Y-%m-%d}" if len(frame) else "-"
        out["split"] = f"{len(self.folds)}-fold cross-validation" if self.folds else "out of time"
        return out


def historical_frame(store: FeatureStore, labels: pd.DataFrame, service: str = names.FEATURE_SERVICE) -> pd.DataFrame:
    """Point-in-time correct feature rows for each labelled (customer, observation date).

    Args:
        store: The Feast store with the churn feature services applied.
        labels: Columns customer_id, event_timestamp, churned (the entity dataframe).
        service: The feature service naming the model's features.

    Returns:
        `labels` plus every feature of the feature service, as Feast joined them.
    """
    return historical_features(store, labels, service)


def holdout_mask(customer_ids: pd.Series, share: float, seed: int) -> np.ndarray:
    """Which customers belong to the test group: a seeded hash of the id, stable across runs."""
    salt = str(seed).encode()
    # Each customer hashed once, however many rows (observation dates) it has.
    position, unique = pd.factorize(customer_ids.astype(str))
    buckets = np.array(
        [int.from_bytes(hashlib.blake2b(salt + c.encode(), digest_size=8).digest(), "big") for c in unique],
        dtype=np.uint64,
    )
    return ((buckets % np.uint64(10_000)) < np.uint64(round(share * 10_000)))[position]


PARTS = ("train", "valid", "test")


@dataclass(frozen=True)
class SplitDates:
    """Where an out-of-time split cuts: train before `train_end`, validate from `valid_start` to
    `test_start`, test from `test_start` (test customers only)."""

    train_end: pd.Timestamp
    valid_start: pd.Timestamp
    test_start: pd.Timestamp
    settings: str
    """The split settings behind the dates, for error messages."""

    def rows(self, part: str, stamps: pd.Series, is_test_customer: pd.Series | np.ndarray) -> pd.Series:
        """Which rows (observation dates `stamps`, test customers `is_test_customer`) belong to `part`.

        Works on pandas and on Dask series alike.
        """
        if part == "train":
            return (stamps < self.train_end) & ~is_test_customer
        if part == "valid":
            return (stamps >= self.valid_start) & (stamps < self.test_start) & ~is_test_customer
        return (stamps >= self.test_start) & is_test_customer


def split_dates(
    dates: Sequence[pd.Timestamp] | np.ndarray, *, test_dates: int, valid_dates: int, embargo_days: int
) -> SplitDates:
    """The cut dates of an out-of-time split of labelled observation `dates` (see `out_of_time_split`).

    Raises:
        ValueError: Too few dates for the split; the message names the settings.
    """
    ordered = sorted(pd.Timestamp(d) for d in dates)
    needed = test_dates + valid_dates + 1
    if len(ordered) < needed:
        raise ValueError(
            f"{len(ordered)} labelled observation dates, but training.split needs at least {needed} "
            f"(test_dates={test_dates} + valid_dates={valid_dates} + 1 to train on): use a longer history"
        )
    test_start = ordered[-test_dates]
    valid_start = ordered[-(test_dates + valid_dates)]
    train_end = min(valid_start, test_start - pd.Timedelta(days=embargo_days))
    described = f"test_dates={test_dates}, valid_dates={valid_dates}, embargo_days={embargo_days}"
    return SplitDates(train_end, valid_start, test_start, described)


def check_part(part: str, rows: int, churners: int, bounds: SplitDates, test_customers: float) -> None:
    """Refuse a part without churners and stayers.

    Raises:
        ValueError: The part is empty or holds one class; the message names the settings to change.
    """
    if rows == 0 or churners in (0, rows):
        raise ValueError(
            f"the {part} part has {rows} rows and needs churners and stayers: use more customers or days, "
            f"or change training.split ({bounds.settings}, test_customers={test_customers})"
        )


def out_of_time_split(
    frame: pd.DataFrame,
    features: list[str],
    *,
    test_dates: int,
    valid_dates: int,
    embargo_days: int,
    test_customers: float,
    seed: int,
    dates: Sequence[pd.Timestamp] | np.ndarray | None = None,
) -> Split:
    """Split labelled rows by time and by customer.

    The latest `test_dates` labelled observation dates are the test period, and only test
    customers are tested; the `valid_dates` before them validate; training uses earlier dates
    at least `embargo_days` before the first test date (so every training label was known by
    then). Neither train nor valid holds a test customer.

    Args:
        frame: Columns customer_id, event_timestamp, churned and the features.
        features: Model features.
        test_dates: Number of latest labelled dates in the test period.
        valid_dates: Number of dates before them in the validation period.
        embargo_days: Minimum gap from the last training date to the first test date.
        test_customers: Share of customers reserved for the test.
        seed: Seed of the customer hash.
        dates: The labelled observation dates the cuts are counted on; None: `frame`'s own. Pass
            the labels' dates when `frame` holds only the rows the split keeps (`rows_to_retrieve`).

    Returns:
        The split, each part sorted by time then customer.

    Raises:
        ValueError: A part would be empty; the message names the settings to change.
    """
    bounds = split_dates(
        frame[names.EVENT_TIMESTAMP].unique() if dates is None else dates,
        test_dates=test_dates,
        valid_dates=valid_dates,
        embargo_days=embargo_days,
    )
    ordered = frame if in_time_order(frame) else frame.sort_values([names.EVENT_TIMESTAMP, names.CUSTOMER_ID])
    is_test_customer = holdout_mask(ordered[names.CUSTOMER_ID], test_customers, seed)
    parts = {
        part: _renumbered(ordered[bounds.rows(part, ordered[names.EVENT_TIMESTAMP], is_test_customer)])
        for part in PARTS
    }
    for part, rows in parts.items():
        check_part(part, len(rows), int(rows[names.LABEL].sum()), bounds, test_customers)
    train, valid, test = (parts[p] for p in PARTS)
    return Split(train, valid, test, tuple(features), _categories(train, features))


def rows_to_retrieve(
    labels: pd.DataFrame,
    *,
    test_dates: int,
    valid_dates: int,
    embargo_days: int,
    test_customers: float,
    seed: int,
    reference_rows: int,
) -> pd.DataFrame:
    """The labels whose feature rows a training run uses, in their order.

    The train, valid and test rows of an out-of-time split of these settings, and every row of the
    dates the drift reference of `reference_rows` rows is drawn from (`model.bundle.reference_dates`).
    Left out are rows the split would drop once retrieved (the test customers' rows before the
    test period, the embargo's dates, the other customers' rows in the test period) unless the
    reference needs them. Split the retrieved rows with the labels' dates
    (`out_of_time_split(..., dates=...)`).

    Raises:
        ValueError: Too few dates for the split; the message names the settings.
    """
    stamps = labels[names.EVENT_TIMESTAMP]
    bounds = split_dates(stamps.unique(), test_dates=test_dates, valid_dates=valid_dates, embargo_days=embargo_days)
    is_test_customer = holdout_mask(labels[names.CUSTOMER_ID], test_customers, seed)
    kept = bounds.rows("train", stamps, is_test_customer) | bounds.rows("valid", stamps, is_test_customer)
    kept |= bounds.rows("test", stamps, is_test_customer) | stamps.isin(reference_dates(stamps, reference_rows))
    return labels[kept.to_numpy()]


def _categories(train: pd.DataFrame, features: Sequence[str]) -> dict[str, list[str]]:
    """Each categorical feature's known values: those of the training rows (what `model_frame` infers)."""
    return {c: known_categories(train[c]) for c in features if is_categorical(train[c])}


def _renumbered(rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` (a filtered copy) indexed 0..n-1 in place: `reset_index` would copy every column again."""
    rows.index = pd.RangeIndex(len(rows))
    return rows


def cross_validation_split(
    frame: pd.DataFrame, features: list[str], *, folds: int, test_share: float, seed: int
) -> Split:
    """Split labelled rows without a time axis: a stratified test share, and stratified folds of the rest.

    Args:
        frame: Columns customer_id, event_timestamp, churned and the features (one observation date).
        features: Model features.
        folds: Cross-validation folds of the rows that are not tested.
        test_share: Share of rows held out for the final test, stratified by the label.
        seed: Seed of the test draw and of the folds.

    Returns:
        The split: `train` holds the rows to cross-validate on (with `folds`), `valid` is empty.

    Raises:
        ValueError: Too few churners or stayers for the folds; the message names the settings.
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    ordered = frame.sort_values([names.EVENT_TIMESTAMP, names.CUSTOMER_ID]).reset_index(drop=True)
    y = ordered[names.LABEL].to_numpy()
    smallest = int(min(y.sum(), len(y) - y.sum()))
    if smallest < 2 * folds:
        raise ValueError(
            f"{smallest} rows of the smaller class: too few for training.split.cv_folds={folds} and a test share; "
            "use more data or fewer folds"
        )
    rest, test = train_test_split(np.arange(len(ordered)), test_size=test_share, stratify=y, random_state=seed)
    train = ordered.iloc[np.sort(rest)].reset_index(drop=True)
    held = ordered.iloc[np.sort(test)].reset_index(drop=True)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    parts = tuple((fit, out) for fit, out in splitter.split(np.zeros(len(train)), train[names.LABEL].to_numpy()))
    return Split(train, train.iloc[:0], held, tuple(features), _categories(train, features), parts)
