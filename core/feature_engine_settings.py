"""Settings of the Spark feature engine (`features.engine: spark`, `features.spark`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SparkSettings(BaseModel):
    """Where and how the Spark feature engine runs (`features.spark`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    master: str = "local[2]"
    """The Spark master: `local[N]` runs in one process on N cores; a cluster's address
    (`spark://host:7077`, `yarn`, `k8s://...`) runs the build on its executors. Every executor must
    read the clean data and write the snapshots' folder at the same paths (a shared filesystem)."""
    driver_memory: str = "2g"
    """The driver JVM's heap (`spark.driver.memory`): in local mode, the whole build's."""
    shuffle_partitions: int = Field(8, gt=0)
    """`spark.sql.shuffle.partitions`: a few per core; Spark's 200 is made for a cluster."""
    conf: dict[str, str] = {}
    """Any other Spark settings, e.g. `spark.executor.memory: 8g`."""
