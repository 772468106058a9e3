"""The cold tier's per-table reading (offload_iceberg_inspect.inspect_table): a table that is not there is empty; one
that cannot be read is neither there nor absent, and the watermark repair refuses it."""
from __future__ import annotations

import offload_iceberg_inspect as iceberg
import offload_watermark_repair as repair

TABLE = {"source": "bronze_trades_binance", "target": "cold.bronze_trades_binance", "timestamp_col": "exchange_timestamp",
         "sequence_col": "sequence_number"}


def test_an_absent_table_is_empty(tmp_path):
    result = iceberg.inspect_table(str(tmp_path), str(tmp_path), TABLE)
    assert result["exists"] is False and result["error"] is None and result["total_records"] == 0
    plan = repair.plan_repair("state", TABLE["source"], None, result, None, False)
    assert plan["action"] == "create" and plan["timestamp"] == "1970-01-01T00:00:00+00:00"


def test_an_unreadable_table_is_not_taken_for_an_empty_one(tmp_path, monkeypatch):
    def denied(table_dir):
        raise PermissionError(13, "Permission denied", f"{table_dir}/metadata/version-hint.text")
    monkeypatch.setattr(iceberg, "current_metadata", denied)
    result = iceberg.inspect_table(str(tmp_path), str(tmp_path), TABLE)
    assert result["exists"] is None and result["total_records"] is None
    assert result["error"].startswith(f"cannot read {tmp_path}/cold/bronze_trades_binance: ") and \
        "Permission denied" in result["error"]
    plan = repair.plan_repair("state", TABLE["source"], None, result, None, False)
    assert plan["action"] == "refused" and "could not be read (cannot read" in plan["reason"]
