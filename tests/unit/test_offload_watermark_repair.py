"""Scenario 4's repair plan (module_utils/offload_watermark_repair.py): the cold tier's committed maximum is the
truth; a gap is closed only while ClickHouse still holds its rows; nothing is touched while an offload runs."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import offload_watermark_repair as repair
import pytest

T = "bronze_trades_binance"
COLD_TS = datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc)
COLD = {"exists": True, "max_timestamp": COLD_TS.isoformat(), "max_sequence": 42}
HOT_OLDEST = COLD_TS - timedelta(hours=1)


def state_row(**kw):
    row = {"table_name": T, "last_offload_timestamp": COLD_TS, "last_offload_max_sequence": 42, "status": "success",
           "failure_count": 0}
    row.update(kw)
    return row


def plan(row, cold=COLD, hot=HOT_OLDEST, in_flight=False, layout="state"):
    return repair.plan_repair(layout, T, row, cold, hot, in_flight)


def test_matching_watermark_needs_nothing():
    assert plan(state_row())["action"] == "none"
    assert repair.repair_statements("state", plan(state_row())) == []


def test_in_flight_offload_is_never_touched_even_when_broken():
    result = plan(None, in_flight=True)
    assert result["action"] == "refused" and "in flight" in result["reason"]


def test_missing_row_is_recreated_from_the_cold_maximum():
    result = plan(None)
    assert (result["action"], result["timestamp"], result["sequence"]) == ("create", COLD_TS.isoformat(), 42)
    [(sql, params)] = repair.repair_statements("state", result)
    assert sql.startswith("INSERT INTO offload_watermarks") and params["status"] == "success"
    assert "%(timestamp)s" in sql and COLD_TS.isoformat() not in sql  # bound, never interpolated


def test_missing_row_of_an_empty_cold_table_starts_at_the_epoch():
    result = plan(None, cold={"exists": False, "max_timestamp": None})
    assert result["timestamp"] == "1970-01-01T00:00:00+00:00" and result["sequence"] == 0
    assert repair.repair_statements("state", result)[0][1]["status"] == "initialized"


def test_stuck_running_is_marked_failed_like_k2s_own_recovery():
    result = plan(state_row(status="running"))
    assert result["action"] == "mark_failed"
    [(sql, params)] = repair.repair_statements("state", result)
    assert "SET status = 'failed'" in sql and "AND status = 'running'" in sql and params["table"] == T


def test_null_values_are_repaired_from_the_cold_tier():
    result = plan(state_row(last_offload_timestamp=None))
    assert (result["action"], result["timestamp"]) == ("repair_nulls", COLD_TS.isoformat())


def test_watermark_behind_moves_forward_to_avoid_duplicates():
    result = plan(state_row(last_offload_timestamp=COLD_TS - timedelta(minutes=30)))
    assert (result["action"], result["timestamp"], result["sequence"]) == ("move_forward", COLD_TS.isoformat(), 42)
    assert "duplicates" in result["reason"]


def test_gap_moves_back_while_clickhouse_still_holds_its_rows():
    result = plan(state_row(last_offload_timestamp=COLD_TS + timedelta(minutes=30)))
    assert (result["action"], result["timestamp"]) == ("move_back", COLD_TS.isoformat())


def test_gap_whose_rows_ttl_may_have_deleted_escalates():
    result = plan(state_row(last_offload_timestamp=COLD_TS + timedelta(minutes=30)), hot=COLD_TS + timedelta(minutes=5))
    assert result["action"] == "escalate" and "data loss" in result["reason"]
    assert repair.repair_statements("state", result) == []


def test_gap_with_unknown_hot_tier_escalates_rather_than_guesses():
    assert plan(state_row(last_offload_timestamp=COLD_TS + timedelta(minutes=30)), hot=None)["action"] == "escalate"


def test_within_tolerance_is_equal():
    assert plan(state_row(last_offload_timestamp=COLD_TS + timedelta(milliseconds=500)))["action"] == "none"


@pytest.mark.parametrize("action", ["create", "move_back", "move_forward", "repair_nulls"])
def test_history_layout_appends_a_row_never_updates(action):
    [(sql, _)] = repair.repair_statements("history", {"table": T, "action": action,
                                                      "timestamp": COLD_TS.isoformat(), "sequence": 42})
    assert sql.startswith("INSERT INTO offload_watermarks (table_name, max_timestamp, sequence_number")


def test_history_layout_reads_its_own_columns():
    row = {"table_name": T, "max_timestamp": COLD_TS - timedelta(minutes=30), "sequence_number": 1}
    assert plan(row, layout="history")["action"] == "move_forward"


def test_prune_is_per_table_and_keeps_the_newest():
    assert "PARTITION BY table_name" in repair.PRUNE_SQL and "r.rn > %(keep)s" in repair.PRUNE_SQL
    assert "table_name = ANY(%(tables)s)" in repair.PRUNE_SQL
    assert "PARTITION" not in repair.RUNBOOK_GLOBAL_CLEANUP_SQL  # the runbook's: all tables together


PRUNE_SHAPE = re.compile(
    r"DELETE FROM offload_watermarks AS w USING \(SELECT id, row_number\(\) OVER \((?P<window>[^)]*)\) AS rn "
    r"FROM offload_watermarks WHERE (?P<filter>.*)\) AS r WHERE (?P<doomed>.*)")


def test_prune_sql_semantics_as_far_as_its_text_shows():
    # The statement deletes, per listed table, the rows ranked after the newest `keep`: rank 1 is the newest row
    # (created_at DESC, ties broken by the newest id), ranks restart for each table, and rank <= keep survives.
    match = PRUNE_SHAPE.fullmatch(repair.PRUNE_SQL)
    assert match, repair.PRUNE_SQL
    assert match["window"] == "PARTITION BY table_name ORDER BY created_at DESC, id DESC"
    assert match["filter"] == "table_name = ANY(%(tables)s)"  # only the listed tables, never the whole table
    assert match["doomed"] == "w.id = r.id AND r.rn > %(keep)s"  # strictly greater: the newest `keep` rows stay
    assert re.findall(r"%\((\w+)\)s", repair.PRUNE_SQL) == ["tables", "keep"]


def test_history_row_is_the_newest_and_locked():
    assert repair.HISTORY_ROW_SQL == ("SELECT * FROM offload_watermarks WHERE table_name = %(table)s "
                                      "ORDER BY created_at DESC, id DESC LIMIT 1 FOR UPDATE")


def test_lock_key_is_per_table():
    assert repair.lock_key("a") != repair.lock_key("b") and repair.lock_key("a").endswith("a")


def test_stuck_running_and_ahead_are_repaired_together():
    result = plan(state_row(status="running", last_offload_timestamp=COLD_TS + timedelta(minutes=30)))
    assert result["action"] == "move_back" and result["mark_failed"]
    statements = repair.repair_statements("state", result)
    assert [s.split()[0] for s, _ in statements] == ["UPDATE", "UPDATE"]
    assert "status = 'failed'" in statements[0][0] and "last_offload_timestamp" in statements[1][0]
