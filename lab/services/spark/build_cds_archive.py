"""Lab only: build the Spark driver's class-data archive (lab/stack.py SPARK_DRIVER_TUNING) by running the offload job's
Spark steps once with -XX:ArchiveClassesAtExit. The JVM writes the archive only on a clean exit, hence the
explicit System.exit at the end."""
from __future__ import annotations

import sys

import pyarrow as pa
from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main(archive: str) -> None:
    spark = (SparkSession.builder.master("local[1]").appName("K2-Offload-cds-training")
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
             .config("spark.driver.memory", "512m").config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .config("spark.driver.extraJavaOptions", f"-XX:TieredStopAtLevel=1 -XX:ArchiveClassesAtExit={archive}")
             .getOrCreate())
    batch = pa.table({"ts": pa.array(range(1000), pa.int64()), "seq": pa.array(range(1000), pa.int64())})
    df = spark.createDataFrame(batch).cache()
    df.agg(F.max("ts"), F.max("seq"), F.count("*")).collect()
    df.toArrow()
    jvm = spark.sparkContext._jvm
    spark.stop()
    try:
        jvm.java.lang.System.exit(0)
    except Exception:  # noqa: BLE001, S110 - the gateway connection drops as the JVM exits, as intended
        pass


if __name__ == "__main__":
    main(sys.argv[1])
