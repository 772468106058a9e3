"""Lab twin of K2's docker/offload/flows/iceberg_offload_flow.py (v3.1.0): flow iceberg-offload-main.

As in K2: layers run bronze -> silver -> gold, tables one after another (direct task calls), each task
runs offload_generic.py in k2-spark-iceberg through `docker exec` with a timeout and retries, and the
first table that exhausts its retries fails the rest of the run. Unlike K2, the metrics really reach
Prometheus (multiprocess files served by the worker's exporter on :8000).
"""
from __future__ import annotations

import os
import re
import subprocess
import time

from offload_metrics import offload_cycles_total, offload_duration_seconds, offload_errors_total, offload_rows_total
from prefect import flow, get_run_logger, task
from table_config import enabled_tables

SPARK_CONTAINER = os.environ.get("K2_SPARK_CONTAINER", "k2-spark-iceberg")
OFFLOAD_SCRIPT = "/home/iceberg/offload/offload_generic.py"
TASK_RETRIES = int(os.environ.get("K2_OFFLOAD_TASK_RETRIES", "2"))
TASK_RETRY_DELAY_SECONDS = int(os.environ.get("K2_OFFLOAD_TASK_RETRY_DELAY_SECONDS", "30"))
SUBFLOW_RETRIES = int(os.environ.get("K2_OFFLOAD_SUBFLOW_RETRIES", "1"))
ROWS_PATTERN = re.compile(r"Rows offloaded:\s*([\d,]+)")


@task(name="offload-table", retries=TASK_RETRIES, retry_delay_seconds=TASK_RETRY_DELAY_SECONDS,
      tags=["iceberg", "offload"])
def offload_table(cfg: dict) -> int:
    logger = get_run_logger()
    table = cfg["source_table"]
    cmd = ["docker", "exec", SPARK_CONTAINER, "python3", OFFLOAD_SCRIPT,
           "--source-table", table, "--target-table", cfg["target_table"],
           "--timestamp-col", cfg["timestamp_col"], "--sequence-col", cfg["sequence_col"],
           "--layer", cfg["layer"], "--columns", cfg["columns"]]
    started = time.time()
    try:
        # As in K2, the task timeout is a literal here (runbook Scenario 5 mitigation A edits it in place);
        # the lab renders this file under .lab/flows with its own shorter value.
        result = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)  # 10-minute timeout
    except subprocess.TimeoutExpired as exc:
        # Killing the local `docker exec` client does NOT stop the job inside the container (as in K2).
        logger.error("✗ Offload timeout: %s (exceeded %s minutes)", table, f"{exc.timeout / 60:g}")
        offload_errors_total.labels(table, "timeout").inc()
        raise
    except subprocess.CalledProcessError as exc:
        logger.error("✗ Offload failed: %s", table)
        logger.error("  Exit code: %s", exc.returncode)
        logger.error("  Stderr: %s", (exc.stderr or "")[-2000:])
        offload_errors_total.labels(table, "process_error").inc()
        raise RuntimeError(f"Offload failed for {table}: {(exc.stderr or '')[-500:]}") from exc
    duration = time.time() - started
    match = ROWS_PATTERN.search(result.stdout + result.stderr)
    rows = int(match.group(1).replace(",", "")) if match else 0
    offload_duration_seconds.labels(table, cfg["layer"]).observe(duration)
    offload_rows_total.labels(table, cfg["layer"]).inc(rows)
    logger.info("✓ Offload completed: %s", table)
    logger.info("  Duration: %.1fs", duration)
    logger.info("  Rows: %s", f"{rows:,}")
    return rows


def _offload_layer(tables: list[dict]) -> int:
    return sum(offload_table(cfg) for cfg in tables)


@flow(name="offload-bronze-layer", retries=SUBFLOW_RETRIES, retry_delay_seconds=300)
def offload_bronze_layer(tables: list[dict]) -> int:
    return _offload_layer(tables)


@flow(name="offload-silver-layer", retries=SUBFLOW_RETRIES, retry_delay_seconds=300)
def offload_silver_layer(tables: list[dict]) -> int:
    return _offload_layer(tables)


@flow(name="offload-gold-layer", retries=SUBFLOW_RETRIES, retry_delay_seconds=300)
def offload_gold_layer(tables: list[dict]) -> int:
    return _offload_layer(tables)


LAYER_FLOWS = (("bronze", offload_bronze_layer), ("silver", offload_silver_layer), ("gold", offload_gold_layer))


@flow(name="iceberg-offload-main", version="3.1.0")
def iceberg_offload_main(tables: list[str] | None = None) -> int:
    """Offload every enabled table (or only the named source tables) to the cold tier."""
    selected = [t for t in enabled_tables() if tables is None or t["source_table"] in tables]
    status = "failed"
    try:
        total = 0
        for layer, layer_flow in LAYER_FLOWS:
            layer_tables = [t for t in selected if t["layer"] == layer]
            if layer_tables:
                total += layer_flow(layer_tables)
        status = "success"
        return total
    finally:
        offload_cycles_total.labels(status).inc()
