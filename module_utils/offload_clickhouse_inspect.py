# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: ClickHouse's read-only inspection (reachability, per table TTL and headroom,
# volume, oldest row; long-running queries), shared by library/offload_clickhouse.py and library/offload_diagnosis.py
# (the diagnosis' ClickHouse probe). Imported as ansible.module_utils.offload_clickhouse_inspect.
from __future__ import annotations

import time
from datetime import datetime, timezone

from ansible.module_utils.offload_clickhouse_api import HAS_CLICKHOUSE_CONNECT, Inspector, connect
from ansible.module_utils.offload_clickhouse_logic import (
    LONG_QUERY_TEXT_CHARS,
    SQL_LONG_QUERIES,
    SQL_PING,
    SQL_SERVER,
    SQL_TABLE,
    classify_volume,
    connection_error,
    epoch_ms_to_iso,
    headroom_seconds,
    long_query,
    oldest_row_sql,
    one_line_error,
    parse_timestamp,
    rows_last_hour_sql,
    ttl_deadline,
    ttl_from_table,
)
from ansible.module_utils.offload_common import ProbeError, clickhouse_argument_spec, invalid_identifiers, tables_argument_spec


def inspect_argument_spec() -> dict:
    """The options of the inspection beyond the tables (offload_clickhouse's, the diagnosis' ClickHouse probe)."""
    return {**clickhouse_argument_spec(),
            "query_timeout": {"type": "int", "default": 30},
            "volume_normal_rows_per_hour": {"type": "int", "default": 5_000_000},
            "volume_spike_rows_per_hour": {"type": "int", "default": 10_000_000},
            "long_query_seconds": {"type": "float", "default": 60}}


def argument_spec() -> dict:
    """offload_clickhouse's options."""
    tables = tables_argument_spec()
    # k2_tables passes as is; only source and timestamp_col are needed here.
    for key in ("target", "sequence_col", "layer"):
        tables["tables"]["options"][key] = {**tables["tables"]["options"][key], "required": False}
    return {**inspect_argument_spec(), **tables,
            "action": {"type": "str", "default": "inspect", "choices": ["inspect"]},
            "watermarks": {"type": "dict"}}


def validate(p: dict) -> dict:
    """The watermarks parsed; ProbeError with one clear line on bad input."""
    names = [p["clickhouse_database"]]
    for table in p["tables"]:
        names += [table["source"], table["timestamp_col"]]
    bad = invalid_identifiers(names)
    if bad:
        raise ProbeError(f"Invalid database, table or column name(s) {', '.join(repr(b)[:80] for b in bad)}: "
                             "only letters, digits and underscores are accepted.")
    for option in ("connect_timeout", "query_timeout", "volume_normal_rows_per_hour"):
        if p[option] < 1:
            raise ProbeError(f"{option} must be at least 1, got {p[option]}.")
    if p["volume_spike_rows_per_hour"] < p["volume_normal_rows_per_hour"]:
        raise ProbeError(f"volume_spike_rows_per_hour ({p['volume_spike_rows_per_hour']}) must not be below "
                             f"volume_normal_rows_per_hour ({p['volume_normal_rows_per_hour']}).")
    if p["long_query_seconds"] < 0:
        raise ProbeError(f"long_query_seconds must not be negative, got {p['long_query_seconds']}.")
    watermarks = {}
    for table, value in (p.get("watermarks") or {}).items():
        if value is None or value == "":
            watermarks[table] = None
            continue
        try:
            watermarks[table] = parse_timestamp(value)
        except (TypeError, ValueError):
            raise ProbeError(f"watermarks[{table!r}]: {str(value)[:80]!r} is not an ISO 8601 timestamp.") from None
    return watermarks


def inspect_table(ins: Inspector, params: dict, table: dict, watermark: datetime | None, now: datetime,
                  secrets: tuple) -> dict:
    db, name, ts_col = params["clickhouse_database"], table["source"], table["timestamp_col"]
    out = {"exists": False, "layer": table.get("layer"), "engine": None, "rows_last_hour": None, "volume": None,
           "oldest_row": None, "oldest_row_age_seconds": None, "ttl": None,
           "watermark": watermark.isoformat() if watermark else None, "ttl_deadline": None,
           "ttl_headroom_seconds": None, "error": None}

    def note(exc: Exception) -> None:
        if out["error"] is None:
            out["error"] = one_line_error(str(exc), secrets)

    try:
        rows = ins.rows(SQL_TABLE, {"database": db, "table": name})
    except Exception as exc:  # noqa: BLE001 - any driver/transport error is reported per table
        note(exc)
        return out
    if not rows:
        return out
    out.update(exists=True, engine=rows[0]["engine"])
    out["ttl"] = ttl_from_table(rows[0]["engine_full"], rows[0]["create_table_query"])
    intervals = out["ttl"]["intervals"]
    deadline = ttl_deadline(watermark, intervals)
    out["ttl_deadline"] = deadline.isoformat() if deadline else None
    out["ttl_headroom_seconds"] = headroom_seconds(watermark, intervals, now)
    try:
        count = ins.scalar(rows_last_hour_sql(db, name, ts_col))
        out["rows_last_hour"] = int(count) if count is not None else None
        out["volume"] = classify_volume(out["rows_last_hour"], params["volume_normal_rows_per_hour"],
                                        params["volume_spike_rows_per_hour"])
    except Exception as exc:  # noqa: BLE001
        note(exc)
    try:
        oldest_ms = ins.scalar(oldest_row_sql(db, name, ts_col))
        out["oldest_row"] = epoch_ms_to_iso(oldest_ms)
        if out["oldest_row"] is not None:
            out["oldest_row_age_seconds"] = int((now.timestamp() * 1000 - int(oldest_ms)) // 1000)
    except Exception as exc:  # noqa: BLE001
        note(exc)
    return out


def inspect(reporter, watermarks: dict) -> dict:
    params = reporter.params
    secrets = (params["clickhouse_password"],)
    result = {"changed": False, "reachable": False, "latency_ms": None, "version": None,
              "server_time": None, "error": None, "tables": {}, "long_running_queries": [], "queries": []}
    ins = None
    try:
        client = connect(params)
        ins = Inspector(client, params["query_timeout"])
        started = time.perf_counter()
        ins.rows(SQL_PING)
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    except Exception as exc:  # noqa: BLE001 - unreachable / refused / auth: a finding, not a failure
        result["error"] = connection_error(params, exc, secrets)
        result["queries"] = ins.queries if ins else []
        return result
    result["reachable"] = True
    now = datetime.now(timezone.utc)
    try:
        server = ins.rows(SQL_SERVER)[0]
        result["version"] = server["version"]
        now = datetime.fromtimestamp(int(server["now_ms"]) / 1000, tz=timezone.utc)
        result["server_time"] = now.isoformat()
    except Exception as exc:  # noqa: BLE001
        reporter.warn(f"cannot read version()/now() (the controller clock is used): {one_line_error(str(exc), secrets)}")

    for table in params["tables"]:
        if table["source"] not in result["tables"]:
            result["tables"][table["source"]] = inspect_table(ins, params, table, watermarks.get(table["source"]),
                                                              now, secrets)
    try:
        rows = ins.rows(SQL_LONG_QUERIES, {"max_chars": LONG_QUERY_TEXT_CHARS,
                                           "min_elapsed": float(params["long_query_seconds"])})
        names = list(result["tables"])
        result["long_running_queries"] = [long_query(row, names) for row in rows]
    except Exception as exc:  # noqa: BLE001
        reporter.warn(f"cannot read system.processes: {one_line_error(str(exc), secrets)}")
    result["queries"] = ins.queries
    return result




def read_clickhouse(reporter) -> dict:
    """The diagnosis' ClickHouse probe: validate, then inspect (an unreachable server is a finding in the result)."""
    watermarks = validate(reporter.params)
    if not HAS_CLICKHOUSE_CONNECT:
        raise ProbeError("Failed to import the required Python library (clickhouse-connect) on the control node.")
    return inspect(reporter, watermarks)
