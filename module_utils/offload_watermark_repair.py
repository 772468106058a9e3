# -*- coding: utf-8 -*-
# PRIVATE to library/offload_watermark.py: the write side (repair, prune, backup/restore). The plan is pure
# (decided from the row, the cold tier's committed maximum and the hot tier's oldest row); the SQL texts bind
# every value and name only this module's own constants.
from __future__ import annotations

from datetime import datetime, timedelta

from ansible.module_utils.offload_watermark_logic import (
    EPOCH,
    LAYOUT_HISTORY,
    LAYOUT_STATE,
    WATERMARK_TABLE,
    _norm_status,
    to_utc,
)

# One lock per table, shared by every remediation (and by anyone who follows the convention).
LOCK_SQL = "SELECT pg_try_advisory_xact_lock(hashtext(%(key)s)) AS locked"
LOCK_PREFIX = "k2-offload-watermark."

STATE_ROW_SQL = (f"SELECT * FROM {WATERMARK_TABLE} WHERE table_name = %(table)s FOR UPDATE")
HISTORY_ROW_SQL = (f"SELECT * FROM {WATERMARK_TABLE} WHERE table_name = %(table)s "
                   "ORDER BY created_at DESC, id DESC LIMIT 1 FOR UPDATE")

STATE_MARK_FAILED_SQL = (f"UPDATE {WATERMARK_TABLE} SET status = 'failed', failure_count = COALESCE(failure_count, 0) "
                         "+ 1, last_error_message = %(message)s, updated_at = NOW() "
                         "WHERE table_name = %(table)s AND status = 'running'")
STATE_MOVE_SQL = (f"UPDATE {WATERMARK_TABLE} SET last_offload_timestamp = %(timestamp)s, "
                  "last_offload_max_sequence = %(sequence)s, updated_at = NOW() WHERE table_name = %(table)s")
STATE_INSERT_SQL = (f"INSERT INTO {WATERMARK_TABLE} (table_name, last_offload_timestamp, last_offload_max_sequence, "
                    "status, failure_count, created_at, updated_at) "
                    "VALUES (%(table)s, %(timestamp)s, %(sequence)s, %(status)s, 0, NOW(), NOW())")
HISTORY_INSERT_SQL = (f"INSERT INTO {WATERMARK_TABLE} (table_name, max_timestamp, sequence_number, created_at) "
                      "VALUES (%(table)s, %(timestamp)s, %(sequence)s, NOW())")

# Per table, keep the newest %(keep)s rows (>= 1: the newest is never deleted); one set-based statement.
PRUNE_SQL = (f"DELETE FROM {WATERMARK_TABLE} AS w USING (SELECT id, row_number() OVER (PARTITION BY table_name "
             f"ORDER BY created_at DESC, id DESC) AS rn FROM {WATERMARK_TABLE} WHERE table_name = ANY(%(tables)s)) "
             "AS r WHERE w.id = r.id AND r.rn > %(keep)s")
COUNT_SQL = (f"SELECT table_name, count(*) AS n FROM {WATERMARK_TABLE} WHERE table_name = ANY(%(tables)s) "
             "GROUP BY table_name")
# The runbook's weekly cleanup, for comparison only (tests): global, all tables together.
RUNBOOK_GLOBAL_CLEANUP_SQL = (f"DELETE FROM {WATERMARK_TABLE} WHERE id NOT IN (SELECT id FROM {WATERMARK_TABLE} "
                              "ORDER BY created_at DESC LIMIT 50)")


def lock_key(table: str) -> str:
    return LOCK_PREFIX + table


def plan_repair(layout: str, table: str, row: dict | None, cold: dict | None, hot_oldest, in_flight: bool,
                tolerance_seconds: float = 1.0) -> dict:
    """What to do with one table's watermark, judged by the truth of the cold tier.

    row: the watermark row (state layout: K2's columns; history: the newest row) or None.
    cold: {"exists", "max_timestamp", "max_sequence", "error"} of the Iceberg table (offload_iceberg_info); None
    (not read) or with an error is refused: only a table known to be absent (exists false) is empty.
    hot_oldest: the oldest row still in ClickHouse (TTL) or None when unknown.
    Returns {"table", "action", "reason", "timestamp", "sequence", "mark_failed"}: action is one of none, refused,
    mark_failed, create, repair_nulls, move_back, move_forward, escalate; mark_failed also accompanies a move
    when the row is stuck 'running'."""
    def out(action, reason, timestamp=None, sequence=None, mark_failed=False):
        return {"table": table, "action": action, "reason": reason, "mark_failed": mark_failed,
                "timestamp": timestamp.isoformat() if isinstance(timestamp, datetime) else timestamp,
                "sequence": sequence}

    if in_flight:
        return out("refused", f"an offload of {table} is in flight; repairing now would race it")
    if not isinstance(cold, dict) or cold.get("error") or (cold.get("exists") and not cold.get("max_timestamp")
                                                           and cold.get("total_records")):
        why = (cold or {}).get("error") if isinstance(cold, dict) else None
        return out("refused", f"the cold tier of {table} could not be read ({why or 'no answer for this table'}); "
                              "its maximum is the repair's truth, and an unreadable table is not an empty one")
    cold_ts = to_utc(cold.get("max_timestamp")) if cold.get("max_timestamp") else None
    cold_seq = cold.get("max_sequence")
    truth_ts = cold_ts or EPOCH
    truth_seq = int(cold_seq) if cold_seq is not None else 0
    if row is None:
        return out("create", f"no watermark row: re-created from the cold tier's maximum "
                             f"({'empty table: the epoch' if cold_ts is None else truth_ts.isoformat()})",
                   truth_ts, truth_seq)
    ts_col, seq_col = (("last_offload_timestamp", "last_offload_max_sequence") if layout == LAYOUT_STATE
                       else ("max_timestamp", "sequence_number"))
    stuck = layout == LAYOUT_STATE and _norm_status(row.get("status")) == "running"
    stuck_note = ("; status 'running' with no offload in flight: marked failed (K2's own stale-run recovery) so "
                  "the next run proceeds") if stuck else ""
    wm_ts = to_utc(row.get(ts_col)) if row.get(ts_col) is not None else None
    seq = truth_seq if cold_seq is not None or row.get(seq_col) is None else row.get(seq_col)
    if wm_ts is None or row.get(seq_col) is None:
        return out("repair_nulls", "NULL watermark value(s): repaired from the cold tier's maximum" + stuck_note,
                   truth_ts, seq, stuck)
    delta = (wm_ts - truth_ts).total_seconds()
    if delta > tolerance_seconds:
        gap = f"watermark {wm_ts.isoformat()} is {delta:.0f} s ahead of the cold tier's maximum {truth_ts.isoformat()}"
        if hot_oldest is None:
            return out("escalate", f"{gap}; the hot tier's oldest row is unknown, so whether the gap's rows still "
                                   "exist cannot be proven: escalate")
        hot_oldest = to_utc(hot_oldest)
        if cold_ts is None or hot_oldest > truth_ts + timedelta(seconds=tolerance_seconds):
            return out("escalate", f"{gap}, and ClickHouse's oldest row is {hot_oldest.isoformat()}: rows of the gap "
                                   "may already be deleted by TTL (data loss): escalate")
        return out("move_back", f"{gap} (a gap); ClickHouse still holds those rows (oldest "
                                f"{hot_oldest.isoformat()}): moved back so the next run offloads them" + stuck_note,
                   truth_ts, seq, stuck)
    if delta < -tolerance_seconds:
        return out("move_forward", f"watermark {wm_ts.isoformat()} is {-delta:.0f} s behind the cold tier's maximum "
                                   f"{truth_ts.isoformat()}: moved forward, else the next run re-appends those rows "
                                   "(duplicates)" + stuck_note, truth_ts, seq, stuck)
    if stuck:
        return out("mark_failed", stuck_note.lstrip("; "), mark_failed=True)
    return out("none", "watermark matches the cold tier's maximum")


def repair_statements(layout: str, plan: dict) -> list[tuple[str, dict]]:
    """[(sql, parameters)] carrying out a plan; empty when there is nothing to write."""
    table, action = plan["table"], plan["action"]
    values = {"table": table, "timestamp": plan["timestamp"], "sequence": plan["sequence"]}
    statements = []
    if plan.get("mark_failed"):
        statements.append((STATE_MARK_FAILED_SQL, {"table": table, "message": "marked failed by offload remediation: "
                                                                              "status 'running' with no offload in "
                                                                              "flight"}))
    if layout == LAYOUT_HISTORY and action in ("create", "repair_nulls", "move_back", "move_forward"):
        statements.append((HISTORY_INSERT_SQL, values))  # append-only: the newest row is the watermark
    elif action == "create":
        status = "initialized" if to_utc(plan["timestamp"]) <= EPOCH else "success"
        statements.append((STATE_INSERT_SQL, {**values, "status": status}))
    elif action in ("repair_nulls", "move_back", "move_forward"):
        statements.append((STATE_MOVE_SQL, values))
    return statements
