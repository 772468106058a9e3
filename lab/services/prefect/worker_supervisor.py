"""Main process of k2-prefect-worker: the Prefect process worker plus the offload metrics exporter.

The exporter serves on :8000 the runbook's metrics written by flow-run subprocesses (multiprocess
files), every (table, error_type) series created at 0 at start-up (increase() ignores a series' first
sample), and offload_lag_minutes computed from the watermark table at each scrape.
Lab fault hook: SIGUSR1 makes this process allocate memory until the kernel OOM-kills the container.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

sys.path.insert(0, os.environ.get("K2_FLOWS_DIR", "/opt/prefect/flows"))
from offload_metrics import CYCLE_STATUSES, ERROR_TYPES, offload_cycles_total, offload_duration_seconds, offload_errors_total  # noqa: E402
from table_config import enabled_tables  # noqa: E402


class LagCollector:
    """offload_lag_minutes{table} = now - last_offload_timestamp, read from PostgreSQL at scrape time."""

    def collect(self):
        import psycopg2
        gauge = GaugeMetricFamily("offload_lag_minutes", "Minutes since the table's watermark", labels=["table"])
        try:
            with psycopg2.connect(host=os.environ["PREFECT_DB_HOST"], port=int(os.environ["PREFECT_DB_PORT"]),
                                  dbname=os.environ["PREFECT_DB_NAME"], user=os.environ["PREFECT_DB_USER"],
                                  password=os.environ["PREFECT_DB_PASSWORD"], connect_timeout=2) as conn, \
                    conn.cursor() as cur:
                cur.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'offload_watermarks' "
                            "AND column_name = 'last_offload_timestamp'")
                ts = "last_offload_timestamp" if cur.fetchone() else "max_timestamp"
                cur.execute(f"SELECT table_name, EXTRACT(EPOCH FROM NOW() - max({ts})) / 60 "  # noqa: S608
                            "FROM offload_watermarks GROUP BY table_name")
                for table, lag in cur.fetchall():
                    gauge.add_metric([table], float(lag))
        except Exception as exc:  # noqa: BLE001 - no lag series while the database is unreachable
            print(f"exporter: lag unavailable: {exc}".splitlines()[0], file=sys.stderr, flush=True)
        yield gauge


def start_exporter(port: int) -> None:
    mp_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(mp_dir, ignore_errors=True)
    mp_dir.mkdir(parents=True)
    for cfg in enabled_tables():
        for error_type in ERROR_TYPES:
            offload_errors_total.labels(cfg["source_table"], error_type).inc(0)
        offload_duration_seconds.labels(cfg["source_table"], cfg["layer"])
    for status in CYCLE_STATUSES:
        offload_cycles_total.labels(status).inc(0)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(mp_dir))
    registry.register(LagCollector())
    start_http_server(port, registry=registry)


def oom_hog(*_):
    print("worker: lab fault: allocating memory until OOM", flush=True)
    hog = []
    while True:
        hog.append(bytearray(64 * 1024 * 1024))


def main() -> int:
    start_exporter(int(os.environ.get("K2_METRICS_PORT", "8000")))
    worker = subprocess.Popen(["prefect", "worker", "start", "--pool", os.environ.get("K2_WORK_POOL", "iceberg-offload"),
                               "--type", "process"])
    signal.signal(signal.SIGTERM, lambda *_: worker.terminate())
    signal.signal(signal.SIGUSR1, oom_hog)
    return worker.wait()


if __name__ == "__main__":
    sys.exit(main())
