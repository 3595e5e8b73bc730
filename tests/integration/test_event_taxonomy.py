"""A SaaS product's own event log (21 types, configs/saas.yaml) through ingestion, features, Feast and the CRM check."""

from __future__ import annotations

from pathlib import Path

from churn.cli.data import generate_data
from core.settings import load_settings
from crm.early_warning import check_features
from features.generator.taxonomy import TYPES
from features.ingest import ingest
from features.pipeline import apply_features, build_features, training_set

REPO = Path(__file__).resolve().parents[2]


def test_every_configured_type_gets_its_features_and_the_crm_rules_find_them(tmp_path: Path) -> None:
    settings = load_settings(REPO / "configs" / "saas.yaml", env={"CHURN_WORKSPACE": str(tmp_path)})
    settings = settings.model_copy(
        update={"generator": settings.generator.model_copy(update={"customers": 400, "days": 200})}
    )
    generate_data(settings)
    report = ingest(settings)
    assert report.events.quarantined_rows == 0  # every generated type is a configured one
    build_features(settings)
    apply_features(settings)
    frame = training_set(settings)
    features = set(frame.columns)
    assert len(TYPES) == len(settings.data.events.event_types) == 21
    for kind in ("login", "meeting", "add_contact", "search", "export"):  # engagement: the default family
        assert {f"engagement_{kind}_30d", f"engagement_{kind}_days_since_last", f"engagement_{kind}_change"} <= features
    for kind in ("bug_report", "cancel_page_view", "ticket_opened"):  # mapped to service
        assert f"service_{kind}_7d" in features
    # Three purchase types: the purchase family drives the purchase, lifetime and BG/NBD features,
    # and each keeps counts of its own; their amounts are the spend.
    assert {
        "purchases_count_30d",
        "purchases_spend_90d",
        "purchases_invoice_paid_30d",
        "purchases_upgrade_30d",
    } <= features
    assert {"purchases_count_lifetime", "purchases_btyd_frequency", "purchases_btyd_p_alive"} <= features
    assert not [f for f in features if f.startswith("service_complaints") or "visits" in f]
    check_features(settings.crm, sorted(features))  # the profile's rules and layers name real features
