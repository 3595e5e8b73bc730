"""The real-time path's campaigns: a day's campaign per champion version, groups by the seeded hash."""

from __future__ import annotations

import datetime as dt

from core.settings import parse_settings
from crm.campaigns.plan import assignment_draws
from crm.campaigns.realtime import assign_alerts, realtime_campaign_id

SETTINGS = parse_settings({"crm": {"campaigns": {"control_share": 0.5, "seed": 7}}}, "test", env={})


def _alerts(n: int) -> list[dict[str, object]]:
    return [
        {"customer_id": f"C{i:07d}", "action": "time_limited_coupon", "model_version": "3", "churn_probability": 0.4}
        for i in range(n)
    ]


def test_alerts_of_a_day_share_a_campaign_and_draw_the_hash_groups() -> None:
    at = dt.datetime(2025, 7, 8, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))  # 2025-07-09 in UTC
    assigned = assign_alerts(_alerts(200), SETTINGS, at)
    assert (
        {a["campaign_id"] for a in assigned}
        == {"rt-2025-07-09-v3"}
        == {realtime_campaign_id(at.date() + dt.timedelta(days=1), 3)}
    )
    draws = assignment_draws("rt-2025-07-09-v3", [a["customer_id"] for a in assigned], 7)
    assert [a["group"] for a in assigned] == ["control" if d < 0.5 else "treatment" for d in draws]
    control = [a for a in assigned if a["group"] == "control"]
    assert 60 < len(control) < 140
    assert all(
        a["action"] is None and not a["contact"] and a["planned_action"] == "time_limited_coupon" for a in control
    )
    treated = [a for a in assigned if a["group"] == "treatment"]
    assert all(a["action"] == "time_limited_coupon" and a["contact"] for a in treated)
    # In another order, in smaller batches, the same groups; another day is another campaign.
    again = assign_alerts(_alerts(200)[::-1][:50], SETTINGS, at)
    assert {a["customer_id"]: a["group"] for a in again}.items() <= {
        a["customer_id"]: a["group"] for a in assigned
    }.items()
    later = assign_alerts(_alerts(1), SETTINGS, at + dt.timedelta(days=1))
    assert later[0]["campaign_id"] == "rt-2025-07-10-v3"
