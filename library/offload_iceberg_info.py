#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_iceberg_info
short_description: Read the cold tier's Iceberg tables from their metadata, on the Docker host
description:
  - Reads, for each offloaded table, the current Iceberg metadata under the warehouse directory as the
    Docker host sees it (K2 binds C(./docker/iceberg/warehouse) to C(/home/iceberg/warehouse) in
    C(k2-spark-iceberg)).
  - Finds the current metadata like K2's Hadoop catalog (C(metadata/version-hint.text) naming
    C(vN.metadata.json)), else the newest C(*.metadata.json).
  - Reports the current snapshot, its commit time and total records, and the maximum of the table's
    timestamp column taken from the data files' column statistics (no data scan) - what was really
    offloaded, the truth a watermark is checked against.
  - Also reports the warehouse directory's owner and mode (the runbook expects C(drwxrwxr-x)).
version_added: "1.0.0"
author: K2 offload automation
extends_documentation_fragment:
  - offload.tables
  - offload.info_module
options:
  warehouse_path:
    description: The Iceberg warehouse directory on the host where the module runs.
    type: path
    required: true
  written_warehouse_path:
    description:
      - The warehouse path as written inside the table metadata (the Spark container's view).
      - Files named under it are read from O(warehouse_path).
    type: str
    default: /home/iceberg/warehouse
requirements:
  - pyiceberg >= 0.9 (only for O(tables[].timestamp_col) statistics)
"""

EXAMPLES = r"""
---
- name: Read the cold tier of every offloaded table
  offload_iceberg_info:
    warehouse_path: /srv/k2/docker/iceberg/warehouse
    tables: "{{ k2_tables }}"
  register: cold
"""

RETURN = r"""
---
warehouse:
  description: Owner, group and mode of the warehouse directory.
  returned: always
  type: dict
  sample: {exists: true, uid: 0, gid: 0, mode: "0775", writable_by_group: true}
tables:
  description: Per source table, the Iceberg side; C(max_timestamp) and C(max_sequence) are the largest upper
    bounds of the cursor columns over the current snapshot's data files (what was really committed).
  returned: always
  type: dict
  sample:
    bronze_trades_binance:
      exists: true
      metadata_file: /srv/k2/warehouse/cold/bronze_trades_binance/metadata/v4.metadata.json
      snapshot_id: 3051729675574597004
      committed_at: "2026-11-26T07:31:39.201000+00:00"
      total_records: 66908
      max_timestamp: "2026-11-26T07:26:55.283000+00:00"
      max_sequence: 1795689933414259
      error: null
"""

import os
import stat
import struct
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.offload_common import check_tables, first_line, tables_argument_spec
from ansible.module_utils.offload_truth import cold_table_dir, current_metadata, relocating_io, snapshot_summary

try:
    from pyiceberg.serializers import FromInputFile
    from pyiceberg.table import StaticTable
    HAS_PYICEBERG = True
except ImportError:
    HAS_PYICEBERG = False

MICROS = 1_000_000


def warehouse_state(path: str) -> dict:
    try:
        st = os.stat(path)
    except OSError as exc:
        return {"exists": False, "error": first_line(exc)}
    mode = stat.S_IMODE(st.st_mode)
    return {"exists": True, "uid": st.st_uid, "gid": st.st_gid, "mode": f"{mode:04o}",
            "writable_by_group": bool(mode & stat.S_IWGRP), "error": None}


def max_bounds(metadata_file: str, warehouse: str, written: str, ts_col: str, seq_col: str | None):
    """Largest upper bounds of ts_col and seq_col over the current snapshot's data files: what the cold tier has
    really committed (Iceberg stores timestamps as int64 microseconds and integers little-endian)."""
    io = relocating_io(written, warehouse)
    metadata = FromInputFile.table_metadata(io.new_input(metadata_file))
    table = StaticTable(identifier=("cold", "t"), metadata=metadata, metadata_location=metadata_file, io=io,
                        catalog=None)
    schema = table.schema()
    ts_id = schema.find_field(ts_col).field_id
    seq_id = schema.find_field(seq_col).field_id if seq_col and seq_col in schema.column_names else None
    best_ts = best_seq = None
    for task in table.scan().plan_files():
        bounds = task.file.upper_bounds or {}
        raw = bounds.get(ts_id)
        if raw is not None and len(raw) == 8:
            value = struct.unpack("<q", raw)[0]
            best_ts = value if best_ts is None else max(best_ts, value)
        raw = bounds.get(seq_id) if seq_id is not None else None
        if raw is not None and len(raw) in (4, 8):
            value = struct.unpack("<q" if len(raw) == 8 else "<i", raw)[0]
            best_seq = value if best_seq is None else max(best_seq, value)
    ts = datetime.fromtimestamp(best_ts / MICROS, tz=timezone.utc).isoformat() if best_ts is not None else None
    return ts, best_seq


def inspect_table(warehouse: str, written: str, table: dict) -> dict:
    meta = current_metadata(cold_table_dir(warehouse, table["target"]))
    if meta is None:
        return {"exists": False, "metadata_file": None, "snapshot_id": None, "committed_at": None,
                "total_records": 0, "max_timestamp": None, "max_sequence": None, "error": None}
    result = {"exists": True, "metadata_file": str(meta), "error": None, "max_timestamp": None,
              "max_sequence": None}
    try:
        result.update(snapshot_summary(meta))
        if result["snapshot_id"] is not None:
            result["max_timestamp"], result["max_sequence"] = max_bounds(
                str(meta), warehouse, written, table["timestamp_col"], table.get("sequence_col"))
    except (OSError, ValueError, KeyError) as exc:
        result["error"] = f"cannot read {meta}: {first_line(exc)}"
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "warehouse_path": {"type": "path", "required": True},
            "written_warehouse_path": {"type": "str", "default": "/home/iceberg/warehouse"},
            **tables_argument_spec(),
        },
        supports_check_mode=True,
    )
    if not HAS_PYICEBERG:
        module.fail_json(msg=missing_required_lib("pyiceberg"))
    params = module.params
    check_tables(module, params["tables"])
    warehouse, written = params["warehouse_path"], params["written_warehouse_path"]
    module.exit_json(changed=False, warehouse=warehouse_state(warehouse),
                     tables={t["source"]: inspect_table(warehouse, written, t) for t in params["tables"]})


if __name__ == "__main__":
    main()
