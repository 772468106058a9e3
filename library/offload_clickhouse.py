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
extends_documentation_fragment:
  - offload.info_module
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

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.offload_clickhouse_api import CLICKHOUSE_CONNECT_IMPORT_ERROR, HAS_CLICKHOUSE_CONNECT
from ansible.module_utils.offload_clickhouse_inspect import argument_spec, inspect, validate
from ansible.module_utils.offload_common import ProbeError, to_json_safe


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        watermarks = validate(module.params)
    except ProbeError as exc:
        module.fail_json(msg=str(exc))
    if not HAS_CLICKHOUSE_CONNECT:
        module.fail_json(msg=missing_required_lib("clickhouse-connect"), exception=CLICKHOUSE_CONNECT_IMPORT_ERROR)
    result = inspect(module, watermarks)
    module.exit_json(**to_json_safe(result))


if __name__ == "__main__":
    main()
