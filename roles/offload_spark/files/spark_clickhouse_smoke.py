"""Runbook Scenario 3, step 4: Spark starts inside the Spark container and reads `SELECT 1` from ClickHouse.

Run as `python3 - <reader> <url> <database> <jdbc jar>` with this file on stdin (nothing is copied into the
container). The password comes from the container's own CLICKHOUSE_PASSWORD; it never crosses the command line.
reader `jdbc` is K2's path (clickhouse-jdbc through Spark's JDBC source, no --packages: no Maven needed);
`http` reads through clickhouse-connect into a Spark DataFrame, as the lab's job does.
"""
import os
import sys
from urllib.parse import urlsplit

reader, url, database, jar = sys.argv[1:5]
from pyspark.sql import SparkSession  # noqa: E402 - after the arguments, so a usage error is cheap

spark = (SparkSession.builder.master("local[1]").appName("k2-offload-smoke-test")
         .config("spark.jars", jar).config("spark.ui.enabled", "false")
         .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
         .getOrCreate())
password = os.environ.get("CLICKHOUSE_PASSWORD", "")
if reader == "jdbc":
    parts = urlsplit(url)
    frame = (spark.read.format("jdbc").option("url", f"jdbc:clickhouse://{parts.hostname}:{parts.port or 8123}/{database}")
             .option("driver", "com.clickhouse.jdbc.ClickHouseDriver").option("user", "default")
             .option("password", password).option("query", "SELECT 1 AS ok").load())
else:
    import clickhouse_connect
    parts = urlsplit(url)
    client = clickhouse_connect.get_client(host=parts.hostname, port=parts.port or 8123, username="default",
                                           password=password, database=database, connect_timeout=5)
    frame = spark.createDataFrame(client.query_arrow("SELECT toInt32(1) AS ok"))
value = frame.collect()[0][0]
spark.stop()
print(f"SPARK SMOKE TEST OK: Spark read {value} from ClickHouse ({reader})" if value == 1 else "SPARK SMOKE TEST FAILED")
sys.exit(0 if value == 1 else 1)
