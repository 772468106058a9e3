# -*- coding: utf-8 -*-
# Truth check of the offload: rows in the hot tier (ClickHouse) vs rows in the cold tier (Iceberg).
# Plain Python (pyarrow + pyiceberg), shared by the lab's `verify-data` and the product's modules.
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

NULL_TOKEN = "\\N"


def current_metadata(table_dir: str | Path) -> Path | None:
    """The table's current metadata file: K2's Hadoop layout (version-hint.text -> vN.metadata.json),
    else the newest *.metadata.json (pyiceberg's SqlCatalog naming). None when the table does not exist."""
    meta = Path(table_dir) / "metadata"
    hint = meta / "version-hint.text"
    if hint.is_file():
        candidate = meta / f"v{hint.read_text().strip()}.metadata.json"
        if candidate.is_file():
            return candidate
    files = sorted(meta.glob("*.metadata.json"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None


def cold_table_dir(warehouse: str | Path, target_table: str) -> Path:
    namespace, name = target_table.split(".", 1)
    return Path(warehouse) / namespace / name


def snapshot_summary(metadata_file: Path) -> dict:
    """Current snapshot id, commit time and total records, read from the metadata JSON alone."""
    meta = json.loads(metadata_file.read_text())
    snap_id = meta.get("current-snapshot-id")
    snap = next((s for s in meta.get("snapshots", []) if s.get("snapshot-id") == snap_id), None)
    if snap is None:
        return {"snapshot_id": None, "committed_at": None, "total_records": 0}
    return {"snapshot_id": snap_id,
            "committed_at": datetime.fromtimestamp(snap["timestamp-ms"] / 1000, tz=timezone.utc).isoformat(),
            "total_records": int(snap.get("summary", {}).get("total-records", 0))}


def relocating_io(written_root: str, local_root: str):
    """FileIO that reads files the table's metadata names under written_root (the Spark container's
    warehouse path) from local_root (the same directory as the Docker host sees it)."""
    from pyiceberg.io.pyarrow import PyArrowFileIO

    class RelocatingFileIO(PyArrowFileIO):
        def new_input(self, location: str):
            return super().new_input(relocate(location, written_root, local_root))

    return RelocatingFileIO()


def relocate(location: str, written_root: str, local_root: str) -> str:
    path = location.removeprefix("file://").removeprefix("file:")
    written_root = written_root.rstrip("/")
    if path == written_root or path.startswith(written_root + "/"):
        return str(local_root).rstrip("/") + path[len(written_root):]
    return path


def read_cold(warehouse, target_table: str, columns: list[str], ts_col: str, lower: datetime, upper: datetime,
              written_warehouse: str):
    """Rows of the cold table with lower <= ts <= upper (pyarrow Table), or None if the table does not exist;
    written_warehouse is where the table's metadata says its files are (K2: /home/iceberg/warehouse, in Spark).
    Reads the Parquet data files of the current snapshot directly (K2 only appends: no delete files)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from pyiceberg.serializers import FromInputFile
    from pyiceberg.table import StaticTable
    metadata_file = current_metadata(cold_table_dir(warehouse, target_table))
    if metadata_file is None:
        return None
    io = relocating_io(written_warehouse, str(warehouse))
    metadata = FromInputFile.table_metadata(io.new_input(str(metadata_file)))
    table = StaticTable(identifier=tuple(target_table.split(".")), metadata=metadata,
                        metadata_location=str(metadata_file), io=io, catalog=None)
    pieces = []
    for task in table.scan().plan_files():
        data = pq.read_table(relocate(task.file.file_path, written_warehouse, str(warehouse)), columns=columns)
        ts = data.column(ts_col)
        # As the column's type: an aware bound converts to UTC for a column without zone (K2's Spark writes UTC).
        lo, hi = (pa.scalar(bound, type=ts.type) for bound in (lower, upper))
        pieces.append(data.filter(pc.and_(pc.greater_equal(ts, lo), pc.less_equal(ts, hi))))
    if not pieces:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return pa.concat_tables(pieces, promote_options="permissive")


def _as_keys(table, columns: list[str]):
    """One comparable string per column: timestamps as UTC microseconds, everything else as text."""
    import pyarrow as pa
    import pyarrow.compute as pc
    arrays = []
    for name in columns:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = pc.cast(pc.cast(col, pa.timestamp("us", tz=col.type.tz)), pa.int64())
        elif pa.types.is_boolean(col.type):
            col = pc.cast(col, pa.int8())
        elif pa.types.is_decimal(col.type):
            col = pc.cast(col, pa.decimal128(38, 8))
        arrays.append(pc.fill_null(pc.cast(col, pa.string()), NULL_TOKEN))
    return pa.table(arrays, names=columns)


def compare(hot, cold, columns: list[str], ts_col: str | None = None, window_seconds: int = 3600,
            max_windows: int = 48) -> dict:
    """Multiset comparison of whole rows: missing = in hot, not (often enough) in cold; duplicated = extra copies.
    With ts_col, also per window of window_seconds (by the row's timestamp): where the rows are missing or doubled,
    which is what a repair of the cold tier needs (newest max_windows windows kept)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    hot_counts = _as_keys(hot, columns).group_by(columns).aggregate([([], "count_all")])
    hot_counts = hot_counts.rename_columns([*columns, "hot_n"])
    if cold is None or cold.num_rows == 0:
        joined = hot_counts.append_column("cold_n", pa.array([0] * hot_counts.num_rows, pa.int64()))
    else:
        cold_counts = _as_keys(cold, columns).group_by(columns).aggregate([([], "count_all")])
        cold_counts = cold_counts.rename_columns([*columns, "cold_n"])
        joined = hot_counts.join(cold_counts, keys=columns, join_type="full outer")
    diff = pc.subtract(pc.fill_null(joined.column("hot_n"), 0), pc.fill_null(joined.column("cold_n"), 0))
    missing_n, duplicated_n = pc.max_element_wise(diff, 0), pc.max_element_wise(pc.negate(diff), 0)
    result = {"hot_rows": hot.num_rows, "cold_rows": 0 if cold is None else cold.num_rows,
              "missing": int(pc.sum(missing_n).as_py() or 0), "duplicated": int(pc.sum(duplicated_n).as_py() or 0)}
    if ts_col is not None:
        result["windows"] = _windows(joined.column(ts_col), missing_n, duplicated_n, window_seconds, max_windows)
    return result


def _windows(ts_keys, missing_n, duplicated_n, window_seconds: int, max_windows: int) -> list[dict]:
    """[{start, end, missing, duplicated}] for the windows with a difference, oldest first."""
    from datetime import timezone as tz

    import pyarrow as pa
    import pyarrow.compute as pc
    differs = pc.or_(pc.greater(missing_n, 0), pc.greater(duplicated_n, 0))
    if not pc.any(differs).as_py():
        return []
    micros = pc.cast(pc.filter(ts_keys, differs), pa.int64())
    width = window_seconds * 1_000_000
    table = pa.table({"window": pc.multiply(pc.divide(micros, width), width),
                      "missing": pc.filter(missing_n, differs), "duplicated": pc.filter(duplicated_n, differs)})
    rows = table.group_by("window").aggregate([("missing", "sum"), ("duplicated", "sum")]).sort_by("window")
    out = []
    for start, missing, duplicated in zip(*(rows.column(c).to_pylist()
                                            for c in ("window", "missing_sum", "duplicated_sum"))):
        begin = datetime.fromtimestamp(start / 1_000_000, tz.utc)
        out.append({"start": begin.isoformat(), "end": (begin + timedelta(seconds=window_seconds)).isoformat(),
                    "missing": int(missing), "duplicated": int(duplicated)})
    return out[-max_windows:]


def table_truth(client, table: dict, upper: datetime | None, warehouse, written_warehouse: str,
                database: str | None = None, window_seconds: int = 3600) -> dict:
    """Hot vs cold rows of one TABLE_CONFIG entry over [oldest hot row, upper] (upper = the watermark).

    client is a clickhouse-connect client; names come from validated TABLE_CONFIG entries."""
    from datetime import timezone as tz
    source, ts_col = table["source"], table["timestamp_col"]
    if upper is None or upper.year == 1970:
        return {"table": source, "watermark": None, "hot_rows": 0, "cold_rows": 0, "missing": 0, "duplicated": 0,
                "windows": []}
    qualified = f"{database}.{source}" if database else source
    lower = client.query(f"SELECT min({ts_col}) FROM {qualified}").first_row[0]  # noqa: S608 - validated names
    select = table.get("columns") or "*"
    fmt = "%Y-%m-%d %H:%M:%S.%f"  # explicit: clickhouse-connect would drop the sub-second part of a datetime
    upper_utc = upper.astimezone(tz.utc) if upper.tzinfo else upper.replace(tzinfo=tz.utc)
    hot = client.query_arrow(f"SELECT {select} FROM {qualified} WHERE {ts_col} >= %(lo)s AND "  # noqa: S608
                             f"{ts_col} <= %(hi)s", parameters={"lo": lower.strftime(fmt),
                                                                  "hi": upper_utc.strftime(fmt)})
    columns = select.split(",") if select != "*" else hot.column_names
    lower_utc = lower.replace(tzinfo=tz.utc) if lower.tzinfo is None else lower
    cold = read_cold(warehouse, table["target"], columns, ts_col, lower_utc, upper_utc, written_warehouse)
    return {"table": source, "watermark": upper_utc.isoformat(), "window_start": lower_utc.isoformat(),
            **compare(hot, cold, columns, ts_col, window_seconds)}
