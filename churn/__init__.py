"""Shared bottom layer (settings, names) and the top layer (the `churn` CLI) of the churn platform."""
