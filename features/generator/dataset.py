"""Synthetic data sets: customers and events drawn chunk by chunk, as frames and tables or as Parquet."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypedDict, Unpack

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core import names
from core.io import atomic_path
from features.generator import taxonomy
from features.generator.customers import (
    CATEGORIES,
    CHANNELS,
    EVENT_TYPES,
    PLANS,
    PURCHASE,
    REGIONS,
    VALUE_TIERS,
    Customers,
    draw_customers,
)
from features.generator.events import draw_events

DEFAULT_START = dt.date(2025, 1, 1)
DEFAULT_CHUNK = 20_000
CUSTOMERS_FILE = "customers.parquet"
EVENTS_FILE = "events.parquet"

EVENTS_SCHEMA = pa.schema(
    [
        pa.field(names.CUSTOMER_ID, pa.string(), nullable=False),
        pa.field(names.EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field(names.EVENT_TYPE, pa.string(), nullable=False),
        pa.field(names.AMOUNT, pa.float64()),
        pa.field(names.CATEGORY, pa.string()),
    ]
)


@dataclass(frozen=True)
class GeneratedData:
    """Generated CRM data.

    Attributes:
        customers: One row per customer: customer_id, signup_date, churn_date (NaT when not
            churned within the period), plan, channel, region, value_tier.
        events: The event log (`EVENTS_SCHEMA`): customer_id, event_timestamp, event_type, amount
            (purchases only), category (purchases only); sorted by customer then time.
    """

    customers: pd.DataFrame
    events: pa.Table


def _customer_ids(first: int, m: int, width: int) -> pa.Array:
    """Ids "C" + zero-padded 1-based number, so they sort in generation order."""
    numbers = pc.cast(pa.array(np.arange(first + 1, first + m + 1)), pa.string())
    return pc.binary_join_element_wise("C", pc.utf8_lpad(numbers, width, "0"), "")


def _dates(start_date: dt.date, day: np.ndarray) -> np.ndarray:
    return np.datetime64(start_date, "D") + day.astype("timedelta64[D]")


def _customers_frame(ids: pa.Array, cust: Customers, days: int, start_date: dt.date) -> pd.DataFrame:
    churn = _dates(start_date, cust.churn_day).astype("datetime64[ns]")
    churn[cust.churn_day >= days] = np.datetime64("NaT")
    return pd.DataFrame(
        {
            names.CUSTOMER_ID: ids.to_numpy(zero_copy_only=False),
            names.SIGNUP_DATE: _dates(start_date, cust.signup_day).astype("datetime64[ns]"),
            names.CHURN_DATE: churn,
            "plan": np.array(PLANS, dtype=object)[cust.plan],
            "channel": np.array(CHANNELS, dtype=object)[cust.channel],
            "region": np.array(REGIONS, dtype=object)[cust.region],
            "value_tier": np.array(VALUE_TIERS, dtype=object)[cust.tier],
        }
    )


def _events_table(
    ids: pa.Array,
    idx: np.ndarray,
    timestamp: np.ndarray,
    event_type: np.ndarray,
    type_names: tuple[str, ...],
    purchase: np.ndarray,
    amount: np.ndarray,
    category: np.ndarray,
) -> pa.Table:
    # Dictionary decoding is a C++ take: far faster than materialising Python strings.
    customer = pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32)), ids).dictionary_decode()
    types = pa.DictionaryArray.from_arrays(
        pa.array(event_type.astype(np.int8)), pa.array(type_names)
    ).dictionary_decode()
    categories = pa.DictionaryArray.from_arrays(
        pa.array(category.astype(np.int8), mask=~purchase), pa.array(CATEGORIES)
    ).dictionary_decode()
    return pa.Table.from_arrays(
        [
            customer,
            pa.array(timestamp, type=EVENTS_SCHEMA.field(names.EVENT_TIMESTAMP).type),
            types,
            pa.array(amount, mask=~purchase),
            categories,
        ],
        schema=EVENTS_SCHEMA,
    )


def _check_arguments(n_customers: int, days: int, drift_at: int | None, chunk_size: int) -> None:
    if n_customers <= 0:
        raise ValueError(f"n_customers must be positive, got {n_customers}")
    if days <= 0:
        raise ValueError(f"days must be positive, got {days}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if drift_at is not None and not 0 <= drift_at < days:
        raise ValueError(f"drift_at must be a day in [0, {days}), got {drift_at}")


class Options(TypedDict, total=False):
    """The optional arguments of `generate` and `generate_to_parquet`.

    Attributes:
        start_date: First day of the period (events are in UTC); default 2025-01-01.
        drift_at: Day (0-based, relative to `start_date`) from which behaviour drifts and the
            `social` channel appears; None (the default) for no drift.
        chunk_size: Customers generated per vectorised batch (and per spawned seed, so it is part
            of what defines the data); default 20,000.
        progress: Called with the number of customers just finished, once per chunk.
        taxonomy: `retail` (the six standard event types, the default) or `saas`: the same behaviour
            logged as 21 product event types (`features.generator.taxonomy`).
    """

    start_date: dt.date
    drift_at: int | None
    chunk_size: int
    progress: Callable[[int], None] | None
    taxonomy: Literal["retail", "saas"]


def _chunks(n_customers: int, days: int, seed: int, options: Options) -> Iterator[tuple[pd.DataFrame, pa.Table]]:
    """Customers and events of each chunk in turn, each from its own spawned seed.

    `progress` is called with the chunk's customer count once the caller is done with the chunk.

    Raises:
        ValueError: A size is not positive or `drift_at` is outside the period.
    """
    start_date = options.get("start_date", DEFAULT_START)
    drift_at = options.get("drift_at")
    chunk_size = options.get("chunk_size", DEFAULT_CHUNK)
    progress = options.get("progress")
    _check_arguments(n_customers, days, drift_at, chunk_size)
    width = max(7, len(str(n_customers)))
    n_chunks = -(-n_customers // chunk_size)
    for seq, first in zip(np.random.SeedSequence(seed).spawn(n_chunks), range(0, n_customers, chunk_size), strict=True):
        m = min(chunk_size, n_customers - first)
        rng = np.random.default_rng(seq)
        cust = draw_customers(rng, m, days, drift_at)
        ids = _customer_ids(first, m, width)
        idx, timestamp, channel, amount, category = draw_events(rng, cust, days, start_date, drift_at)
        purchase = channel == PURCHASE
        types, codes = EVENT_TYPES, channel
        if options.get("taxonomy", "retail") == "saas":
            types, codes = taxonomy.TYPES, taxonomy.relabel(rng, channel, idx, m)
        events = _events_table(ids, idx, timestamp, codes, types, purchase, amount, category)
        yield _customers_frame(ids, cust, days, start_date), events
        if progress is not None:
            progress(m)


def _concat_customers(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True)


def generate(n_customers: int, days: int, seed: int, **options: Unpack[Options]) -> GeneratedData:
    """Generate a synthetic CRM data set in memory.

    Args:
        n_customers: Number of customers.
        days: Length of the period in days, starting at `start_date`.
        seed: Seed of all randomness; the same arguments give identical data.
        **options: `Options`: start date, drift day, chunk size, progress callback.

    Returns:
        The customers frame (customer_id, signup_date, churn_date, plan, channel, region,
        value_tier) and the event table (customer_id, event_timestamp, event_type, amount,
        category).

    Raises:
        ValueError: A size is not positive or `drift_at` is outside the period.
    """
    frames: list[pd.DataFrame] = []
    tables: list[pa.Table] = []
    for customers, events in _chunks(n_customers, days, seed, options):
        frames.append(customers)
        tables.append(events)
    return GeneratedData(customers=_concat_customers(frames), events=pa.concat_tables(tables))


def _customers_arrow(customers: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(customers, preserve_index=False)


def _write_atomically(table: pa.Table, target: Path) -> Path:
    with atomic_path(target) as temp:
        pq.write_table(table, temp)
    return target


def write_generated(data: GeneratedData, out_dir: Path) -> tuple[Path, Path]:
    """Write generated data as Parquet, each file atomically (temp file in `out_dir`, then replace).

    Args:
        data: What `generate` returned.
        out_dir: Directory to write into; created if missing.

    Returns:
        The paths of customers.parquet and events.parquet.
    """
    out_dir = Path(out_dir)
    customers_path = _write_atomically(_customers_arrow(data.customers), out_dir / CUSTOMERS_FILE)
    events_path = _write_atomically(data.events, out_dir / EVENTS_FILE)
    return customers_path, events_path


def generate_to_parquet(
    out_dir: Path, n_customers: int, days: int, seed: int, **options: Unpack[Options]
) -> tuple[Path, Path]:
    """Generate straight into Parquet, one chunk at a time, so the event log is never whole in memory.

    The files hold the same rows as `write_generated(generate(...), out_dir)` with the same
    arguments (row groups may be laid out differently). Each file appears atomically.

    Args:
        out_dir: Directory to write into; created if missing.
        n_customers: Number of customers.
        days: Length of the period in days.
        seed: Seed of all randomness.
        **options: `Options`, as for `generate`.

    Returns:
        The paths of customers.parquet and events.parquet.

    Raises:
        ValueError: A size is not positive or `drift_at` is outside the period.
    """
    out_dir = Path(out_dir)
    events_path = out_dir / EVENTS_FILE
    # The events file appears only once the customers file is in place.
    with atomic_path(events_path) as events_temp:
        frames: list[pd.DataFrame] = []
        with pq.ParquetWriter(events_temp, EVENTS_SCHEMA) as writer:
            for customers, events in _chunks(n_customers, days, seed, options):
                writer.write_table(events)
                frames.append(customers)
        customers_path = _write_atomically(_customers_arrow(_concat_customers(frames)), out_dir / CUSTOMERS_FILE)
    return customers_path, events_path
