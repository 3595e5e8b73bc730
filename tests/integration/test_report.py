"""The ops report (`crm.report`) on small real workspaces built by the real pipeline.

No model is trained: the alert list is the CRM early-warning layer on the newest snapshot with
seeded random probabilities and hand-made reasons, which is what `score_alerts` returns apart
from where the probabilities come from.
"""

from __future__ import annotations

import base64
import datetime as dt
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import names
from core.settings import Settings, parse_settings
from crm.early_warning import early_warning
from crm.kpi import churn_by_observation, cohort_retention, monthly_churn
from crm.report.history import load_history
from crm.report.page import NO_ALERTS, build_report
from crm.report.tables import retention
from features.generator.dataset import generate, write_generated
from features.ingest import ingest
from features.paths import FeaturePaths
from features.pipeline import build_features, latest_snapshot

SECTION_IDS = (
    "headline",
    "churn-trend",
    "cohort-retention",
    "risk-distribution",
    "segment-mix",
    "alert-volume",
    "event-lag",
    "top-alerts",
)
NOW = dt.datetime(2025, 7, 21, 8, 30, tzinfo=dt.UTC)
EVIL_ID = '<script>alert("x")</script>'
VOID = {"meta", "br", "img", "hr", "input", "link", "col", "area", "base", "wbr", "source"}


class PageParser(HTMLParser):
    """Collects tables (by id) as rows of cell texts, element texts by id, and checks that tags nest."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.texts: dict[str, str] = {}
        self.problems: list[str] = []
        self.stack: list[tuple[str, str | None]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ident = dict(attrs).get("id")
        if tag == "br" and self._cell is not None:
            self._cell.append("\n")
        if tag in VOID:
            return
        self.stack.append((tag, ident))
        if ident is not None:
            self.texts.setdefault(ident, "")
        if tag == "table" and ident:
            self._table = ident
            self.tables[ident] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag == "td" and self._table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1][0] if self.stack else 'nothing'}")
            return
        _, ident = self.stack.pop()
        if tag == "td" and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table" and ident == self._table:
            self._table = None

    def handle_data(self, data: str) -> None:
        for _, ident in self.stack:
            if ident is not None:
                self.texts[ident] += data
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> PageParser:
    """The parsed page; fails when tags do not nest."""
    parser = PageParser()
    parser.feed(page)
    parser.close()
    assert not parser.problems, parser.problems[:5]
    assert not parser.stack, f"unclosed tags: {parser.stack}"
    return parser


def tier_of(probability: float, tiers: dict[str, float]) -> str:
    """The tier with the highest cut-off not above `probability` (as `model.predictor.risk_tier`,
    which is not imported here: it would import XGBoost, seconds of test time)."""
    return max((floor, name) for name, floor in tiers.items() if probability >= floor)[1]


def phrase(feature: str, value: float) -> str:
    """A reason phrase like the predictor's."""
    return f"{feature.replace('_', ' ')} = {value:g}"


def make_workspace(root: Path, raw: dict[str, object] | None = None) -> Settings:
    """Settings for a workspace in `root`."""
    base: dict[str, object] = {"workspace": str(root), "features": {"first_observation_after_days": 30}}
    return parse_settings({**base, **(raw or {})}, source="test", env={})


def make_alerts(settings: Settings, seed: int = 7) -> pd.DataFrame:
    """An alert list with the documented columns for the newest snapshot, sorted by expected loss."""
    features = latest_snapshot(settings)
    rng = np.random.default_rng(seed)
    probability = rng.beta(1.4, 4.0, len(features))
    tiers = [tier_of(float(p), settings.serving.risk_tiers) for p in probability]
    alerts = early_warning(settings.crm, features, probability, tiers)
    # The top customer: a rule hit, a sure churner and the highest value.
    top = int(np.flatnonzero(alerts["rule_hits"].map(len).to_numpy() > 0)[0])
    alerts.loc[top, names.PREDICTION] = 0.97
    alerts.loc[top, "risk_tier"] = "high"
    alerts.loc[top, "customer_value"] = float(alerts["customer_value"].max()) * 3
    alerts["expected_loss"] = alerts[names.PREDICTION] * alerts["customer_value"]
    second = int(alerts["expected_loss"].drop(index=top).idxmax())
    alerts.loc[second, names.CUSTOMER_ID] = EVIL_ID
    reason_features = ["purchases_frequency_change", "purchases_days_since_last", "engagement_visits_30d"]
    alerts.insert(1, "as_of", features[names.EVENT_TIMESTAMP].iloc[0].date())
    alerts.insert(
        4,
        "reasons",
        [
            [
                {"feature": f, "value": row[f], "contribution": 0.1, "phrase": phrase(f, row[f])}
                for f in reason_features
                if pd.notna(row[f])
            ]
            for _, row in features.iterrows()
        ],
    )
    alerts["model_version"] = "7"
    order = alerts.sort_values(["expected_loss", names.PREDICTION], ascending=False, kind="stable")
    return order.reset_index(drop=True)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The generated CRM data (customers with churn dates) through ingest and the feature build."""
    root = tmp_path_factory.mktemp("report")
    settings = make_workspace(root)
    customers, events = write_generated(generate(400, 200, 3), root / "raw")
    ingest(settings, customers_path=customers, events_path=events)
    build_features(settings)
    return settings


@pytest.fixture(scope="module")
def alerts(workspace: Settings) -> pd.DataFrame:
    return make_alerts(workspace)


@pytest.fixture(scope="module")
def page(workspace: Settings, alerts: pd.DataFrame) -> str:
    return build_report(workspace, alerts, now=NOW)


def test_every_section_is_there_in_a_well_formed_page(page: str) -> None:
    parsed = parse(page)
    assert page.lower().startswith("<!doctype html>")  # as core/templates/base.html writes it
    for ident in SECTION_IDS:
        assert f'<h2 id="{ident}">' in page
    assert [page.index(f'id="{i}"') for i in SECTION_IDS] == sorted(page.index(f'id="{i}"') for i in SECTION_IDS)
    assert "2025-07-21 08:30 UTC" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page  # self-contained
    assert "Model version" in parsed.texts["kpi-model"] and "7" in parsed.texts["kpi-model"]


def test_plots_are_embedded_pngs(page: str) -> None:
    marker = "data:image/png;base64,"
    assert page.count(marker) >= 5
    first = page.split(marker, 1)[1].split('"', 1)[0]
    assert base64.b64decode(first)[:8] == b"\x89PNG\r\n\x1a\n"


def test_headline_figures(page: str, alerts: pd.DataFrame) -> None:
    texts = parse(page).texts
    assert f"{alerts['expected_loss'].sum():,.0f}" in texts["kpi-revenue-at-risk"]
    assert f"{len(alerts):,}" in texts["kpi-customers"]
    assert str(alerts["as_of"].iloc[0]) in texts["kpi-as-of"]
    high = (alerts["risk_tier"] == "high").mean()
    assert f"high (p ≥ 0.50): {high:.1%} ({(alerts['risk_tier'] == 'high').sum()})" in texts["tier-shares"]


def test_top_alerts_start_with_the_highest_expected_loss(page: str, alerts: pd.DataFrame) -> None:
    rows = [r for r in parse(page).tables["top-alerts-table"] if r]
    assert len(rows) == 25
    top = alerts.iloc[0]
    first = rows[0]
    assert first[0] == top[names.CUSTOMER_ID]
    assert first[1] == f"{top[names.PREDICTION]:.2f}"
    assert first[5] == f"{top['expected_loss']:,.0f}"
    assert top["reasons"][0]["phrase"] in first[6].split("\n")
    hit = top["rule_hits"][0]
    (feature, value), *_ = hit["values"].items()
    assert f"{hit['rule']} ({feature}={round(value, 2):g}" in first[7]
    assert [r[0] for r in rows] == alerts[names.CUSTOMER_ID].head(25).tolist()


def test_text_is_escaped(page: str) -> None:
    assert EVIL_ID not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page  # as Jinja2 autoescape writes it
    assert EVIL_ID in [r[0] for r in parse(page).tables["top-alerts-table"] if r]


def test_hostile_segment_and_action_names_are_escaped(workspace: Settings, alerts: pd.DataFrame) -> None:
    """Names from the CRM config reach the page as text in every table and figure that shows them."""
    segment, action = "<script>alert(1)</script>", "<img src=x onerror=alert(2)>"
    hostile = alerts.copy()
    hostile.loc[:9, "segment"] = segment
    hostile.loc[:4, "action"] = action
    page = build_report(workspace, hostile, now=NOW)
    tables = parse(page).tables
    assert segment not in page and action not in page
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert segment in [r[0] for r in tables["segment-table"] if r]
    assert segment in [r[0] for r in tables["volume-segment"] if r]
    assert action in [r[0] for r in tables["volume-action"] if r]
    top = [r for r in tables["top-alerts-table"] if r]
    assert top[0][3] == segment and top[0][4] == action


def test_trend_table_matches_monthly_churn(page: str, workspace: Settings) -> None:
    paths = FeaturePaths.of(workspace)
    customers = pd.read_parquet(paths.clean_customers)
    stamps = pd.read_parquet(paths.clean_events, columns=[names.EVENT_TIMESTAMP])[names.EVENT_TIMESTAMP]
    last_day = stamps.max().tz_localize(None).normalize()
    first_month = stamps.min().tz_localize(None).normalize().replace(day=1)
    monthly = monthly_churn(customers, last_day)
    # Months from the first month with events on (the export lacks customers lost before it), newest first.
    expected = monthly[monthly["month"] >= first_month].iloc[::-1].head(12)
    rows = [r for r in parse(page).tables["trend-table"] if r]
    assert len(rows) == len(expected) == 6  # Jan..Jun 2025; July is not over on the last day
    for row, (_, want) in zip(rows, expected.iterrows(), strict=True):
        assert row[0] == f"{want['month']:%b %Y}"
        assert int(row[1].replace(",", "")) == want["customers"]
        assert int(row[2]) == want["churned"]
        assert float(row[3].rstrip("%")) / 100 == pytest.approx(want["churn_rate"], abs=5e-5)
        assert float(row[4].rstrip("%")) / 100 == pytest.approx(want["annualised"], abs=5e-4)


def test_volume_tables_count_every_customer(page: str, alerts: pd.DataFrame) -> None:
    tables = parse(page).tables
    for by in ("risk_tier", "segment", "action"):
        rows = [r for r in tables[f"volume-{by}"] if r]
        counts = {r[0]: int(r[1].replace(",", "")) for r in rows}
        assert {k: v for k, v in counts.items() if v} == alerts[by].value_counts().to_dict()
        assert sum(counts.values()) == len(alerts)


def test_empty_alerts_give_a_page_saying_so(workspace: Settings, alerts: pd.DataFrame) -> None:
    page = build_report(workspace, alerts.iloc[0:0], now=NOW)
    parse(page)
    assert NO_ALERTS in page
    for ident in SECTION_IDS:
        assert f'<h2 id="{ident}">' in page
    assert page.count("data:image/png;base64,") == 2  # trend and retention come from the workspace


def test_purchases_only_workspace(tmp_path: Path) -> None:
    """No customers table and no churn dates: labels-based trend and retention by activity."""
    data = generate(300, 200, 4)
    _, events_path = write_generated(data, tmp_path / "generated")
    events = pd.read_parquet(events_path)
    raw = tmp_path / "ws" / "raw"
    raw.mkdir(parents=True)
    events[events[names.EVENT_TYPE] == "purchase"].to_parquet(raw / "purchases.parquet")
    settings = make_workspace(
        tmp_path / "ws",
        {
            "data": {
                "customers": {"path": None, "attributes": []},
                "events": {"path": "raw/purchases.parquet", "event_types": ["purchase"]},
            },
            "labels": {"kind": "activity", "horizon_days": 30},
        },
    )
    ingest(settings)
    build_features(settings)
    ids = latest_snapshot(settings, [names.CUSTOMER_ID])[names.CUSTOMER_ID].head(3).tolist()
    alerts = pd.DataFrame(
        {
            names.CUSTOMER_ID: ids,
            "as_of": dt.date(2025, 7, 20),
            names.PREDICTION: [0.8, 0.4, 0.1],
            "risk_tier": ["high", "medium", "low"],
            "reasons": [[{"feature": "f", "value": 1.0, "contribution": 0.2, "phrase": "no purchase lately"}], [], []],
            "segment": ["lost", "at_risk", "loyal"],
            "rule_hits": [[], [], []],
            "customer_value": [100.0, 50.0, 10.0],
            "expected_loss": [80.0, 20.0, 1.0],
            "action": ["win_back_offer", "monitor", "monitor"],
            "action_priority": pd.array([6, None, None], dtype="Int64"),
            "model_version": "1",
        }
    )
    page = build_report(settings, alerts, now=NOW)
    parsed = parse(page)
    assert "active (any event)" in page
    assert page.count("data:image/png;base64,") >= 5
    labels = pd.read_parquet(FeaturePaths.of(settings).labels)
    expected = churn_by_observation(labels, 30).iloc[::-1].head(12)
    rows = [r for r in parsed.tables["trend-table"] if r]
    assert [r[0] for r in rows] == [f"{d:%Y-%m-%d}" for d in expected[names.OBSERVATION_DATE]]
    for row, rate in zip(rows, expected["churn_rate"], strict=True):
        assert float(row[3].rstrip("%")) / 100 == pytest.approx(rate, abs=5e-5)
    assert "no purchase lately" in page
    # Retention from the per-month reduction of the events equals retention from the events themselves.
    history = load_history(settings)
    paths = FeaturePaths.of(settings)
    full = cohort_retention(
        pd.read_parquet(paths.clean_customers), pd.read_parquet(paths.clean_events), history.last_day, max_months=12
    )
    table = retention(history)
    assert table is not None
    pd.testing.assert_frame_equal(table, full.reindex(columns=sorted(full.columns)))


def test_event_lag_says_when_nothing_was_streamed_then_shows_the_streamed_events(
    workspace: Settings, alerts: pd.DataFrame, page: str
) -> None:
    from crm.freshness import NO_EVENTS
    from stream.log import EventLog
    from stream.online import OnlineFeatures
    from stream.processor import StreamProcessor
    from stream.state import SqliteState

    assert NO_EVENTS in parse(page).texts["event-lag-summary"]
    # Events through the real-time path (event log, features on arrival; no store or scorer here).
    paths = FeaturePaths.of(workspace)
    log = EventLog(paths.clean_events)
    online = OnlineFeatures(workspace, log)
    processor = StreamProcessor(workspace, log, online, SqliteState(workspace.path("stream/state.db")), None, None)
    customers = pd.read_parquet(paths.clean_customers)
    cid = str(customers[customers[names.CHURN_DATE].isna()][names.CUSTOMER_ID].iloc[0])
    now = dt.datetime.now(dt.UTC)
    for batch in range(2):
        records = [
            {
                "event_id": f"lag-{batch}-{i}",
                "customer_id": cid,
                "event_timestamp": (now - dt.timedelta(seconds=batch * 3 + i)).isoformat(),
                "event_type": "visit",
            }
            for i in range(3)
        ]
        processor.apply(records, arrived_at=now - dt.timedelta(seconds=2))
    text = parse(build_report(workspace, alerts, now=dt.datetime.now(dt.UTC))).texts["event-lag-summary"]
    assert "6 streamed events in 2 batches" in text and "p99" in text, text
    assert f"newest event {now:%Y-%m-%d %H:%M:%S}" in text
