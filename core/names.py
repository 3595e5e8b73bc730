"""One source of names shared by every stage: entity, columns, label, Feast and MLflow names."""

from __future__ import annotations

ENTITY = "customer"
"""Feast entity name."""

CUSTOMER_ID = "customer_id"
"""Join key of the customer entity, and the id column of every table."""

EVENT_TIMESTAMP = "event_timestamp"
"""Timestamp column of the event log and of the Feast feature snapshots."""

EVENT_TYPE = "event_type"
AMOUNT = "amount"
CATEGORY = "category"
EVENT_ID = "event_id"
"""An event's id, which events pushed in real time carry (a redelivered event counts once)."""
SIGNUP_DATE = "signup_date"
CHURN_DATE = "churn_date"

OBSERVATION_DATE = "observation_date"
"""The date a snapshot describes: features use only events strictly before it."""

LABEL = "churned"
"""Binary label: 1 when the customer churns within the horizon after the observation date."""

PREDICTION = "churn_probability"

ACTION = "action"
"""The retention action: the playbook's recommendation in the alert list, the action taken in a CRM's log."""
ACTION_TIMESTAMP = "action_timestamp"
"""When the CRM took an action (UTC)."""
ACTION_COST = "cost"
"""What one action taken cost."""

QUARANTINE_REASON = "quarantine_reason"
"""Column of the quarantine file that says why a row was rejected."""

# Feast feature views, grouped by theme. A feature's view follows from its name prefix.
VIEW_PURCHASES = "purchases"
VIEW_ENGAGEMENT = "engagement"
VIEW_SERVICE = "service"
VIEW_PROFILE = "profile"
FEATURE_VIEWS = (VIEW_PURCHASES, VIEW_ENGAGEMENT, VIEW_SERVICE, VIEW_PROFILE)

FEATURE_SERVICE = "churn_model_v1"
"""Feast feature service of the default model: every behaviour feature, RFM, tenure and static attributes."""

FEATURE_SERVICE_BEHAVIOUR = "churn_behaviour_v1"
"""Feast feature service without static customer attributes (plan, region, ...): for models that
must score customers on what they do, not on who they are."""

RHYTHM_VIEW = "purchases_rhythm"
"""Feast on-demand feature view: days since the last purchase relative to the customer's usual gap."""

SNAPSHOT_SOURCE = "customer_snapshots"
"""Feast data source over the feature snapshots Parquet file."""

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"

STANDARD_EVENT_TYPES = ("purchase", "visit", "click", "message", "complaint", "support_ticket")

BTYD_FREQUENCY = "purchases_btyd_frequency"
"""Repeat purchase days before the observation date (purchase days - 1): the `x` of BG/NBD."""
BTYD_RECENCY = "purchases_btyd_recency"
"""Days from the first to the last purchase day (the repeat span): the `t_x` of BG/NBD."""
BTYD_AGE = "purchases_btyd_t"
"""Days from the first purchase day to the observation date: the `T` of BG/NBD."""

CUMULATIVE_FEATURES = (BTYD_FREQUENCY, BTYD_RECENCY, BTYD_AGE, "profile_tenure_days", "profile_age_days")
"""Features (besides `*_lifetime`) that grow with every customer's age by construction."""


def is_cumulative(feature: str) -> bool:
    """Whether `feature` only grows as the customers age (lifetime counts, tenure, the BTYD summary).

    Between any two dates such a feature's distribution moves even when behaviour does not, so
    monitoring leaves it out of the drift tests by default (`monitoring.tests.cumulative`).
    """
    return feature.endswith("_lifetime") or feature in CUMULATIVE_FEATURES
