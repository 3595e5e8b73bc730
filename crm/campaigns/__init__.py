"""Retention campaigns that prove themselves: control groups, measured effects, uplift targeting.

* `plan`: the alert list as a campaign: per action its cost and success (measured once a campaign
  measured it), the expected profit that ranks the list and decides who is alerted, and each
  alerted customer's group (treatment or control) from a seeded hash; the campaign record.
* `effects`: what a campaign did, once its label horizon passed: churn in treatment and control
  per action and segment, intent-to-treat and complier effects with confidence intervals, cost,
  saved value, net value and the number needed to treat; pooled over campaigns for the playbook.
* `realtime`: the real-time path's campaigns: one a day per champion version (`rt-<day>-v<version>`),
  every alert raised on arrival in treatment or control by the same seeded hash, kept like a batch one.
* `uplift`: a T-learner on XGBoost and the Qini curves that judge it on held-out campaigns.
* `store` and `tracking`: the campaign folders in the workspace and the MLflow runs (the I/O edge).
"""
