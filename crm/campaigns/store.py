"""The campaigns in the workspace: one folder per campaign under `crm.campaigns.dir`.

Each folder holds `campaign.json` (the record), `assignments.parquet` (every alerted customer: action,
group, probability, value, segment, ...), `features.parquet` (their features as scored, for the
uplift model), and once imported and evaluated `actions.parquet` (what the CRM did) and
`evaluation.json` (the measured effects). Every file is written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from core import names
from core.io import write_atomic_parquet, write_atomic_text
from core.settings import Settings
from crm.campaigns.plan import ASSIGNMENT_COLUMNS, GROUP

RECORD = "campaign.json"
ASSIGNMENTS = "assignments.parquet"
FEATURES = "features.parquet"
ACTIONS = "actions.parquet"
EVALUATION = "evaluation.json"


class CampaignNotFoundError(FileNotFoundError):
    """No campaign of that id in the workspace."""


def campaigns_root(settings: Settings) -> Path:
    """The folder of every campaign."""
    return settings.path(settings.crm.campaigns.dir)


def campaign_folder(settings: Settings, campaign_id: str) -> Path:
    """The folder of one campaign."""
    return campaigns_root(settings) / campaign_id


def record_beside(alerts_path: Path) -> Path:
    """Where `churn score` writes the campaign record next to the alert list: alerts.csv -> alerts.campaign.json."""
    return alerts_path.with_name(alerts_path.name.split(".")[0] + ".campaign.json")


def write_json(data: Any, path: Path) -> Path:  # noqa: ANN401 - any JSON-ready value
    """Write JSON (indented, keys in order) atomically."""
    return write_atomic_text(json.dumps(data, indent=2, default=str) + "\n", path)


def write_campaign(
    settings: Settings, record: dict[str, Any], planned: pd.DataFrame, features: pd.DataFrame | None
) -> Path:
    """Write a campaign's record, its alerted customers and their features into its folder.

    Args:
        settings: The profile.
        record: `crm.campaigns.plan.campaign_record`.
        planned: `plan_campaign`'s rows; those with a group are kept.
        features: The scored feature rows (with customer_id); those of the alerted customers are
            kept. None: no features (no uplift model can learn from this campaign).

    Returns:
        The campaign's folder.
    """
    folder = campaign_folder(settings, record["campaign_id"])
    alerted = planned[planned[GROUP].notna()]
    columns = [c for c in ASSIGNMENT_COLUMNS if c in alerted]
    write_atomic_parquet(alerted[columns].reset_index(drop=True), folder / ASSIGNMENTS)
    if features is not None:
        ids = alerted[names.CUSTOMER_ID].astype(str)
        rows = features[features[names.CUSTOMER_ID].astype(str).isin(set(ids))]
        write_atomic_parquet(rows.reset_index(drop=True), folder / FEATURES)
    write_json(record, folder / RECORD)
    return folder


def campaign_ids(settings: Settings) -> list[str]:
    """The workspace's campaigns, oldest as-of date first."""
    root = campaigns_root(settings)
    if not root.is_dir():
        return []
    records = [read_json(p) for p in root.glob(f"*/{RECORD}")]
    return [r["campaign_id"] for r in sorted(records, key=lambda r: (r["as_of"], r["campaign_id"]))]


def read_json(path: Path) -> Any:  # noqa: ANN401 - any JSON value
    """A JSON file's content."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_record(settings: Settings, campaign_id: str) -> dict[str, Any]:
    """A campaign's record.

    Raises:
        CampaignNotFoundError: No such campaign; the message lists those there are.
    """
    path = campaign_folder(settings, campaign_id) / RECORD
    if not path.exists():
        known = campaign_ids(settings)
        listed = ", ".join(known) if known else "none yet: `churn score` plans one"
        raise CampaignNotFoundError(f"no campaign '{campaign_id}' in {campaigns_root(settings)} (campaigns: {listed})")
    record: dict[str, Any] = read_json(path)
    return record


def read_assignments(settings: Settings, campaign_id: str) -> pd.DataFrame:
    """A campaign's alerted customers (`assignments.parquet`)."""
    read_record(settings, campaign_id)
    return pd.read_parquet(campaign_folder(settings, campaign_id) / ASSIGNMENTS)


def read_features(settings: Settings, campaign_id: str) -> pd.DataFrame | None:
    """A campaign's customers' features as scored; None when it kept none."""
    path = campaign_folder(settings, campaign_id) / FEATURES
    return pd.read_parquet(path) if path.exists() else None
