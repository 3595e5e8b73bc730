"""Atomic file writes: a reader sees either the previous file or the complete new one, never a half.

Each helper writes to a temporary file in the target's directory (same filesystem, so the final
`os.replace` is an atomic rename) and removes the temporary file if anything fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path to write `path`'s new content to; renamed onto `path` if the block succeeds.

    Example:
        with atomic_path(out) as tmp:
            con.execute(f"COPY t TO '{tmp}' (FORMAT parquet)")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name rather than mkstemp: the writer creates the file, so it gets the usual
    # umask permissions instead of mkstemp's owner-only 0600. The name ends like the target's,
    # so writers that infer compression from the suffix (`.csv.gz`) behave as for the target;
    # the leading dot keeps it out of globs.
    temp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        yield temp
        # Flush to disk before the rename, so a crash cannot leave the new name on empty content.
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _write_atomic(path: Path, write: Callable[[Path], None]) -> Path:
    with atomic_path(path) as temp:
        write(temp)
    return Path(path)


def write_atomic_parquet(data: pd.DataFrame | pa.Table, path: Path) -> Path:
    """Write a frame or an Arrow table as Parquet, atomically.

    Args:
        data: A DataFrame (its index is not written) or a pyarrow Table.
        path: Target file; its directory is created if missing.

    Returns:
        The path written.
    """
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    # Microsecond timestamps: DuckDB (Feast's offline store) cannot cast nanosecond zoned ones.
    return _write_atomic(
        path, lambda temp: pq.write_table(table, temp, coerce_timestamps="us", allow_truncated_timestamps=True)
    )


def write_atomic_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a frame as CSV with a header and without its index, atomically.

    Args:
        frame: The rows to write.
        path: Target file; its directory is created if missing.

    Returns:
        The path written.
    """
    return _write_atomic(path, lambda temp: frame.to_csv(temp, index=False))


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def write_atomic_text(text: str, path: Path) -> Path:
    """Write text (UTF-8) atomically.

    Args:
        text: The content.
        path: Target file; its directory is created if missing.

    Returns:
        The path written.
    """
    return _write_atomic(path, lambda temp: _write_text(temp, text))


def write_atomic_bytes(data: bytes, path: Path) -> Path:
    """Write `data` to `path` atomically (a temporary file in the same folder, then a rename)."""

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return _write_atomic(path, write)
