"""Create K2's cold tables from K2's own Iceberg DDL (docker/iceberg/ddl/0[2-4]-*.sql, mounted read-only at
/home/iceberg/ddl), in the catalog K2's offload job writes to: `k2`, Hadoop type, warehouse /home/iceberg/warehouse.
K2 runs the same files with spark-sql (00-run-all-ddl.sh, catalog `demo` on the same warehouse: the same tables).
Idempotent (the DDL says IF NOT EXISTS). Run by `labctl up` in the conformance lane's Spark container."""
from __future__ import annotations

import re
import sys
from pathlib import Path

DDL_DIR = Path("/home/iceberg/ddl")
WAREHOUSE = "/home/iceberg/warehouse"
# K2's flow (iceberg_offload_flow.py, _SILVER_TRADES_COLUMNS) says "Iceberg cold.silver_trades has had these columns
# dropped to match"; its DDL file still creates them, and K2's job then fails with CANNOT_FIND_DATA. The lane makes
# the drop the flow describes (docs/fidelity.md: a stock K2 built from its files cannot offload silver).
DROPPED_IN_PRODUCTION = {"cold.silver_trades": ("trade_conditions", "vendor_data", "validation_errors")}


def statements(sql: str) -> list[str]:
    """The file's statements: `--` comments dropped (outside quotes), split at the semicolons that end them."""
    text = "\n".join(re.sub(r"--(?=(?:[^']*'[^']*')*[^']*$).*", "", line) for line in sql.splitlines())
    return [s.strip() for s in text.split(";") if s.strip()]


def main() -> int:
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[1]").appName("K2-Conformance-DDL")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.catalog.k2", "org.apache.iceberg.spark.SparkCatalog")
             .config("spark.sql.catalog.k2.type", "hadoop").config("spark.sql.catalog.k2.warehouse", WAREHOUSE)
             .config("spark.sql.catalog.k2.io-impl", "org.apache.iceberg.hadoop.HadoopFileIO")
             .config("spark.sql.defaultCatalog", "k2")
             .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
             .getOrCreate())
    spark.sql("CREATE NAMESPACE IF NOT EXISTS k2.cold")
    layers = sys.argv[1:] or ["bronze", "silver"]
    for path in sorted(DDL_DIR.glob("0[2-4]-*.sql")):
        if not any(layer in path.name for layer in layers):
            continue
        for statement in statements(path.read_text()):
            spark.sql(statement)
        print(f"{path.name}: applied")
    for table, columns in DROPPED_IN_PRODUCTION.items():
        present = [c for c in columns if c in spark.table(table).columns] if spark.catalog.tableExists(table) else []
        if present:
            spark.sql(f"ALTER TABLE {table} DROP COLUMNS ({', '.join(present)})")
            print(f"{table}: dropped {', '.join(present)}, as K2's flow says production did")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
