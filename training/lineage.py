"""Lineage of a training run: the fingerprint of its training set (the same for the same rows, so tuning
workers can check they share them) and the code's git commit."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd


def fingerprint(frame: pd.DataFrame) -> str:
    """A short content hash of a training frame: its length and each column's name, type and values, row by row.

    A numeric or time column's values count by their 64-bit patterns, others by pandas' hash of
    each value (`pandas.util.hash_pandas_object`). Each column becomes one 64-bit sum of those
    numbers times seeded odd weights, one weight per row (a linear hash, wrapping: changing any
    value, or swapping two rows, changes the sum but for a 2^-64 chance), and the column sums are
    hashed with SHA-256. A dot product reads a float column at memory speed, where pandas' hash of
    every value costs several operations per value.
    """
    weights = np.random.default_rng(FINGERPRINT_SEED).integers(0, 2**64, size=len(frame), dtype=np.uint64)
    weights |= np.uint64(1)
    digest = hashlib.sha256(f"rows={len(frame)}".encode())
    for name in frame.columns:
        column = frame[name]
        digest.update(f"|{name}:{column.dtype}=".encode())
        digest.update(np.dot(_bit_patterns(column), weights).tobytes())
    return digest.hexdigest()[:16]


FINGERPRINT_SEED = 20_261_206
"""Seed of the fingerprint's row weights: changing it changes every fingerprint."""


def _bit_patterns(column: pd.Series) -> np.ndarray:
    """One uint64 per value of `column`, the same for the same values (and dtype) in the same order."""
    dtype = column.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(column).asi8.view(np.uint64)
    if isinstance(dtype, np.dtype) and dtype.kind in "biufmM":
        values = column.to_numpy()
        if dtype.kind in "mM":
            values = values.view(np.int64)
        elif dtype.kind == "b" or dtype.itemsize != 8:
            values = values.astype(np.float64 if dtype.kind == "f" else np.int64)
        return np.ascontiguousarray(values).view(np.uint64)
    return pd.util.hash_pandas_object(column, index=False).to_numpy()


def git_commit(repo: Path | None = None) -> str:
    """The checked-out git commit (with "-dirty" when the tree has changes), or "unknown"."""
    where = repo or Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")
