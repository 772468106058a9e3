#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_clickhouse
short_description: Inspect the ClickHouse hot tier of the Iceberg offload (health, volume, slow queries, TTL headroom)
description:
  - The ClickHouse side of the runbook I(Iceberg Offload Consecutive Failures), over ClickHouse's HTTP interface
    (clickhouse-connect), with O(action=inspect).
  - "Step 4 and Scenario 2: is ClickHouse reachable, how long C(SELECT 1) takes, which server version runs.
    An unreachable server, a refused connection or a wrong password is a finding, not a failure: the module
    returns RV(reachable=false) and a one-line RV(error), like M(community.postgresql.postgresql_ping)."
  - "Scenario 5: per table, the runbook's count of rows whose timestamp column is newer than
    C(now - INTERVAL 1 HOUR), classified against the runbook's thresholds; and the queries in
    C(system.processes) running longer than O(long_query_seconds)."
  - "The data-loss clock: each table's TTL is read from the server (C(system.tables.engine_full)) and parsed;
    with a watermark for the table, RV(tables.ttl_headroom_seconds) = watermark + TTL interval - now (server
    clock). Negative headroom means rows not offloaded yet may already have been deleted by TTL."
  - Only reads. Table and column names are checked to be plain identifiers and backtick-quoted; every value is
    bound server-side (C({name:Type}) parameters), never formatted into the SQL.
  - The module only fails on bad input (invalid names, bad option values) or a missing C(clickhouse-connect).
version_added: "1.0.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same queries and returns the same result in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Never changes anything (RV(changed) is always false); the facts it reads change with the data.
extends_documentation_fragment:
  - offload.tables_read
  - offload.clickhouse
options:
  action:
    description:
      - What to do. V(inspect) reads health, volume, long-running queries and TTL headroom.
    type: str
    choices: [inspect]
    default: inspect
  query_timeout:
    description:
      - Seconds to wait for each query's answer; also sent as C(max_execution_time) so that the server stops
        a query the module gave up on.
    type: int
    default: 30
  watermarks:
    description:
      - Offload watermark per source table (C(offload_watermarks.last_offload_timestamp)), as an ISO 8601
        timestamp; naive timestamps are UTC. V(null) means no watermark.
      - Tables without an entry get no headroom; entries for tables not in O(tables) are ignored.
    type: dict
  volume_normal_rows_per_hour:
    description: Rows in the last hour below this are V(normal) (runbook "<5M rows/hour normally").
    type: int
    default: 5000000
  volume_spike_rows_per_hour:
    description:
      - Rows in the last hour above this are a V(spike) (runbook ">10M rows/hour"); from
        O(volume_normal_rows_per_hour) up to this value, both included, the volume is V(elevated).
    type: int
    default: 10000000
  long_query_seconds:
    description: Queries in C(system.processes) running longer than this are reported.
    type: float
    default: 60
requirements:
  - clickhouse-connect >= 0.8
notes:
  - "The TTL interval comes from the server, not from the fact sheet. C(MONTH), C(QUARTER) and C(YEAR) have a
    nominal RV(tables.ttl.interval_seconds) (30, 90 and 365 days); deadlines and headroom use calendar arithmetic
    like ClickHouse."
  - "K2's bronze binance and kraken tables expire on C(ingestion_timestamp) while the watermark is on
    C(exchange_timestamp). Ingestion is never earlier than the exchange time, so watermark + TTL is a
    conservative (earliest) deadline. TTL is applied during merges, so deletion can happen later than the
    deadline, never earlier."
  - "Volume edges: exactly O(volume_normal_rows_per_hour) is V(elevated), exactly O(volume_spike_rows_per_hour)
    is still V(elevated)."
seealso:
  - module: community.postgresql.postgresql_ping
    description: The model for reporting an unavailable server without failing.
"""

EXAMPLES = r"""
---
- name: Inspect ClickHouse for every offloaded table, with the watermarks for TTL headroom
  offload_clickhouse:
    action: inspect
    clickhouse_host: "{{ k2_clickhouse_host }}"
    clickhouse_port: "{{ k2_clickhouse_port }}"
    clickhouse_user: "{{ k2_clickhouse_user }}"
    clickhouse_password: "{{ k2_clickhouse_password }}"
    clickhouse_database: "{{ k2_clickhouse_database }}"
    tables: "{{ k2_tables }}"
    watermarks: "{{ wm.tables | ansible.builtin.dict2items
                    | ansible.builtin.items2dict(value_name='value') }}"
  register: ch

- name: Scenario 2 when ClickHouse does not answer
  ansible.builtin.debug:
    msg: "ClickHouse unreachable: {{ ch.error }}"
  when: not ch.reachable

- name: Stop if rows not offloaded yet are within a day of TTL deletion
  ansible.builtin.assert:
    that: item.value.ttl_headroom_seconds is none or item.value.ttl_headroom_seconds > 86400
    fail_msg: "{{ item.key }}: TTL headroom {{ item.value.ttl_headroom_seconds }} s"
  loop: "{{ ch.tables | ansible.builtin.dict2items }}"
  loop_control:
    label: "{{ item.key }}"
"""

RETURN = r"""
---
reachable:
  description: Whether ClickHouse answered C(SELECT 1) with the given credentials.
  returned: always
  type: bool
  sample: true
latency_ms:
  description: Round trip of C(SELECT 1) in milliseconds; null when not reachable.
  returned: always
  type: float
  sample: 2.4
version:
  description: The server version (SQL function C(version)); null when not reachable.
  returned: always
  type: str
  sample: "26.9.2.1"
server_time:
  description: The server's current time (SQL function C(now64)) in UTC, the clock TTL deletes by and headroom is
    computed against.
  returned: always
  type: str
  sample: "2026-11-26T08:02:11.123000+00:00"
error:
  description:
    - One line saying why ClickHouse is not reachable (connection refused, timeout, authentication failed);
      null when reachable. Never contains the password or a traceback.
  returned: always
  type: str
  sample: "Code: 516. DB::Exception: default: Authentication failed: password is incorrect, or there is no user with
    such name. (AUTHENTICATION_FAILED)"
tables:
  description:
    - Per source table. Empty when ClickHouse is not reachable.
    - RV(tables.ttl) is null when the table does not exist; otherwise C(expression) (the TTL clause as the server
      prints it), C(column), C(interval_seconds), C(intervals) (list of [count, unit]), C(conditional) (a C(WHERE)
      on the delete rule) and C(reason) (why C(interval_seconds) is null, else null).
    - C(error) is the first query error for that table (for example an unknown timestamp column), else null.
  returned: always
  type: dict
  sample:
    bronze_trades_binance:
      exists: true
      layer: bronze
      engine: MergeTree
      rows_last_hour: 72000
      volume: normal
      oldest_row: "2026-11-19T08:03:00.120000+00:00"
      oldest_row_age_seconds: 604630
      ttl:
        expression: ingestion_timestamp + toIntervalDay(7)
        column: ingestion_timestamp
        interval_seconds: 604800
        intervals: [[7, DAY]]
        conditional: false
        reason: null
      watermark: "2026-11-26T07:45:00+00:00"
      ttl_deadline: "2026-12-03T07:45:00+00:00"
      ttl_headroom_seconds: 603528
      error: null
long_running_queries:
  description:
    - Queries from C(system.processes) running longer than O(long_query_seconds), longest first (at most 50);
      C(query) is cut to 300 characters, C(tables) lists the inspected tables it mentions.
  returned: always
  type: list
  elements: dict
  sample:
    - query_id: 5e1c7d8a-0f0e-4a59-9d55-5b8f0b5e4f11
      user: default
      elapsed: 73.2
      query: SELECT ... FROM k2.bronze_trades_binance WHERE ...
      tables: [bronze_trades_binance]
queries:
  description: The statements executed, in order, with their bound parameters (no secrets).
  returned: always
  type: list
  elements: dict
  sample:
    - sql: SELECT 1
      parameters: {}
    - sql: "SELECT engine, engine_full, create_table_query FROM system.tables
        WHERE database = {database:String} AND name = {table:String}"
      parameters: {database: k2, table: bronze_trades_binance}
"""

import time
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.offload_clickhouse_api import (
    CLICKHOUSE_CONNECT_IMPORT_ERROR,
    HAS_CLICKHOUSE_CONNECT,
    Inspector,
    connect,
)
from ansible.module_utils.offload_clickhouse_logic import (
    LONG_QUERY_TEXT_CHARS,
    SQL_LONG_QUERIES,
    SQL_PING,
    SQL_SERVER,
    SQL_TABLE,
    classify_volume,
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
from ansible.module_utils.offload_common import clickhouse_argument_spec, invalid_identifiers, tables_argument_spec, to_json_safe


def argument_spec() -> dict:
    spec = clickhouse_argument_spec()
    tables = tables_argument_spec()
    # k2_tables passes as is; only source and timestamp_col are needed here.
    for key in ("target", "sequence_col", "layer"):
        tables["tables"]["options"][key] = {**tables["tables"]["options"][key], "required": False}
    spec.update(tables)
    spec.update(
        action={"type": "str", "default": "inspect", "choices": ["inspect"]},
        query_timeout={"type": "int", "default": 30},
        watermarks={"type": "dict"},
        volume_normal_rows_per_hour={"type": "int", "default": 5_000_000},
        volume_spike_rows_per_hour={"type": "int", "default": 10_000_000},
        long_query_seconds={"type": "float", "default": 60},
    )
    return spec


def validate(module: AnsibleModule) -> dict:
    """Fail with one clear line on bad input; return the watermarks parsed."""
    p = module.params
    names = [p["clickhouse_database"]]
    for table in p["tables"]:
        names += [table["source"], table["timestamp_col"]]
    bad = invalid_identifiers(names)
    if bad:
        module.fail_json(msg=f"Invalid database, table or column name(s) {', '.join(repr(b)[:80] for b in bad)}: "
                             "only letters, digits and underscores are accepted.")
    for option in ("connect_timeout", "query_timeout", "volume_normal_rows_per_hour"):
        if p[option] < 1:
            module.fail_json(msg=f"{option} must be at least 1, got {p[option]}.")
    if p["volume_spike_rows_per_hour"] < p["volume_normal_rows_per_hour"]:
        module.fail_json(msg=f"volume_spike_rows_per_hour ({p['volume_spike_rows_per_hour']}) must not be below "
                             f"volume_normal_rows_per_hour ({p['volume_normal_rows_per_hour']}).")
    if p["long_query_seconds"] < 0:
        module.fail_json(msg=f"long_query_seconds must not be negative, got {p['long_query_seconds']}.")
    watermarks = {}
    for table, value in (p["watermarks"] or {}).items():
        if value is None or value == "":
            watermarks[table] = None
            continue
        try:
            watermarks[table] = parse_timestamp(value)
        except (TypeError, ValueError):
            module.fail_json(msg=f"watermarks[{table!r}]: {str(value)[:80]!r} is not an ISO 8601 timestamp.")
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


def inspect(module: AnsibleModule, watermarks: dict) -> dict:
    params = module.params
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
        reason = one_line_error(str(exc).strip() or type(exc).__name__, secrets)
        result["error"] = f"ClickHouse at {params['clickhouse_host']}:{params['clickhouse_port']}: {reason}"
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
        module.warn(f"cannot read version()/now() (the controller clock is used): {one_line_error(str(exc), secrets)}")

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
        module.warn(f"cannot read system.processes: {one_line_error(str(exc), secrets)}")
    result["queries"] = ins.queries
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    watermarks = validate(module)
    if not HAS_CLICKHOUSE_CONNECT:
        module.fail_json(msg=missing_required_lib("clickhouse-connect"), exception=CLICKHOUSE_CONNECT_IMPORT_ERROR)
    result = inspect(module, watermarks)
    module.exit_json(**to_json_safe(result))


if __name__ == "__main__":
    main()
