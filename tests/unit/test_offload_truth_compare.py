"""offload_truth.compare cases test_offload_truth.py does not cover (empty hot tier, column subsets, the type
casts ClickHouse vs Iceberg need), and relocate() of the Spark container's warehouse paths."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import offload_truth
import pyarrow as pa
import pytest

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_empty_hot_tier_makes_every_cold_row_a_duplicate():
    hot = pa.table({"seq": pa.array([], pa.int64())})
    cold = pa.table({"seq": pa.array([1, 2, 2], pa.int64())})
    assert offload_truth.compare(hot, cold, ["seq"]) == {"hot_rows": 0, "cold_rows": 3, "missing": 0, "duplicated": 3}


def test_empty_hot_and_absent_cold_is_clean():
    hot = pa.table({"seq": pa.array([], pa.int64())})
    assert offload_truth.compare(hot, None, ["seq"]) == {"hot_rows": 0, "cold_rows": 0, "missing": 0, "duplicated": 0}


def test_only_the_named_columns_are_compared():
    hot = pa.table({"seq": [1, 2], "note": ["x", "y"]})
    cold = pa.table({"seq": [1, 2], "note": ["x", "CHANGED"]})
    assert offload_truth.compare(hot, cold, ["seq"]) == {"hot_rows": 2, "cold_rows": 2, "missing": 0, "duplicated": 0}
    assert offload_truth.compare(hot, cold, ["seq", "note"]) == {"hot_rows": 2, "cold_rows": 2, "missing": 1,
                                                                 "duplicated": 1}


def test_clickhouse_bool_as_uint8_equals_iceberg_boolean():
    hot = pa.table({"is_valid": pa.array([1, 0, 1], pa.uint8())})
    cold = pa.table({"is_valid": pa.array([True, False, True])})
    assert offload_truth.compare(hot, cold, ["is_valid"])["missing"] == 0
    cold_wrong = pa.table({"is_valid": pa.array([True, True, True])})
    assert offload_truth.compare(hot, cold_wrong, ["is_valid"])["missing"] == 1


def test_same_instant_in_another_time_zone_is_the_same_row():
    hot = pa.table({"ts": pa.array([T0], pa.timestamp("ms", tz="Asia/Tokyo"))})
    cold = pa.table({"ts": pa.array([T0], pa.timestamp("us", tz="UTC"))})
    assert offload_truth.compare(hot, cold, ["ts"])["missing"] == 0


def test_sub_millisecond_difference_is_a_different_row():
    hot = pa.table({"ts": pa.array([T0.replace(microsecond=1000)], pa.timestamp("us", tz="UTC"))})
    cold = pa.table({"ts": pa.array([T0.replace(microsecond=1001)], pa.timestamp("us", tz="UTC"))})
    result = offload_truth.compare(hot, cold, ["ts"])
    assert (result["missing"], result["duplicated"]) == (1, 1)


def test_decimal_precisions_of_k2_compare_equal():
    # ClickHouse Decimal(38, 8) (quote_volume) vs Iceberg decimal(18, 8) and vice versa.
    hot = pa.table({"v": pa.array([Decimal("123456.12345678")], pa.decimal128(38, 8))})
    cold = pa.table({"v": pa.array([Decimal("123456.12345678")], pa.decimal128(18, 8))})
    assert offload_truth.compare(hot, cold, ["v"])["missing"] == 0
    assert offload_truth.compare(cold, hot, ["v"])["missing"] == 0


@pytest.mark.parametrize("location, expected", [
    ("file:///home/iceberg/warehouse/cold/t/data/00000-0.parquet", "/srv/wh/cold/t/data/00000-0.parquet"),
    ("file:/home/iceberg/warehouse/cold/t/metadata/v2.metadata.json", "/srv/wh/cold/t/metadata/v2.metadata.json"),
    ("/home/iceberg/warehouse/cold/t", "/srv/wh/cold/t"),
    ("/home/iceberg/warehouse", "/srv/wh"),
    ("/home/iceberg/warehouse2/cold/t", "/home/iceberg/warehouse2/cold/t"),  # a sibling, not under the root
    ("/elsewhere/x.parquet", "/elsewhere/x.parquet"),
])
@pytest.mark.parametrize("written_root", ["/home/iceberg/warehouse", "/home/iceberg/warehouse/"])
def test_relocate(location, expected, written_root):
    assert offload_truth.relocate(location, written_root, "/srv/wh/") == expected


def _trades(*minutes_and_seqs):
    return pa.table({"ts": pa.array([T0 + timedelta(minutes=m) for m, _ in minutes_and_seqs], pa.timestamp("us", "UTC")),
                     "seq": pa.array([s for _, s in minutes_and_seqs], pa.int64())})


def test_differences_are_reported_per_window_of_the_timestamp():
    hot = _trades((5, 1), (10, 2), (70, 3), (75, 4), (130, 5))
    # hour 0: row 2 doubled; hour 1: row 4 missing, row 3 tripled; hour 2 clean
    cold = _trades((5, 1), (10, 2), (10, 2), (70, 3), (70, 3), (70, 3), (130, 5))
    result = offload_truth.compare(hot, cold, ["ts", "seq"], ts_col="ts", window_seconds=3600)
    assert (result["missing"], result["duplicated"]) == (1, 3)
    assert result["windows"] == [
        {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat(), "missing": 0, "duplicated": 1},
        {"start": (T0 + timedelta(hours=1)).isoformat(), "end": (T0 + timedelta(hours=2)).isoformat(),
         "missing": 1, "duplicated": 2}]


def test_clean_comparison_has_no_windows_and_absent_cold_is_all_missing_per_window():
    hot = _trades((5, 1), (65, 2))
    assert offload_truth.compare(hot, hot, ["ts", "seq"], ts_col="ts")["windows"] == []
    absent = offload_truth.compare(hot, None, ["ts", "seq"], ts_col="ts", window_seconds=7200)
    assert absent["missing"] == 2 and [w["missing"] for w in absent["windows"]] == [2]


def test_only_the_newest_windows_are_kept():
    hot = _trades(*((m * 60, m) for m in range(10)))
    result = offload_truth.compare(hot, None, ["ts", "seq"], ts_col="ts", max_windows=3)
    assert [w["start"] for w in result["windows"]] == [(T0 + timedelta(hours=h)).isoformat() for h in (7, 8, 9)]


def test_by_default_the_newest_48_windows_are_kept():
    hot = _trades(*((m * 60, m) for m in range(50)))
    windows = offload_truth.compare(hot, None, ["ts", "seq"], ts_col="ts")["windows"]
    assert len(windows) == 48 and windows[0]["start"] == (T0 + timedelta(hours=2)).isoformat()
