"""The early-warning domain: warning rules, layers, segments, playbook, risk tiers, KPIs, alert list, ops report."""
