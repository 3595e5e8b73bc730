"""The Spark feature engine (`features.engine: spark`): the snapshots and labels of `features.snapshots`
and `features.labels`, computed by Spark SQL so the build runs on a cluster's executors.

Same columns, same values (tests/integration/test_spark_engine.py compares every feature and label
with the DuckDB engine's, full and incremental builds), same Parquet file, so Feast and training
do not know which engine ran. Spark SQL has no ASOF join: a running total "as of" a window edge is
the last running-total row before it, found by stacking the probes among the running-total rows
of their customer and carrying the last row forward (`last(..., true)` over a window).

Only this package imports pyspark, and nothing imports it unless the engine is chosen: the
embedded default installs no Spark.

* `session`: the SparkSession from `features.spark` settings, and whether Java is there.
* `snapshots`: the snapshot query in Spark SQL, written to Parquet (BG/NBD fitted per date on the
  driver from the summary columns Spark computed, by the same `features.btyd.btyd_scores`).
* `labels`: the churn labels.
"""
