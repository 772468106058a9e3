#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_truth_check
short_description: Prove that no row was lost or doubled between ClickHouse (hot) and Iceberg (cold)
description:
  - The truth check every data-touching remediation ends with. For each table, the rows of the hot tier between its
    oldest row (older rows are gone by TTL) and the watermark are compared with the rows of the cold tier in the
    same window, as a multiset of whole rows (every configured column).
  - RV(tables[].missing) counts rows the hot tier holds more often than the cold tier (lost if the TTL deletes
    them); RV(tables[].duplicated) counts extra copies in the cold tier.
  - Reads the Iceberg table's current snapshot from the warehouse directory on the Docker host (K2's Hadoop
    catalog on a local filesystem), without Spark.
version_added: "1.0.0"
author: K2 offload automation
extends_documentation_fragment:
  - offload.tables
  - offload.info_module
  - offload.clickhouse
options:
  watermarks:
    description:
      - Upper bound of the window per source table, normally the watermark (ISO 8601), or M(offload_watermark)'s
        RV(offload_watermark#module:watermarks) as is. Tables without one are reported with C(watermark=null) and zero
        counts (nothing was offloaded yet).
    type: dict
    required: true
  warehouse_path:
    description: The Iceberg warehouse as the Docker host sees it (K2 bind-mounts it into the Spark container).
    type: path
    required: true
  written_warehouse_path:
    description: The warehouse path the Spark container writes into the table metadata.
    type: str
    default: /home/iceberg/warehouse
  fail_on_mismatch:
    description: Fail when any table has a missing or duplicated row.
    type: bool
    default: false
  window_seconds:
    description:
      - Width of the windows (by the rows' timestamp) in which missing and duplicated rows are counted, RV(tables[].windows).
      - Removing duplicates is never done here - see docs/duplicates.md for the explicit, opt-in repair of a window.
    type: int
    default: 3600
  watermarks_before:
    description:
      - The watermarks before a remediation (M(offload_watermark_info)'s RV(offload_watermark_info#module:watermarks)).
        With O(run_started_at), RV(recovery) says per table whether the verifying run recovered it.
    type: dict
  run_started_at:
    description:
      - Start of the verifying flow run (ISO 8601). Rows newer than a table's watermark up to this time less
        O(buffer_minutes) are counted as RV(tables[].pending_rows) - a quiet table has none.
    type: str
  buffer_minutes:
    description: K2's BUFFER_MINUTES (the job reads up to its start less this).
    type: int
    default: 5
requirements:
  - clickhouse-connect, pyarrow and pyiceberg on the Docker host.
"""

EXAMPLES = r"""
- name: Truth check of the bronze tables up to their watermarks
  offload_truth_check:
    tables: "{{ k2_tables | selectattr('layer', 'equalto', 'bronze') | list }}"
    watermarks: {bronze_trades_binance: "2026-11-26T10:43:14.196000+00:00"}
    warehouse_path: /srv/k2/warehouse
    clickhouse_password: "{{ k2_clickhouse_password }}"
    fail_on_mismatch: true
"""

RETURN = r"""
tables:
  description:
    - Per table, C(hot_rows), C(cold_rows), C(missing), C(duplicated), C(window_start), C(watermark), and C(error)
      (one line) when the table could not be checked; C(pending_rows) with O(run_started_at).
    - C(windows) - per window of O(window_seconds) with a difference, C(start), C(end), C(missing), C(duplicated)
      (oldest first, the newest 48 kept) - where a repair of the cold tier has to act.
  returned: always
  type: list
  elements: dict
  sample: [{table: bronze_trades_binance, hot_rows: 70149, cold_rows: 70180, missing: 0, duplicated: 31,
            windows: [{start: "2026-11-26T09:00:00+00:00", end: "2026-11-26T10:00:00+00:00", missing: 0,
                       duplicated: 31}]}]
clean:
  description: No table has a missing or duplicated row, and every table could be checked.
  returned: always
  type: bool
recovery:
  description:
    - With O(run_started_at), per table C(table), C(recovered), C(how) (C(advanced) - the watermark moved; C(quiet) -
      no new rows, which K2's job leaves as a C(running) row) and C(reason).
  returned: when O(run_started_at) is set
  type: list
  elements: dict
  sample: [{table: ohlcv_1d, recovered: true, how: quiet, reason: "ohlcv_1d: no new rows after the watermark ..."}]
missing:
  description: Missing rows over all tables.
  returned: always
  type: int
duplicated:
  description: Duplicated rows over all tables.
  returned: always
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.offload_clickhouse_logic import connection_error, one_line_error, parse_timestamp
from ansible.module_utils.offload_common import (
    check_tables,
    clickhouse_argument_spec,
    invalid_identifiers,
    tables_argument_spec,
    to_json_safe,
)
from ansible.module_utils.offload_recovery import pending_until, table_recovery

try:
    import clickhouse_connect
    from ansible.module_utils.offload_truth import pending_rows, table_truth
    HAS_LIBS, LIBS_ERROR = True, None
except ImportError as exc:  # pragma: no cover - depends on the Docker host
    HAS_LIBS, LIBS_ERROR = False, exc


def _watermark_row(value) -> dict:
    """offload_watermark_info's row for a table, or a bare timestamp as the row it stands for."""
    return value if isinstance(value, dict) else {"timestamp": value}


def _timestamp(value):
    return _watermark_row(value).get("timestamp")


def main() -> None:
    spec = clickhouse_argument_spec()
    spec.update(tables_argument_spec())
    spec.update(watermarks={"type": "dict", "required": True}, warehouse_path={"type": "path", "required": True},
                written_warehouse_path={"type": "str", "default": "/home/iceberg/warehouse"},
                fail_on_mismatch={"type": "bool", "default": False}, window_seconds={"type": "int", "default": 3600},
                watermarks_before={"type": "dict"}, run_started_at={"type": "str"},
                buffer_minutes={"type": "int", "default": 5})
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    check_tables(module, p["tables"])
    if invalid_identifiers([p["clickhouse_database"]]):
        module.fail_json(msg=f"Invalid database name {p['clickhouse_database']!r}.")
    if not 60 <= p["window_seconds"] <= 7 * 86400:
        module.fail_json(msg=f"window_seconds must be between 60 and 604800, got {p['window_seconds']}.")
    if not os.path.isdir(p["warehouse_path"]):
        module.fail_json(msg=f"warehouse_path {p['warehouse_path']} is not a directory on {os.uname().nodename}.")
    until = None
    if p["run_started_at"]:
        try:
            until = pending_until(p["run_started_at"], p["buffer_minutes"])
        except (TypeError, ValueError):
            module.fail_json(msg=f"run_started_at: {p['run_started_at'][:80]!r} is not an ISO 8601 timestamp.")
    bounds = {}
    for table, value in (p["watermarks"] or {}).items():
        value = _timestamp(value)  # offload_watermark's result passes as is
        try:
            bounds[table] = parse_timestamp(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            module.fail_json(msg=f"watermarks[{table!r}]: {str(value)[:80]!r} is not an ISO 8601 timestamp.")
    if not HAS_LIBS:
        module.fail_json(msg=missing_required_lib("clickhouse-connect, pyarrow and pyiceberg"), exception=str(LIBS_ERROR))

    secrets = (p["clickhouse_password"],)
    try:
        client = clickhouse_connect.get_client(
            host=p["clickhouse_host"], port=p["clickhouse_port"], username=p["clickhouse_user"],
            password=p["clickhouse_password"] or "", database=p["clickhouse_database"],
            connect_timeout=p["connect_timeout"], send_receive_timeout=300, autogenerate_session_id=False,
            client_name="k2-offload-ansible", query_retries=0)
    except Exception as exc:  # noqa: BLE001 - clickhouse-connect raises several unrelated types
        module.fail_json(msg=connection_error(p, exc, secrets))
    results, recovery = [], []
    for table in p["tables"]:
        source = table["source"]
        try:
            result = table_truth(client, table, bounds.get(source), p["warehouse_path"], p["written_warehouse_path"],
                                 window_seconds=p["window_seconds"])
            if until is not None:
                result["pending_rows"] = pending_rows(client, table, bounds.get(source), until)
                recovery.append(table_recovery(source, _timestamp((p["watermarks_before"] or {}).get(source)),
                                               _watermark_row(p["watermarks"].get(source)), result["pending_rows"]))
            results.append(result)
        except Exception as exc:  # noqa: BLE001 - a table that cannot be read is a finding with its name
            error = f"{source}: {one_line_error(str(exc) or type(exc).__name__, secrets)}"
            results.append({"table": source, "error": error})
            if until is not None:
                recovery.append({"table": source, "recovered": False, "how": None, "reason": error})
    missing = sum(r.get("missing", 0) for r in results)
    duplicated = sum(r.get("duplicated", 0) for r in results)
    clean = missing == 0 and duplicated == 0 and not any(r.get("error") for r in results)
    out = to_json_safe({"changed": False, "tables": results, "missing": missing, "duplicated": duplicated,
                        "clean": clean, **({"recovery": recovery} if until is not None else {})})
    if p["fail_on_mismatch"] and not clean:
        module.fail_json(msg=f"Truth check failed: {missing} missing and {duplicated} duplicated row(s) "
                             f"({'; '.join(r['error'] for r in results if r.get('error')) or 'see tables'}).", **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
