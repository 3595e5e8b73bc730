"""The drift scenario's workspace: small generated data with or without drift and a weak champion.

Shared by the monitoring integration tests and the drift-review notebook's test (which monitors it
with `churn monitor`). The data has the generator's drift from day `DRIFT_AT` (when asked); the
champion is trained as of day `AS_OF`, before it, and is deliberately weak so that a retrained
challenger beats it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from core.settings import Settings, parse_settings

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
CUSTOMERS, DAYS, SEED = 800, 330, 5
DRIFT_AT, AS_OF = 240, 210
WEEK = dt.timedelta(days=7)


def day(n: int) -> dt.datetime:
    """Midnight UTC of day `n` of the generated period."""
    return START + dt.timedelta(days=n)


def scenario_settings(ws: Path, **training: object) -> Settings:
    """Small, fast settings: weekly snapshots from day 90 (past the 90-day window), a champion as of AS_OF.

    The gate compares challenger and champion only (trees alone, no baseline rule): these tests are
    about the monitoring loop that calls the gate; the blend and the baseline rule are tested with training.
    """
    raw = {
        "workspace": str(ws),
        "features": {"first_observation_after_days": 90},
        "training": {
            "n_trials": 2,
            "max_rounds": 60,
            "as_of": day(AS_OF).date().isoformat(),
            "blend": {"tree_weights": []},
            "gate": {"must_beat_baselines": False},
            **training,
        },
        "monitoring": {"reference_sample": 3000},
    }
    return parse_settings(raw, source="test", env={})


def build(ws: Path, drift: bool) -> Settings:
    """Generate, ingest, featurize and apply; train the champion as of AS_OF."""
    from features.generator.dataset import generate, write_generated
    from features.ingest import ingest
    from features.pipeline import apply_features, build_features
    from training.pipeline import train

    # The first champion is deliberately weak (depth 1, 3 trees), so that a retrained challenger is
    # better on held-out data and the gate's "promote" outcome can be tested.
    settings = scenario_settings(ws, max_rounds=3, search={"max_depth": (1, 1)})
    customers, events = write_generated(
        generate(CUSTOMERS, DAYS, seed=SEED, drift_at=DRIFT_AT if drift else None), ws / "raw"
    )
    ingest(settings, customers_path=customers, events_path=events)
    build_features(settings)
    apply_features(settings)
    result = train(settings)
    assert result.decision.promote, "the first model becomes champion"
    return scenario_settings(ws)
