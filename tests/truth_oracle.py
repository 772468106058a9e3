"""An independent truth oracle for the tests: hot vs cold rows of a lab table up to its watermark, sharing no code
with the product's truth check (module_utils/offload_truth.py), so that a bug there cannot hide in both:

- hot: plain SQL counts over ClickHouse's HTTP interface (urllib; not clickhouse-connect);
- cold: the Iceberg catalog's current metadata location (sqlite3, or K2's version hint), the snapshot's manifest list
  and manifests read with fastavro (not pyiceberg), and the live data files' rows read with pyarrow.

It counts: `missing` = hot rows in the window minus distinct cold rows in it (the cold tier only ever holds rows
copied from the hot one), `duplicated` = cold rows minus distinct cold rows.
"""
from __future__ import annotations

import base64
import json
import sqlite3
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import fastavro
import labctl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from table_config import by_source

WRITTEN_WAREHOUSE = "/home/iceberg/warehouse"  # where the Spark container writes; the host sees .lab/warehouse
LIVE = (0, 1)  # manifest entry status EXISTING, ADDED (2 = DELETED)


def _clickhouse(cfg, sql: str) -> list[dict]:
    auth = base64.b64encode(f"default:{cfg.clickhouse_password}".encode()).decode()
    url = f"http://127.0.0.1:{cfg.port_clickhouse}/?" + urllib.parse.urlencode({"database": "k2"})
    request = urllib.request.Request(url, data=f"{sql} FORMAT JSON".encode(), method="POST",
                                     headers={"Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)["data"]


def _local(path: str, warehouse: Path) -> Path:
    path = path.removeprefix("file://").removeprefix("file:")
    return warehouse / path[len(WRITTEN_WAREHOUSE):].lstrip("/") if path.startswith(WRITTEN_WAREHOUSE) else Path(path)


def _metadata_location(warehouse: Path, target: str) -> str | None:
    """The table's current metadata file: from the twin's SQL catalog, or from K2's Hadoop catalog's version hint
    (the conformance lane, where K2's own Spark wrote the table)."""
    namespace, name = target.split(".")
    catalog = warehouse / "catalog.db"
    if catalog.exists():
        with sqlite3.connect(catalog) as db:
            row = db.execute("SELECT metadata_location FROM iceberg_tables WHERE table_namespace = ? AND "
                             "table_name = ?", (namespace, name)).fetchone()
        return row[0] if row else None
    hint = warehouse / namespace / name / "metadata" / "version-hint.text"
    return str(hint.parent / f"v{hint.read_text().strip()}.metadata.json") if hint.exists() else None


def live_data_files(warehouse: Path, target: str) -> list[Path]:
    """The Parquet files of the table's current snapshot, from the catalog and the Avro manifests."""
    location = _metadata_location(warehouse, target)
    if location is None:
        return []
    metadata = json.loads(_local(location, warehouse).read_text())
    snapshot = next((s for s in metadata.get("snapshots", [])
                     if s["snapshot-id"] == metadata.get("current-snapshot-id")), None)
    if snapshot is None:
        return []
    files = []
    with _local(snapshot["manifest-list"], warehouse).open("rb") as handle:
        manifests = [m["manifest_path"] for m in fastavro.reader(handle)]
    for manifest in manifests:
        with _local(manifest, warehouse).open("rb") as handle:
            files += [_local(e["data_file"]["file_path"], warehouse) for e in fastavro.reader(handle)
                      if e["status"] in LIVE and e["data_file"].get("content", 0) == 0]
    return files


def _utc_micros(column) -> pa.Array:
    tz = column.type.tz or "UTC"  # K2 writes UTC; a naive column is UTC
    return pc.cast(pc.cast(column, pa.timestamp("us", tz=tz)), pa.int64())


def table_truth(lab, source: str) -> dict:
    """Hot vs cold of `source` over [its oldest hot row, its watermark]; the watermark read from PostgreSQL."""
    config = by_source(source)
    ts = config["timestamp_col"]
    watermark = labctl.watermark_of(lab.cfg, source)
    if watermark is None or watermark.year == 1970:
        return {"table": source, "hot": 0, "cold": 0, "missing": 0, "duplicated": 0}
    upper = (watermark if watermark.tzinfo else watermark.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    hi = upper.strftime("%Y-%m-%d %H:%M:%S.%f")
    window = _clickhouse(lab.cfg, f"SELECT toString(min({ts})) AS lo FROM {source}")[0]  # noqa: S608 - lab names
    lo = window["lo"]
    hot = int(_clickhouse(lab.cfg, f"SELECT count() AS n FROM {source} WHERE {ts} >= toDateTime64('{lo}', 6, 'UTC') "  # noqa: S608
                                   f"AND {ts} <= toDateTime64('{hi}', 6, 'UTC')")[0]["n"])
    lo_us = int(datetime.fromisoformat(lo).replace(tzinfo=timezone.utc).timestamp() * 1_000_000)
    hi_us = int(upper.timestamp() * 1_000_000)
    pieces = []
    for path in live_data_files(lab.cfg.warehouse_dir, config["target_table"]):
        data = pq.read_table(path)
        micros = _utc_micros(data.column(ts))
        pieces.append(data.filter(pc.and_(pc.greater_equal(micros, lo_us), pc.less_equal(micros, hi_us))))
    cold = pa.concat_tables(pieces, promote_options="permissive") if pieces else None
    cold_rows = cold.num_rows if cold is not None else 0
    distinct = cold.group_by(cold.column_names).aggregate([]).num_rows if cold_rows else 0
    return {"table": source, "hot": hot, "cold": cold_rows, "missing": hot - distinct, "duplicated": cold_rows - distinct}
