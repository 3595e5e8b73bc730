"""Behaviour feature snapshots from the event log, computed with DuckDB over Parquet.

One row per customer per observation date. Every value uses only events strictly before the
observation date (midnight UTC), so nothing from the future leaks into training.

How it stays fast: events are reduced to one row per customer and active day, turned into running
totals per customer, and every window is a difference of two running totals looked up with an
ASOF join (`total before the observation date - total before the window's start`). The cost grows
with customers x observation dates x window edges, not with the events each window covers.

Feature names start with their Feast view (`purchases_`, `engagement_`, `service_`, `profile_`);
event types, amounts and categories a dataset does not have produce no columns at all.

The modules, in the order a build goes through them:

* `inputs`: DuckDB over the clean data: the connection, the input views, and what the data holds
  (event types, amounts, categories, attributes, the span of days).
* `spec`: what to compute: observation dates, windows and the data's shape; feature names and
  the Feast view each belongs to.
* `sql`: the snapshot query, built from the spec.
* `build`: the query run over the inputs, into a frame or straight into Parquet.

`features.spark` computes the same snapshots on Spark (`features.engine: spark`) from the same
expressions of `sql`, with its own lookups in place of the ASOF joins.
"""
