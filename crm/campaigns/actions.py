"""Importing what the CRM did in a campaign: its actions export through the actions contract.

The I/O edge around `features.contract.actions.split_actions`: the file is read (CSV or Parquet),
checked against the campaign (its customers, its window) and the playbook's actions, and written
as `actions.parquet` in the campaign's folder; rejected rows go to
`<data.quarantine_dir>/actions-<campaign>.csv` with their reasons. Both atomically, so a failed
import leaves the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core import names
from core.io import write_atomic_csv, write_atomic_parquet
from core.settings import Settings
from crm.campaigns.store import ACTIONS, campaign_folder, read_assignments, read_record
from features.contract.actions import split_actions
from features.contract.fields import ContractError
from features.ingest import read_table


@dataclass(frozen=True)
class ActionsImport:
    """What importing a campaign's actions did."""

    campaign_id: str
    source: Path
    clean_path: Path
    quarantine_path: Path
    rows_in: int
    valid_rows: int
    quarantined_rows: int
    reasons: dict[str, int] = field(default_factory=dict)


def import_actions(settings: Settings, campaign_id: str, path: Path | None = None) -> ActionsImport:
    """Validate a campaign's actions export and keep its good rows with the campaign.

    Args:
        settings: The profile (`data.actions`: the file and its column mapping).
        campaign_id: The campaign the actions were taken in.
        path: The export; default `data.actions.path` in the workspace.

    Raises:
        CampaignNotFoundError: No such campaign.
        FileNotFoundError: The export does not exist.
        ContractError: A mapped column is missing; the message names the file, field and key.
    """
    record = read_record(settings, campaign_id)
    customers = read_assignments(settings, campaign_id)[names.CUSTOMER_ID].astype(str)
    file = Path(path) if path is not None else settings.path(settings.data.actions.path)
    try:
        raw = read_table(file)
    except FileNotFoundError:
        raise FileNotFoundError(f"actions file {file} does not exist (data.actions.path in the config)") from None
    try:
        result = split_actions(
            raw,
            settings.data.actions,
            campaign_id=campaign_id,
            customers=set(customers),
            actions=settings.crm.actions(),
            start=pd.Timestamp(record["as_of"], tz="UTC"),
            end=pd.Timestamp(record["window_end"], tz="UTC"),
        )
    except ContractError as exc:
        raise ContractError(f"{file}: {exc}") from None
    clean = write_atomic_parquet(result.valid, campaign_folder(settings, campaign_id) / ACTIONS)
    quarantine = write_atomic_csv(
        result.quarantined, settings.path(settings.data.quarantine_dir) / f"actions-{campaign_id}.csv"
    )
    return ActionsImport(
        campaign_id=campaign_id,
        source=file,
        clean_path=clean,
        quarantine_path=quarantine,
        rows_in=result.rows_in,
        valid_rows=len(result.valid),
        quarantined_rows=len(result.quarantined),
        reasons=dict(result.counts),
    )


def read_actions(settings: Settings, campaign_id: str) -> pd.DataFrame | None:
    """A campaign's imported actions; None when none were imported."""
    path = campaign_folder(settings, campaign_id) / ACTIONS
    return pd.read_parquet(path) if path.exists() else None
