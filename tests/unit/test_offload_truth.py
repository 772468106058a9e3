"""Pure logic of the truth check (multiset row comparison, metadata discovery)."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from decimal import Decimal

import offload_truth
import pyarrow as pa
import pytest

COLS = ["ts", "seq", "price", "note"]


def _table(rows, tz=None, unit="ms"):
    return pa.table({"ts": pa.array([r[0] for r in rows], pa.timestamp(unit, tz=tz)),
                     "seq": pa.array([r[1] for r in rows], pa.uint64() if tz is None else pa.int64()),
                     "price": pa.array([r[2] for r in rows], pa.decimal128(18, 8)),
                     "note": pa.array([r[3] for r in rows], pa.string())})


ROWS = [(datetime(2026, 1, 1, 0, 0, i), i, Decimal("1.5"), None if i % 2 else "x") for i in range(6)]


def test_identical_rows_across_types_are_clean():
    hot = _table(ROWS)
    cold = _table([(r[0].replace(tzinfo=timezone.utc), *r[1:]) for r in ROWS], tz="UTC", unit="us")
    assert offload_truth.compare(hot, cold, COLS) == {"hot_rows": 6, "cold_rows": 6, "missing": 0, "duplicated": 0}


def test_missing_and_duplicated_rows_are_counted():
    hot = _table(ROWS)
    cold = _table(ROWS[:4] + ROWS[:2])  # two rows never arrived, two arrived twice
    result = offload_truth.compare(hot, cold, COLS)
    assert (result["missing"], result["duplicated"]) == (2, 2)


def test_identical_rows_in_hot_are_a_multiset():
    hot = _table([ROWS[0], ROWS[0]])
    assert offload_truth.compare(hot, _table([ROWS[0]]), COLS)["missing"] == 1
    assert offload_truth.compare(hot, _table([ROWS[0]] * 3), COLS)["duplicated"] == 1


def test_empty_or_absent_cold_table_means_everything_missing():
    hot = _table(ROWS)
    assert offload_truth.compare(hot, None, COLS)["missing"] == 6
    assert offload_truth.compare(hot, _table([]), COLS)["missing"] == 6


def test_null_and_text_that_looks_like_null_differ_only_by_token():
    hot = _table([(ROWS[0][0], 1, Decimal("1"), None)])
    cold = _table([(ROWS[0][0], 1, Decimal("1"), "x")])
    assert offload_truth.compare(hot, cold, COLS)["missing"] == 1


def _meta(path, snapshot_id=7, records=42):
    path.write_text(json.dumps({"current-snapshot-id": snapshot_id, "snapshots": [
        {"snapshot-id": snapshot_id, "timestamp-ms": 1767225600000, "summary": {"total-records": str(records)}}]}))


def test_current_metadata_prefers_version_hint(tmp_path):
    meta = tmp_path / "metadata"
    meta.mkdir()
    _meta(meta / "v1.metadata.json")
    _meta(meta / "v2.metadata.json")
    _meta(meta / "00009-abc.metadata.json")
    (meta / "version-hint.text").write_text("2\n")
    assert offload_truth.current_metadata(tmp_path).name == "v2.metadata.json"


def test_current_metadata_falls_back_to_newest_file(tmp_path):
    meta = tmp_path / "metadata"
    meta.mkdir()
    _meta(meta / "00001-a.metadata.json")
    newest = meta / "00002-b.metadata.json"
    _meta(newest)
    (meta / "version-hint.text").write_text("9")  # names a file that does not exist
    assert offload_truth.current_metadata(tmp_path) == newest


def test_current_metadata_is_the_newest_by_time_not_by_name(tmp_path):
    meta = tmp_path / "metadata"
    meta.mkdir()
    _meta(meta / "b.metadata.json")
    _meta(meta / "a.metadata.json")
    os.utime(meta / "b.metadata.json", (1_000_000, 1_000_000))
    assert offload_truth.current_metadata(tmp_path).name == "a.metadata.json"


def test_absent_table_has_no_metadata(tmp_path):
    assert offload_truth.current_metadata(tmp_path / "nope") is None


def test_snapshot_summary_reads_counts(tmp_path):
    _meta(tmp_path / "v1.metadata.json", records=1234)
    assert offload_truth.snapshot_summary(tmp_path / "v1.metadata.json") == {
        "snapshot_id": 7, "committed_at": "2026-01-01T00:00:00+00:00", "total_records": 1234}


@pytest.mark.parametrize("meta", [{"current-snapshot-id": None, "snapshots": []}, {"current-snapshot-id": None},
                                  {"current-snapshot-id": 8, "snapshots": [{"snapshot-id": 7}]}])
def test_snapshot_summary_of_table_without_current_snapshot(tmp_path, meta):
    (tmp_path / "v1.metadata.json").write_text(json.dumps(meta))
    assert offload_truth.snapshot_summary(tmp_path / "v1.metadata.json") == {
        "snapshot_id": None, "committed_at": None, "total_records": 0}


@pytest.mark.parametrize("snapshot", [{}, {"summary": {}}])
def test_snapshot_summary_without_a_record_count_counts_none(tmp_path, snapshot):
    (tmp_path / "v1.metadata.json").write_text(json.dumps({"current-snapshot-id": 7, "snapshots": [
        {"snapshot-id": 7, "timestamp-ms": 0, **snapshot}]}))
    assert offload_truth.snapshot_summary(tmp_path / "v1.metadata.json")["total_records"] == 0


@pytest.mark.parametrize("target", ["cold.t", "cold.bronze_trades_binance"])
def test_cold_table_dir_follows_hadoop_layout(tmp_path, target):
    assert offload_truth.cold_table_dir(tmp_path, target) == tmp_path / "cold" / target.split(".")[1]


def test_cold_table_dir_splits_at_the_first_dot_only(tmp_path):
    assert offload_truth.cold_table_dir(tmp_path, "cold.t.v2") == tmp_path / "cold" / "t.v2"
