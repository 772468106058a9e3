# -*- coding: utf-8 -*-
# Whether a table recovered after a verifying offload run that COMPLETED (roles/offload_verify).
from __future__ import annotations

from datetime import datetime, timedelta

from ansible.module_utils.offload_clickhouse_logic import parse_timestamp

# K2's job reads up to now() - 5 minutes (BUFFER_MINUTES): rows newer than that wait for the next run.
K2_BUFFER_MINUTES = 5


def pending_until(run_started_at: str, buffer_minutes: int = K2_BUFFER_MINUTES) -> datetime:
    """The newest row time the verifying run's job must have read: its start less K2's buffer."""
    return parse_timestamp(run_started_at) - timedelta(minutes=buffer_minutes)


def table_recovery(table: str, before: str | None, after: dict, pending_rows: int | None) -> dict:
    """One table's verdict: {table, recovered, how (advanced | quiet | None), reason}.

    advanced - the watermark moved past `before`, failure_count is 0 and the status is not failed.
    quiet    - K2's job found no new rows ("No new rows to offload. Exiting cleanly."): it exits 0 and leaves the row
               `running` with the watermark where it was (and failure_count as earlier failures left it). That is a
               success only if the hot tier holds no row newer than the watermark that the run should have read
               (pending_rows == 0): with such rows, the job read them and did not record them (K2's update-failure
               path also exits 0), which is not a recovery.
    """
    timestamp, status = after.get("timestamp"), after.get("status")
    failures = after.get("failure_count") or 0
    if status == "failed":
        return _verdict(table, False, None, f"status failed, failure_count {failures}")
    if timestamp and (not before or timestamp > before) and failures == 0:  # ISO UTC strings of one writer
        return _verdict(table, True, "advanced", f"watermark {before} -> {timestamp}")
    if status == "running" and pending_rows == 0:
        return _verdict(table, True, "quiet", f"no new rows after the watermark {timestamp}; the job's `running` "
                                              f"row is K2's exit on a quiet table, not a fault")
    if pending_rows:
        return _verdict(table, False, None, f"{pending_rows} hot row(s) after the watermark {timestamp} were not "
                                            f"recorded (status {status}, failure_count {failures})")
    return _verdict(table, False, None, f"watermark {timestamp} did not advance from {before} (status {status}, "
                                        f"failure_count {failures})")


def _verdict(table: str, recovered: bool, how: str | None, reason: str) -> dict:
    return {"table": table, "recovered": recovered, "how": how, "reason": f"{table}: {reason}"}
