# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: pure logic of library/offload_watermark.py (no database, no Ansible), so
# that it can be unit-tested on its own. Imported as ansible.module_utils.offload_watermark_logic.
#
# Two layouts of the PostgreSQL table offload_watermarks exist in the wild:
# - "state": K2's real table (docker/postgres/ddl/offload-watermarks.sql): ONE mutable row per table,
#   PK table_name, last_offload_timestamp / last_offload_max_sequence / status / failure_count / ...
# - "history": what the runbook describes (Scenario 4 and the watermark-recovery runbook): append-only
#   rows id / table_name / max_timestamp / sequence_number / created_at; the newest row is the watermark.
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

WATERMARK_TABLE = "offload_watermarks"

LAYOUT_STATE = "state"
LAYOUT_HISTORY = "history"
LAYOUT_ABSENT = "absent"
LAYOUT_UNKNOWN = "unknown"
LAYOUTS = (LAYOUT_STATE, LAYOUT_HISTORY, LAYOUT_ABSENT, LAYOUT_UNKNOWN)

STATE_REQUIRED = ("table_name", "last_offload_timestamp", "last_offload_max_sequence")
# Selected when present, NULL otherwise (an older or hand-made copy of K2's DDL may lack some).
STATE_OPTIONAL = ("last_offload_row_count", "status", "last_successful_run", "last_run_duration_seconds",
                  "failure_count", "last_error_message", "created_at", "updated_at")
HISTORY_REQUIRED = ("id", "table_name", "max_timestamp", "sequence_number", "created_at")

# Per-table anomaly codes, in the order they are reported.
ANOMALY_CODES = ("missing_row", "unknown_layout", "null_values", "initial_watermark", "future_watermark",
                 "stuck_running", "failed", "consecutive_failures", "history_bloat")

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
CONSECUTIVE_FAILURES = 3  # the runbook's alert: >= 3 offload errors; K2's failure_count counts consecutive ones
ERROR_EXCERPT = 200

# --- SQL (single-line texts: they are echoed in results and in one-line error messages). ----------------
# Values are always bound (%(name)s), never interpolated. The only identifiers in the texts are this
# module's own constants and column names taken from the whitelists above.

# Server clock and the schema the unqualified name resolves to (as K2's job, which never schema-qualifies).
SERVER_SQL = ("SELECT now() AS server_time, (SELECT n.nspname FROM pg_catalog.pg_class AS c "
              "JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace "
              "WHERE c.oid = to_regclass(%(table)s)) AS table_schema")

COLUMNS_SQL = ("SELECT column_name FROM information_schema.columns "
               "WHERE table_schema = %(schema)s AND table_name = %(table)s ORDER BY ordinal_position")


@dataclass(frozen=True)
class Thresholds:
    stale_running_minutes: float = 30
    history_row_limit: int = 100
    future_tolerance_seconds: float = 60
    consecutive_failures: int = CONSECUTIVE_FAILURES


def detect_layout(columns) -> str:
    """Layout of the watermark table from its column names; None means the table does not exist."""
    if columns is None:
        return LAYOUT_ABSENT
    present = {str(c).lower() for c in columns}
    is_state = set(STATE_REQUIRED) <= present
    is_history = set(HISTORY_REQUIRED) <= present
    if is_state and not is_history:
        return LAYOUT_STATE
    if is_history and not is_state:
        return LAYOUT_HISTORY
    return LAYOUT_UNKNOWN  # neither, or an ambiguous mix of both


def missing_columns(layout: str, columns) -> list[str]:
    """K2 columns that a state-layout table lacks (reported, and read as NULL)."""
    if layout != LAYOUT_STATE:
        return []
    present = {str(c).lower() for c in columns or ()}
    return [c for c in STATE_OPTIONAL if c not in present]


def watermark_sql(layout: str, columns=None) -> str | None:
    """SELECT of the requested tables' watermark rows (parameter %(tables)s: a list of names), or None when the
    layout cannot be read. Output columns are the same for both layouts (see normalize_row)."""
    if layout == LAYOUT_STATE:
        present = {str(c).lower() for c in columns or STATE_REQUIRED + STATE_OPTIONAL}
        optional = ", ".join(c if c in present else f"NULL AS {c}" for c in STATE_OPTIONAL)
        return (f"SELECT {', '.join(STATE_REQUIRED)}, {optional}, 1 AS row_count FROM {WATERMARK_TABLE} "
                "WHERE table_name = ANY(%(tables)s) ORDER BY table_name")
    if layout == LAYOUT_HISTORY:
        # The newest row (as the runbook and the job read it) plus the row count per table. Window functions are
        # evaluated before DISTINCT ON, so row_count counts every row of the table, not just the one kept.
        return ("SELECT DISTINCT ON (table_name) table_name, id, max_timestamp, sequence_number, created_at, "
                "count(*) OVER (PARTITION BY table_name) AS row_count "
                f"FROM {WATERMARK_TABLE} WHERE table_name = ANY(%(tables)s) "
                "ORDER BY table_name, created_at DESC, id DESC")
    return None


def to_utc(value):
    """A driver timestamp as an aware UTC datetime. Naive values are taken as UTC (K2 assumes UTC everywhere;
    the watermark-recovery runbook recreates the table with TIMESTAMP, not TIMESTAMPTZ)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def empty_watermark() -> dict:
    return {"exists": False, "timestamp": None, "sequence": None, "status": None, "failure_count": None,
            "last_error_message": None, "last_successful_run": None, "updated_at": None, "created_at": None,
            "last_offload_row_count": None, "last_run_duration_seconds": None, "row_count": 0,
            "lag_minutes": None, "anomalies": []}


def normalize_row(layout: str, row: dict | None) -> dict:
    """One watermark in the module's shape, from a row of watermark_sql(layout) (or None: no row)."""
    wm = empty_watermark()
    if row is None:
        return wm
    wm["exists"] = True
    wm["row_count"] = int(row.get("row_count") or 0)
    if layout == LAYOUT_STATE:
        wm.update(timestamp=to_utc(row.get("last_offload_timestamp")), sequence=row.get("last_offload_max_sequence"),
                  status=row.get("status"), failure_count=row.get("failure_count"),
                  last_error_message=row.get("last_error_message"),
                  last_successful_run=to_utc(row.get("last_successful_run")),
                  updated_at=to_utc(row.get("updated_at")), created_at=to_utc(row.get("created_at")),
                  last_offload_row_count=row.get("last_offload_row_count"),
                  last_run_duration_seconds=row.get("last_run_duration_seconds"))
    elif layout == LAYOUT_HISTORY:
        # No status, failure count or error in this layout; the newest row's created_at is when it was written.
        newest = to_utc(row.get("created_at"))
        wm.update(timestamp=to_utc(row.get("max_timestamp")), sequence=row.get("sequence_number"),
                  updated_at=newest, created_at=newest)
    return wm


def _norm_status(status) -> str | None:
    return str(status).strip().lower() if status is not None else None


def _minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60


def _excerpt(text) -> str:
    if not text:
        return "no error message recorded"
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return first if len(first) <= ERROR_EXCERPT else first[:ERROR_EXCERPT] + "..."


def anomalies(wm: dict, now: datetime, layout: str, limits: Thresholds = Thresholds(), table: str = "") -> list:
    """[(code, detail)] for one normalized watermark, judged against the server's clock `now`."""
    found = []
    now = to_utc(now)
    if layout == LAYOUT_UNKNOWN:
        return [("unknown_layout", f"{WATERMARK_TABLE} has neither K2's nor the runbook's columns (see columns): "
                                   "not read")]
    if not wm.get("exists"):
        if layout == LAYOUT_ABSENT:
            detail = f"the table {WATERMARK_TABLE} does not exist: every offload fails reading its watermark"
        else:
            detail = (f"no row for {table or 'the table'} in {WATERMARK_TABLE}: K2's job fails with "
                      f"'Watermark not found for table: {table or '<table>'}'")
        return [("missing_row", detail)]

    ts, seq = wm.get("timestamp"), wm.get("sequence")
    nulls = [name for name, value in (("timestamp", ts), ("sequence", seq)) if value is None]
    if nulls:
        found.append(("null_values", f"watermark {' and '.join(nulls)} NULL: the job cannot compute its window"))
    if ts is not None:
        if ts <= EPOCH:
            found.append(("initial_watermark", f"watermark {ts.isoformat()} (the 1970 seed): the next run reads the "
                                               "whole hot table in one batch (timeout / OOM risk)"))
        ahead = (ts - now).total_seconds()
        if ahead > limits.future_tolerance_seconds:
            found.append(("future_watermark", f"watermark {ts.isoformat()} is {ahead:.0f} s ahead of the server clock "
                                              f"(tolerance {limits.future_tolerance_seconds:g} s): rows up to it "
                                              "will never be offloaded"))

    status = _norm_status(wm.get("status"))
    if status == "running":
        updated = wm.get("updated_at")
        if updated is None:
            found.append(("stuck_running", "status running with updated_at NULL: K2's stale-run recovery never "
                                           "matches it"))
        elif now - updated > timedelta(minutes=limits.stale_running_minutes):
            found.append(("stuck_running", f"status running since {updated.isoformat()} "
                                           f"({_minutes(now - updated):.1f} min > {limits.stale_running_minutes:g} "
                                           "min): the job was interrupted (OOM / SIGKILL / timeout)"))
    if status == "failed":
        found.append(("failed", f"status failed: {_excerpt(wm.get('last_error_message'))}"))
    count = wm.get("failure_count")
    if count is not None and count >= limits.consecutive_failures:
        found.append(("consecutive_failures", f"failure_count {count} >= {limits.consecutive_failures} "
                                              "(the runbook's alert threshold)"))
    rows = wm.get("row_count") or 0
    if layout == LAYOUT_HISTORY and rows > limits.history_row_limit:
        found.append(("history_bloat", f"{rows} history rows > {limits.history_row_limit} (the runbook's "
                                       "'HAVING COUNT(*) > 100' corruption check)"))
    return found


def lag_minutes(wm: dict, now: datetime) -> float | None:
    ts = wm.get("timestamp")
    return None if ts is None else round(_minutes(to_utc(now) - ts), 2)


def build_watermarks(layout: str, rows, tables, now: datetime, limits: Thresholds = Thresholds()):
    """(watermarks keyed by table in request order, flat [{table, code, detail}]) from the rows read."""
    by_table = {str(r["table_name"]): r for r in rows or ()}
    watermarks, flat = {}, []
    for table in tables:
        wm = normalize_row(layout, by_table.get(table))
        if layout == LAYOUT_UNKNOWN:
            wm["exists"] = None  # cannot tell
        wm["lag_minutes"] = lag_minutes(wm, now)
        found = anomalies(wm, now, layout, limits, table)
        wm["anomalies"] = [code for code, _ in found]
        watermarks[table] = wm
        flat += [{"table": table, "code": code, "detail": detail} for code, detail in found]
    return watermarks, flat


def unique(names) -> list:
    """Names in first-seen order, without repeats."""
    seen, out = set(), []
    for n in names:
        if n not in seen:
            seen.add(n)
            out.append(n)
    return out
