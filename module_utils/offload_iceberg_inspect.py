# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: the cold tier's read-only inspection from Iceberg metadata (warehouse
# ownership and mode, each table's current snapshot and committed maxima), shared by library/offload_iceberg_info.py
# and library/offload_diagnosis.py (the diagnosis' cold-tier probe). Imported as
# ansible.module_utils.offload_iceberg_inspect.
from __future__ import annotations

import os
import stat
import struct
from datetime import datetime, timezone

from ansible.module_utils.offload_common import ProbeError, first_line
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
    table_dir = cold_table_dir(warehouse, table["target"])
    try:
        meta = current_metadata(table_dir)
    except OSError as exc:  # not known to be absent: a repair must not take it for an empty table
        return {"exists": None, "metadata_file": None, "snapshot_id": None, "committed_at": None,
                "total_records": None, "max_timestamp": None, "max_sequence": None,
                "error": f"cannot read {table_dir}: {first_line(exc)}"}
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




def read_iceberg(reporter) -> dict:
    """The diagnosis' cold-tier probe: the warehouse and every table (tables validated by the caller)."""
    if not HAS_PYICEBERG:
        raise ProbeError("Failed to import the required Python library (pyiceberg) on the control node.")
    params = reporter.params
    warehouse, written = params["warehouse_path"], params["written_warehouse_path"]
    return {"warehouse": warehouse_state(warehouse),
            "tables": {t["source"]: inspect_table(warehouse, written, t) for t in params["tables"]}}
