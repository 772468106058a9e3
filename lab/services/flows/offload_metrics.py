"""The runbook's Prometheus metrics (K2's docker/offload/metrics.py), shared by the flow and the exporter.

Flow runs are subprocesses of the worker, so the metrics use prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR); the exporter in the worker container serves the merged view on :8000.
"""
from __future__ import annotations

from prometheus_client import Counter, Histogram

ERROR_TYPES = ("process_error", "timeout")
CYCLE_STATUSES = ("success", "partial", "failed")

offload_errors_total = Counter("offload_errors_total", "Failed offload task attempts", ["table", "error_type"])
offload_rows_total = Counter("offload_rows_total", "Rows offloaded", ["table", "layer"])
offload_cycles_total = Counter("offload_cycles_total", "Offload cycles by outcome", ["status"])
offload_duration_seconds = Histogram("offload_duration_seconds", "Offload duration per table", ["table", "layer"],
                                     buckets=(1, 5, 10, 30, 60, 120, 300, 600))
