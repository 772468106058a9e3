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


def _decimal_scales(tables, columns: list[str]) -> dict[str, int]:
    """The larger scale of each decimal column over both tiers: 1.50000000 in Decimal(18, 8) must meet 1.5 in
    Decimal(38, 10) at one scale to be the same text."""
    import pyarrow as pa
    scales: dict[str, int] = {}
    for table in tables:
        for name in columns:
            kind = table.schema.field(name).type
            if pa.types.is_decimal(kind):
                scales[name] = max(scales.get(name, 0), kind.scale)
    return scales


def _as_keys(table, columns: list[str], decimal_scales: dict[str, int]):
    """One comparable string per column, by meaning: timestamps as UTC microseconds, booleans as 0/1, decimals at
    the scale both tiers share, the rest as text."""
    import pyarrow as pa
    import pyarrow.compute as pc
    arrays = []
    for name in columns:
        col = table.column(name)
        if pa.types.is_dictionary(col.type):  # LowCardinality, if the server sends it as a dictionary
            col = pc.cast(col, col.type.value_type)
        if pa.types.is_timestamp(col.type):
            col = pc.cast(pc.cast(col, pa.timestamp("us", tz=col.type.tz)), pa.int64())
        elif pa.types.is_boolean(col.type):
            col = pc.cast(col, pa.int8())
        elif pa.types.is_decimal(col.type):  # 76 digits: a wider scale never overflows a Decimal(38, S)
            col = pc.cast(col, pa.decimal256(76, decimal_scales[name]))
        arrays.append(pc.fill_null(pc.cast(col, pa.string()), NULL_TOKEN))
    return pa.table(arrays, names=columns)


def compare(hot, cold, columns: list[str], ts_col: str | None = None, window_seconds: int = 3600,
            max_windows: int = 48) -> dict:
    """Multiset comparison of whole rows: missing = in hot, not (often enough) in cold; duplicated = extra copies.
    With ts_col, also per window of window_seconds (by the row's timestamp): where the rows are missing or doubled,
    which is what a repair of the cold tier needs (newest max_windows windows kept)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    scales = _decimal_scales([t for t in (hot, cold) if t is not None], columns)
    hot_counts = _as_keys(hot, columns, scales).group_by(columns).aggregate([([], "count_all")])
    hot_counts = hot_counts.rename_columns([*columns, "hot_n"])
    if cold is None or cold.num_rows == 0:
        joined = hot_counts.append_column("cold_n", pa.array([0] * hot_counts.num_rows, pa.int64()))
    else:
        cold_counts = _as_keys(cold, columns, scales).group_by(columns).aggregate([([], "count_all")])
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


# ClickHouse's Arrow output carries some types by their storage, not their meaning: DateTime as uint32 seconds, Enum
# as its number, and UUID not at all before 26.4 (UNKNOWN_TYPE). K2's Spark stores what the JDBC driver gives it
# (a timestamp, the Enum's name, the UUID's text), so the hot rows are asked for in that form.
_SENT_AS_TEXT = ("UUID", "IPv4", "IPv6", "Enum8(", "Enum16(")
_NOT_IN_SELECT_STAR = ("MATERIALIZED", "ALIAS", "EPHEMERAL")


def _stored_type(clickhouse_type: str) -> str:
    """The type under Nullable(...) and LowCardinality(...), which change the storage, not the values."""
    for wrapper in ("Nullable(", "LowCardinality("):
        if clickhouse_type.startswith(wrapper):
            return _stored_type(clickhouse_type[len(wrapper):-1])
    return clickhouse_type


def hot_expression(name: str, clickhouse_type: str) -> str:
    """The SELECT item that sends column name by its meaning (see _SENT_AS_TEXT), under its own name."""
    stored, quoted = _stored_type(clickhouse_type), f"`{name}`"
    if stored.startswith("DateTime"):
        return f"toDateTime64({quoted}, 6, 'UTC') AS {quoted}"
    if stored == "Date":
        return f"toDate32({quoted}) AS {quoted}"
    if stored.startswith(_SENT_AS_TEXT):
        return f"toString({quoted}) AS {quoted}"
    return quoted


def hot_columns(described_rows, select: str) -> dict[str, str]:
    """{column: ClickHouse type} of the compared columns, in order: the configured list, or what SELECT * gives.
    described_rows are DESCRIBE TABLE's rows (name, type, default kind, ...)."""
    types = {row[0]: row[1] for row in described_rows}
    if select == "*":
        return {row[0]: row[1] for row in described_rows if row[2] not in _NOT_IN_SELECT_STAR}
    wanted = [name.strip() for name in select.split(",")]
    unknown = [name for name in wanted if name not in types]
    if unknown:
        raise ValueError(f"column(s) {', '.join(unknown)} not in the hot table")
    return {name: types[name] for name in wanted}


def _qualified(table: dict, database: str | None) -> str:
    return f"{database}.{table['source']}" if database else table["source"]


def _utc(moment: datetime) -> datetime:
    """An aware time in UTC; a naive one is taken as UTC (ClickHouse and K2 write UTC)."""
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


# Explicit, to the microsecond: clickhouse-connect would drop the sub-second part of a datetime parameter.
CLICKHOUSE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _clickhouse_time(moment: datetime) -> str:
    """A bound in UTC, as ClickHouse compares it with K2's UTC columns."""
    return _utc(moment).strftime(CLICKHOUSE_TIME)


def table_truth(client, table: dict, upper: datetime | None, warehouse, written_warehouse: str,
                database: str | None = None, window_seconds: int = 3600) -> dict:
    """Hot vs cold rows of one TABLE_CONFIG entry over [oldest hot row, upper] (upper = the watermark).

    client is a clickhouse-connect client; names come from validated TABLE_CONFIG entries."""
    source, ts_col = table["source"], table["timestamp_col"]
    if upper is None or upper.year == 1970:
        return {"table": source, "watermark": None, "hot_rows": 0, "cold_rows": 0, "missing": 0, "duplicated": 0,
                "windows": []}
    qualified = _qualified(table, database)
    lower = client.query(f"SELECT min({ts_col}) FROM {qualified}").first_row[0]  # noqa: S608 - validated names
    types = hot_columns(client.query(f"DESCRIBE TABLE {qualified}").result_rows, table.get("columns") or "*")
    columns = list(types)
    # The window is applied to the stored column, inside; the outer SELECT only changes how values are sent.
    hot = client.query_arrow(
        f"SELECT {', '.join(hot_expression(name, kind) for name, kind in types.items())} "  # noqa: S608
        f"FROM (SELECT {', '.join(f'`{name}`' for name in columns)} FROM {qualified} "
        f"WHERE {ts_col} >= %(lo)s AND {ts_col} <= %(hi)s)",
        # lower is the column's own value, sent back as ClickHouse gave it; upper is the watermark, in UTC.
        parameters={"lo": lower.strftime(CLICKHOUSE_TIME), "hi": _clickhouse_time(upper)})
    upper_utc, lower_utc = _utc(upper), (lower.replace(tzinfo=timezone.utc) if lower.tzinfo is None else lower)
    cold = read_cold(warehouse, table["target"], columns, ts_col, lower_utc, upper_utc, written_warehouse)
    return {"table": source, "watermark": upper_utc.isoformat(), "window_start": lower_utc.isoformat(),
            **compare(hot, cold, columns, ts_col, window_seconds)}


def pending_rows(client, table: dict, watermark: datetime | None, until: datetime, database: str | None = None) -> int:
    """Hot rows newer than the watermark and no newer than until (what an offload starting now would read)."""
    ts_col = table["timestamp_col"]
    lower = watermark or datetime(1970, 1, 1, tzinfo=timezone.utc)
    return int(client.query(f"SELECT count() FROM {_qualified(table, database)} WHERE {ts_col} > %(lo)s AND "  # noqa: S608
                            f"{ts_col} <= %(hi)s", parameters={"lo": _clickhouse_time(lower),
                                                                "hi": _clickhouse_time(until)}).first_row[0])
