"""A workspace that was moved or copied: find where its MLflow store still points, and point it here.

MLflow keeps absolute artifact locations: each experiment's root, each run's and each logged
model's folder, each model version's storage location. It resolves a relative location against
the current directory when the experiment is created and stores the result, so a workspace's
store cannot hold paths relative to the workspace. Once the workspace moves, the store still
names the old place: reading fails there, or, for a copy, reads and writes the original's files.

With the workspace's own SQLite store (no `training.tracking_uri`), the platform's experiments
have the artifact root `<workspace>/mlflow/artifacts`. Another root there means the workspace
moved; `relocate` rewrites every location under the old root to the same path under the new one.
Only the standard library is used, so the check costs no MLflow import.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings

ARTIFACTS = "mlflow/artifacts"
"""The workspace's artifact root, relative to the workspace (`Settings.mlflow_artifacts`)."""

URI_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "storage_location"),
    ("model_versions", "source"),
)
"""The columns of MLflow's SQL schema that hold artifact locations."""


@dataclass(frozen=True)
class Relocation:
    """What `relocate` rewrote."""

    old_roots: tuple[str, ...]
    new_root: str
    rows: int


def store_file(settings: Settings) -> Path | None:
    """The workspace's own MLflow SQLite file, or None when the profile names another tracking store."""
    if settings.training.tracking_uri is not None:
        return None
    return settings.path("mlflow/mlflow.db")


def moved_from(settings: Settings) -> tuple[str, ...]:
    """The artifact roots the workspace's MLflow store names other than this workspace's own.

    Args:
        settings: The profile; its workspace is where the store should point.

    Returns:
        The old roots (file URIs); empty when the store points here, is elsewhere or does not exist.
    """
    db = store_file(settings)
    if db is None or not db.exists():
        return ()
    try:
        with _connect(db, read_only=True) as conn:
            return _old_roots(conn, settings.mlflow_artifacts)
    except sqlite3.Error:  # not (yet) an MLflow store: nothing recorded, nothing moved
        return ()


def relocate(settings: Settings) -> Relocation:
    """Point every artifact location under an old workspace's root at the same path under this workspace.

    Args:
        settings: The profile of the workspace where the store now is.

    Returns:
        The old roots, the new root and how many locations were rewritten.

    Raises:
        FileNotFoundError: The workspace has no MLflow store, or no artifacts folder beside it.
    """
    db = store_file(settings)
    if db is None or not db.exists():
        raise FileNotFoundError(f"no MLflow store in the workspace ({settings.path('mlflow/mlflow.db')})")
    if not settings.path(ARTIFACTS).is_dir():
        raise FileNotFoundError(
            f"{settings.path(ARTIFACTS)} does not exist: move the whole workspace, its mlflow/ folder with it"
        )
    new = settings.mlflow_artifacts
    rows = 0
    with _connect(db, read_only=False) as conn:
        old_roots = _old_roots(conn, new)
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for old in old_roots:
            for table, column in URI_COLUMNS:
                if table not in tables:
                    continue
                cursor = conn.execute(  # table and column names come from URI_COLUMNS, values are bound
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                    f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                    (new, len(old) + 1, old, len(old) + 1, old + "/"),
                )
                rows += cursor.rowcount
    return Relocation(old_roots, new, rows)


def _old_roots(conn: sqlite3.Connection, new: str) -> tuple[str, ...]:
    suffix = "/" + ARTIFACTS
    locations = [loc for (loc,) in conn.execute("SELECT DISTINCT artifact_location FROM experiments") if loc]
    return tuple(sorted({loc for loc in locations if loc.startswith("file:") and loc.endswith(suffix)} - {new}))


@contextlib.contextmanager
def _connect(db: Path, read_only: bool) -> Iterator[sqlite3.Connection]:
    uri = f"{db.as_uri()}?mode=ro" if read_only else db.as_uri()
    conn = sqlite3.connect(uri, uri=True, timeout=30)
    try:
        with conn:  # one transaction: committed on success, rolled back on an error
            yield conn
    finally:
        conn.close()
