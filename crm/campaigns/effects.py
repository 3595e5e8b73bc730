"""What campaigns did: measured effects of each action, and the successes they give the playbook."""

from __future__ import annotations

from core.settings import Settings


def measured_success(settings: Settings) -> dict[str, float]:
    """Action -> measured success (the share of would-be churners it keeps) over the evaluated campaigns.

    None is measured yet: every action keeps `training.retention_success`.
    """
    del settings
    return {}
