#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_watermark_info
short_description: Read K2's offload watermarks in PostgreSQL and report their anomalies
description:
  - Reads the table C(offload_watermarks) that K2's Iceberg offload keeps in PostgreSQL (database C(prefect) on
    C(k2-prefect-db)) and reports, per source table, the watermark the next offload resumes from, its state and
    the anomalies the runbook's Scenario 4 (watermark corruption) and K2's own failure modes leave behind.
  - Detects the table's layout from C(information_schema) first. V(state) is K2's real table, one mutable row
    per table (primary key C(table_name), C(last_offload_timestamp), C(status), C(failure_count), ...).
    V(history) is the append-only layout the runbook describes (C(id), C(table_name), C(max_timestamp),
    C(sequence_number), C(created_at)); its newest row per table is the watermark. A missing table is reported
    as layout V(absent) and anything else as V(unknown), with the column list; neither is an error.
  - Times are judged against the database server's clock (its C(now) function), not the controller's.
  - Runs in a read-only transaction. Table names are validated as plain identifiers and always bound as query
    parameters, never interpolated into SQL. The changes (repair, prune, backup, restore) are M(offload_watermark)'s.
version_added: "1.1.0"
author: K2 offload automation
extends_documentation_fragment:
  - offload.watermark_tables
  - offload.postgres
  - offload.info_module
options:
  stale_running_minutes:
    description:
      - A row with status C(running) whose C(updated_at) is older than this is reported as C(stuck_running)
        (K2's own recovery uses 30 minutes).
    type: int
    default: 30
  history_row_limit:
    description:
      - In the V(history) layout, more rows than this for one table are reported as C(history_bloat) (the
        runbook's corruption check counts more than 100 rows per table).
    type: int
    default: 100
  future_tolerance_seconds:
    description:
      - A watermark more than this ahead of the server's clock is reported as C(future_watermark).
    type: int
    default: 60
notes:
  - Anomalies are findings, not failures; the task fails only on invalid input, a connection failure or an SQL
    error.
"""

EXAMPLES = r"""
---
- name: Read the watermarks of every offloaded table
  offload_watermark_info:
    login_host: "{{ k2_postgres_host }}"
    login_port: "{{ k2_postgres_port }}"
    login_password: "{{ k2_postgres_password }}"
    tables: "{{ k2_tables | map(attribute='source') | list }}"
  register: watermarks

- name: Stop if the table is not K2's one-row-per-table layout
  ansible.builtin.assert:
    that: watermarks.layout == 'state'
    fail_msg: "offload_watermarks layout is {{ watermarks.layout }} (columns: {{ watermarks.columns }})"

- name: Show what is wrong
  ansible.builtin.debug:
    msg: "{{ item.table }}: {{ item.code }} - {{ item.detail }}"
  loop: "{{ watermarks.anomalies }}"

- name: Read two tables with a stricter stale-run limit
  offload_watermark_info:
    login_password: "{{ k2_postgres_password }}"
    tables: [bronze_trades_binance, bronze_trades_kraken]
    stale_running_minutes: 20
"""

RETURN = r"""
---
layout:
  description:
    - Layout of C(offload_watermarks). V(state) (K2's real table), V(history) (the runbook's append-only
      layout), V(absent) (no such table) or V(unknown) (see RV(columns)).
  returned: always
  type: str
  sample: state
schema:
  description: Schema the unqualified name C(offload_watermarks) resolves to; null when absent.
  returned: always
  type: str
  sample: public
columns:
  description: Column names of C(offload_watermarks) in table order; empty when absent.
  returned: always
  type: list
  elements: str
  sample: [table_name, last_offload_timestamp, last_offload_max_sequence, last_offload_row_count, status]
missing_columns:
  description: Optional K2 columns a V(state) table lacks (read as null); empty otherwise.
  returned: always
  type: list
  elements: str
  sample: []
server_time:
  description: The database server's clock (C(now) function), ISO 8601 in UTC; every age and lag is computed against it.
  returned: always
  type: str
  sample: "2026-11-26T07:44:09.859611+00:00"
watermarks:
  description:
    - Per requested table (repeated names once), keyed by table name. Timestamps are ISO 8601 in UTC.
    - V(history) layout has no status, failure count, error or last successful run (null); its RV(watermarks.updated_at)
      is the newest row's C(created_at).
  returned: always
  type: dict
  contains:
    exists:
      description: Whether the table has a watermark row; null when the layout is V(unknown).
      type: bool
    timestamp:
      description:
        - The watermark (C(last_offload_timestamp) / newest C(max_timestamp)); the next run reads rows after it.
      type: str
    sequence:
      description: C(last_offload_max_sequence) / C(sequence_number) (informational; K2 does not filter on it).
      type: int
    status:
      description: C(initialized), C(running), C(success) or C(failed) (V(state) layout only).
      type: str
    failure_count:
      description: Consecutive failures (V(state) layout only).
      type: int
    last_error_message:
      description: The last failure's message, up to 1000 characters (V(state) layout only).
      type: str
    last_successful_run:
      description: When the watermark was last advanced (V(state) layout only).
      type: str
    updated_at:
      description: Last change of the row (V(history) layout - the newest row's C(created_at)).
      type: str
    created_at:
      description: When the row was created.
      type: str
    last_offload_row_count:
      description: Rows written by the last successful run (V(state) layout only).
      type: int
    last_run_duration_seconds:
      description: Wall time of the last successful run (V(state) layout only).
      type: int
    row_count:
      description: Rows the table has in C(offload_watermarks) (V(state) layout - 1 or 0).
      type: int
    lag_minutes:
      description: Server time minus RV(watermarks.timestamp), in minutes (negative when in the future).
      type: float
    anomalies:
      description:
        - Codes, in this order when present - V(missing_row), V(unknown_layout), V(null_values),
          V(initial_watermark), V(future_watermark), V(stuck_running), V(failed), V(consecutive_failures),
          V(history_bloat). See RV(anomalies) for the details.
      type: list
      elements: str
  sample:
    bronze_trades_binance:
      exists: true
      timestamp: "2026-11-26T07:38:12.588000+00:00"
      sequence: 1764142692588
      status: success
      failure_count: 0
      last_error_message: null
      last_successful_run: "2026-11-26T07:43:19.121812+00:00"
      updated_at: "2026-11-26T07:43:19.121812+00:00"
      created_at: "2026-11-26T07:16:52.628751+00:00"
      last_offload_row_count: 6000
      last_run_duration_seconds: 7
      row_count: 1
      lag_minutes: 5.95
      anomalies: []
anomalies:
  description: Every anomaly of every table, flat, with a one-line explanation.
  returned: always
  type: list
  elements: dict
  sample:
    - table: ohlcv_1m
      code: initial_watermark
      detail: "watermark 1970-01-01T00:00:00+00:00 (the 1970 seed): the next run reads the whole hot table in one
        batch (timeout / OOM risk)"
queries:
  description: The SQL statements executed, with their bound values.
  returned: always
  type: list
  elements: str
  sample: ["SELECT now() AS server_time, ... to_regclass('offload_watermarks')) AS table_schema"]
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.offload_common import ProbeError, postgres_argument_spec, to_json_safe
from ansible.module_utils.offload_watermark_db import HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR, inspect_argument_spec, read_watermarks


def main() -> None:
    argument_spec = postgres_argument_spec()
    argument_spec.update(tables={"type": "list", "elements": "str", "required": True}, **inspect_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=PSYCOPG2_IMPORT_ERROR)
    try:
        result = read_watermarks(module)
    except ProbeError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **to_json_safe(result))


if __name__ == "__main__":
    main()
