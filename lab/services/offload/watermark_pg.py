"""Watermark store of the lab's offload job, in PostgreSQL, as K2's docker/offload/watermark_pg.py.

Two layouts, detected from the catalog:
- "state" (K2's real table): one mutable row per table, PK table_name.
- "history" (the runbook's description): append-only rows id/table_name/max_timestamp/sequence_number/
  created_at; the newest row is the watermark and every success appends one.
"""
from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone

import psycopg2

log = logging.getLogger("watermark_pg")

STALE_RUNNING_MINUTES = 30
RECOVERED_MESSAGE = ("Interrupted: process was killed before completion (OOM / SIGKILL / timeout). "
                     "Watermark not advanced; next run re-reads the same window.")


class WatermarkManager:
    def __init__(self) -> None:
        self._conn = None
        self._layout = None

    @property
    def conn(self):
        if self._conn is None:
            self._conn = psycopg2.connect(
                host=os.environ.get("PREFECT_DB_HOST", "prefect-db"), port=int(os.environ.get("PREFECT_DB_PORT", "5432")),
                dbname=os.environ["PREFECT_DB_NAME"], user=os.environ["PREFECT_DB_USER"],
                password=os.environ["PREFECT_DB_PASSWORD"], connect_timeout=5)
        return self._conn

    @property
    def layout(self) -> str:
        if self._layout is None:
            with self.conn.cursor() as cur:
                cur.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'offload_watermarks' "
                            "AND column_name = 'last_offload_timestamp'")
                self._layout = "state" if cur.fetchone() else "history"
            self.conn.commit()
        return self._layout

    def _execute(self, sql: str, params: tuple) -> int:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            count = cur.rowcount
        self.conn.commit()
        return count

    def _best_effort(self, what: str, sql: str, params: tuple) -> None:
        # K2 swallows errors of these bookkeeping updates (warning only).
        try:
            if self.layout == "state":
                self._execute(sql, params)
        except Exception as exc:  # noqa: BLE001 - mirrors K2
            log.warning("Failed to %s: %s", what, exc)
            self._reset()

    def _reset(self) -> None:
        try:
            self.conn.rollback()
        except Exception:  # noqa: BLE001
            self._conn = None

    def recover_stale_running(self, table: str) -> None:
        self._best_effort("recover stale running status", (
            "UPDATE offload_watermarks SET status = 'failed', failure_count = failure_count + 1, "
            "last_error_message = %s, updated_at = NOW() WHERE table_name = %s AND status = 'running' "
            "AND updated_at < NOW() - %s * INTERVAL '1 minute'"), (RECOVERED_MESSAGE, table, STALE_RUNNING_MINUTES))

    def mark_offload_running(self, table: str) -> None:
        self._best_effort("mark running", "UPDATE offload_watermarks SET status = 'running', updated_at = NOW() "
                          "WHERE table_name = %s", (table,))

    def mark_offload_failed(self, table: str, message: str) -> None:
        self._best_effort("mark failed", (
            "UPDATE offload_watermarks SET status = 'failed', last_error_message = %s, "
            "failure_count = failure_count + 1, updated_at = NOW() WHERE table_name = %s"), (message[:1000], table))

    def get_watermark(self, table: str) -> tuple[datetime, int]:
        if self.layout == "state":
            sql = ("SELECT last_offload_timestamp, last_offload_max_sequence FROM offload_watermarks "
                   "WHERE table_name = %s")
        else:
            sql = ("SELECT max_timestamp, sequence_number FROM offload_watermarks WHERE table_name = %s "
                   "ORDER BY created_at DESC, id DESC LIMIT 1")
        with self.conn.cursor() as cur:
            cur.execute(sql, (table,))
            row = cur.fetchone()
        self.conn.commit()
        if row is None:
            raise ValueError(f"Watermark not found for table: {table}. Run offload-watermarks.sql to initialize.")
        return row[0], row[1]

    def update_watermark(self, table: str, max_ts: datetime, max_seq: int, rows: int, duration: int) -> None:
        if self.layout == "state":
            self._execute(
                "UPDATE offload_watermarks SET last_offload_timestamp = %s, last_offload_max_sequence = %s, "
                "last_offload_row_count = %s, status = 'success', last_successful_run = NOW(), "
                "last_run_duration_seconds = %s, failure_count = 0, updated_at = NOW() WHERE table_name = %s",
                (max_ts, max_seq, rows, duration, table))
        else:
            self._execute("INSERT INTO offload_watermarks (table_name, max_timestamp, sequence_number) "
                          "VALUES (%s, %s, %s)", (table, max_ts, max_seq))


def get_incremental_window(last_wm: datetime, buffer_minutes: int = 5) -> tuple[datetime, datetime]:
    end = datetime.now(last_wm.tzinfo or timezone.utc) - timedelta(minutes=buffer_minutes)
    if end <= last_wm:
        log.info("No new data to offload (end_time <= start_time). This is normal for low-volume periods.")
        return last_wm, last_wm
    return last_wm, end
