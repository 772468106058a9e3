"""Lab twin of K2's docker/offload/offload_generic.py: one incremental offload ClickHouse -> Iceberg.

Same CLI, window, log lines, exit codes and weaknesses as K2 (fact sheet section 2):
window ts > watermark AND ts <= now() - 5 min; plain append (no dedup); Spark starts before PostgreSQL is
touched; the watermark is updated after the commit, and a failed update still exits 0. Differences, by
necessity: ClickHouse is read by the JDBC stand-in (clickhouse_jdbc_standin.py, JDBC's types over HTTP),
Spark runs in local mode inside this process, and the Iceberg commit is made by pyiceberg (SqlCatalog)
laid out like K2's Hadoop catalog.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import time
from datetime import timezone
from pathlib import Path

import clickhouse_jdbc_standin
from watermark_pg import WatermarkManager, get_incremental_window

log = logging.getLogger("offload_generic")

CLICKHOUSE_HOST = os.environ.get("CLICKHOUSE_HOST", "clickhouse")
CLICKHOUSE_PORT = int(os.environ.get("CLICKHOUSE_PORT", "8123"))
CLICKHOUSE_DB = "k2"
BUFFER_MINUTES = int(os.environ.get("K2_OFFLOAD_BUFFER_MINUTES", "5"))
ICEBERG_WAREHOUSE = os.environ.get("ICEBERG_WAREHOUSE", "/home/iceberg/warehouse")
IDENTIFIER = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Lab-only fault hooks: files in this directory switch on one failure each (see lab/faults.py).
FAULT_DIR = Path(os.environ.get("LAB_FAULT_DIR", "/lab/faults"))


def lab_fault(name: str) -> str | None:
    path = FAULT_DIR / name
    return path.read_text().strip() if path.exists() else None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Offload one ClickHouse table to Iceberg")
    p.add_argument("--source-table", required=True)
    p.add_argument("--target-table", required=True)
    p.add_argument("--timestamp-col", required=True)
    p.add_argument("--sequence-col", required=True)
    p.add_argument("--layer", required=True, choices=["bronze", "silver", "gold"])
    p.add_argument("--columns", default="*")
    args = p.parse_args(argv)
    names = [args.source_table, args.timestamp_col, args.sequence_col, *args.target_table.split(".")]
    if args.columns != "*":
        names += args.columns.split(",")
    bad = [n for n in names if not IDENTIFIER.match(n)]
    if bad:
        p.error(f"invalid identifier(s): {', '.join(bad)}")
    return args


def init_spark(source: str):
    from pyspark.sql import SparkSession
    return (SparkSession.builder.master("local[1]").appName(f"K2-Offload-{source}")
            .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.memory", "512m").config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .getOrCreate())


def _clickhouse():
    import clickhouse_connect
    return clickhouse_connect.get_client(
        host=CLICKHOUSE_HOST, port=CLICKHOUSE_PORT, username="default",
        password=os.environ.get("CLICKHOUSE_PASSWORD", ""), database=CLICKHOUSE_DB,
        connect_timeout=5, send_receive_timeout=300)


def _window_filter(args, start, end) -> str:
    fmt = "%Y-%m-%d %H:%M:%S.%f"  # UTC, tz dropped, as K2 formats the JDBC window
    start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    return f"{args.timestamp_col} > '{start.strftime(fmt)}' AND {args.timestamp_col} <= '{end.strftime(fmt)}'"


def read_clickhouse(args, start, end):
    return clickhouse_jdbc_standin.read(_clickhouse(), f"(SELECT {args.columns} FROM {args.source_table} "
                                                       f"WHERE {_window_filter(args, start, end)} "
                                                       f"ORDER BY {args.timestamp_col}, {args.sequence_col}) "
                                                       f"AS incremental_query")


def lab_stall(args, wm) -> None:
    """Lab faults job-slow (a job that waits, e.g. for cluster resources) and job-throughput (a cluster whose
    cost grows with the backlog). The wait comes before the job reads its watermark, as a job queued for
    executors would: a retry that starts while an orphan waits reads the watermark the orphan left, so the
    faults themselves never double a row (K2 can; the truth check reports it per window)."""
    slow = float(lab_fault("job-slow") or 0)
    rate = int(lab_fault("job-throughput") or 0)
    if rate:
        start, end = get_incremental_window(wm.get_watermark(args.source_table)[0], BUFFER_MINUTES)
        rows = _clickhouse().command(f"SELECT count() FROM {args.source_table} "  # noqa: S608
                                     f"WHERE {_window_filter(args, start, end)}")
        slow += int(rows) / rate
    if slow:
        log.info("lab: the job waits %.0f s", slow)
        time.sleep(slow)


def iceberg_compatible(table):
    """Iceberg has no unsigned ints and stores microseconds: cast what ClickHouse's Arrow output carries."""
    import pyarrow as pa
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_unsigned_integer(t):
            t = pa.int64() if t.bit_width >= 32 else pa.int32()
        elif pa.types.is_timestamp(t):
            t = pa.timestamp("us")
        elif pa.types.is_large_string(t) or pa.types.is_binary(t):
            t = pa.string()
        fields.append(pa.field(f.name, t, nullable=True))
    return table.cast(pa.schema(fields))


def process_with_spark(spark, table, ts_col: str, seq_col: str):
    """Spark step of K2's job: cache the batch, one action for max(ts)/max(seq)/count, hand Arrow on."""
    from pyspark.sql import functions as F
    df = spark.createDataFrame(table).cache()
    row = df.agg(F.max(ts_col).alias("ts"), F.max(seq_col).alias("seq"), F.count("*").alias("n")).collect()[0]
    return df.toArrow(), row["ts"], row["seq"], row["n"]


def write_iceberg(target: str, data, ts_col: str) -> None:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
    namespace, name = target.split(".")
    catalog = SqlCatalog("k2", uri=f"sqlite:///{ICEBERG_WAREHOUSE}/catalog.db", warehouse=f"file://{ICEBERG_WAREHOUSE}")
    try:
        catalog.create_namespace(namespace)
    except NamespaceAlreadyExistsError:
        pass
    try:
        table = catalog.load_table(target)
    except NoSuchTableError:
        table = catalog.create_table(target, schema=data.schema, location=f"{ICEBERG_WAREHOUSE}/{namespace}/{name}")
    table.append(data.cast(table.schema().as_arrow()) if data.schema != table.schema().as_arrow() else data)
    write_version_hint(table)


def write_version_hint(table) -> None:
    """Make the table look like K2's Hadoop-catalog layout: metadata/vN.metadata.json + version-hint.text."""
    current = Path(table.metadata_location.removeprefix("file://"))
    version = len(table.metadata.metadata_log) + 1
    shutil.copyfile(current, current.parent / f"v{version}.metadata.json")
    (current.parent / "version-hint.text").write_text(str(version))


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s - %(name)s - %(levelname)s - %(message)s")
    args = parse_args(argv)
    started = time.time()
    try:
        spark = init_spark(args.source_table)
        log.info("✓ Spark session initialized")
    except Exception as exc:  # noqa: BLE001 - K2 reports any init failure this way, before PostgreSQL is touched
        log.error("Failed to initialize Spark: %s", exc)
        return 1
    wm = WatermarkManager()
    wm.recover_stale_running(args.source_table)
    wm.mark_offload_running(args.source_table)
    lab_stall(args, wm)
    try:
        last_ts, last_seq = wm.get_watermark(args.source_table)
        log.info("✓ Watermark: timestamp=%s, sequence=%s", last_ts, last_seq)
    except Exception as exc:  # noqa: BLE001
        log.error("Failed to get watermark: %s", exc)
        wm.mark_offload_failed(args.source_table, f"Failed to get watermark: {exc}")
        return 1
    start, end = get_incremental_window(last_ts, BUFFER_MINUTES)
    if end <= start:
        log.info("No new data to offload (empty time window). Exiting cleanly.")
        return 0
    log.info("✓ Incremental window: %s to %s", start, end)
    try:
        batch = iceberg_compatible(read_clickhouse(args, start, end))
    except Exception as exc:  # noqa: BLE001
        log.error("Failed to read from ClickHouse: %s", exc)
        wm.mark_offload_failed(args.source_table, f"Failed to read from ClickHouse: {exc}")
        return 1
    if Path("/run/lab-pressure/job-oom").exists():  # lab: memory pressure that a container restart relieves
        hog = []
        while True:  # the container's memory limit makes the kernel OOM-kill this process (exit 137)
            hog.append(bytearray(64 * 1024 * 1024))
    data, max_ts, max_seq, rows = process_with_spark(spark, batch, args.timestamp_col, args.sequence_col)
    if rows == 0 or max_ts is None:
        log.info("No new rows to offload. Exiting cleanly.")
        return 0
    log.info("✓ Max timestamp: %s, Max sequence: %s", max_ts, max_seq)
    try:
        write_iceberg(args.target_table, data, args.timestamp_col)
        log.info("✓ Successfully wrote %d rows to Iceberg", rows)
    except Exception as exc:  # noqa: BLE001
        log.error("Failed to write to Iceberg: %s", exc)
        wm.mark_offload_failed(args.source_table, f"Failed to write to Iceberg: {exc}")
        return 1
    duration = int(time.time() - started)
    try:
        if lab_fault("wm-update-fail") is not None:
            raise RuntimeError("lab fault: connection to watermark database lost")
        wm.update_watermark(args.source_table, max_ts.replace(tzinfo=timezone.utc), int(max_seq or 0), rows, duration)
        log.info("✓ Watermark updated successfully")
    except Exception as exc:  # noqa: BLE001 - K2 still exits 0 here: the duplicate-causing weakness
        log.error("Failed to update watermark: %s", exc)
        log.warning("Data written to Iceberg but watermark update failed. Next run will re-read same data "
                    "(Iceberg will deduplicate).")
    log.info("=" * 60)
    log.info("Offload job completed successfully")
    log.info("Rows offloaded: %s", f"{rows:,}")
    log.info("Duration: %ds", duration)
    log.info("Table: %s → %s", args.source_table, args.target_table)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001
        log.error("Unhandled exception: %s", exc)
        sys.exit(1)
