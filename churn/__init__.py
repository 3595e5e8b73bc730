"""The top layer: the `churn` command line, the quickstart and the retraining loop that wire the stages."""
