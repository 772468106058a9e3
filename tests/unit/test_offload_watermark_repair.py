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


# ---------------------------------------------------------------- the whole plan, reason included (what remediate.yml
# reports and acts on): one expected dict per action.

STUCK = ("status 'running' with no offload in flight: marked failed (K2's own stale-run recovery) so the next run "
         "proceeds")
AHEAD = ("watermark 2026-11-26T11:30:00+00:00 is 1800 s ahead of the cold tier's maximum "
         "2026-11-26T11:00:00+00:00")


def expected(action, reason, timestamp=None, sequence=None, mark_failed=False):
    return {"table": T, "action": action, "reason": reason, "timestamp": timestamp, "sequence": sequence,
            "mark_failed": mark_failed}


def test_plan_refused_while_an_offload_is_in_flight():
    assert plan(state_row(), in_flight=True) == expected(
        "refused", "an offload of bronze_trades_binance is in flight; repairing now would race it")


def test_plan_create_names_the_cold_maximum_or_the_epoch():
    assert plan(None) == expected("create", "no watermark row: re-created from the cold tier's maximum "
                                            "(2026-11-26T11:00:00+00:00)", "2026-11-26T11:00:00+00:00", 42)
    assert plan(None, cold={"exists": False, "error": None}) == expected(
        "create", "no watermark row: re-created from the cold tier's maximum "
                                                       "(empty table: the epoch)", "1970-01-01T00:00:00+00:00", 0)


def test_an_empty_cold_maximum_is_no_maximum():
    result = plan(None, cold={"exists": True, "max_timestamp": "", "max_sequence": None})
    assert (result["action"], result["timestamp"], result["sequence"]) == ("create", "1970-01-01T00:00:00+00:00", 0)


def test_plan_none_when_the_watermark_matches():
    assert plan(state_row()) == expected("none", "watermark matches the cold tier's maximum")


def test_plan_mark_failed_alone_when_stuck_running_but_right():
    assert plan(state_row(status=" Running ")) == expected("mark_failed", STUCK, mark_failed=True)


@pytest.mark.parametrize("status, mark_failed, note", [("success", False, ""), ("running", True, "; " + STUCK)])
def test_plan_repair_nulls(status, mark_failed, note):
    assert plan(state_row(last_offload_timestamp=None, status=status)) == expected(
        "repair_nulls", "NULL watermark value(s): repaired from the cold tier's maximum" + note,
        "2026-11-26T11:00:00+00:00", 42, mark_failed)


@pytest.mark.parametrize("status, mark_failed, note", [("success", False, ""), ("running", True, "; " + STUCK)])
def test_plan_move_back(status, mark_failed, note):
    assert plan(state_row(last_offload_timestamp=COLD_TS + timedelta(minutes=30), status=status)) == expected(
        "move_back", AHEAD + " (a gap); ClickHouse still holds those rows (oldest 2026-11-26T10:00:00+00:00): moved "
                             "back so the next run offloads them" + note, "2026-11-26T11:00:00+00:00", 42, mark_failed)


@pytest.mark.parametrize("status, mark_failed, note", [("success", False, ""), ("running", True, "; " + STUCK)])
def test_plan_move_forward(status, mark_failed, note):
    assert plan(state_row(last_offload_timestamp=COLD_TS - timedelta(minutes=30), status=status)) == expected(
        "move_forward", "watermark 2026-11-26T10:30:00+00:00 is 1800 s behind the cold tier's maximum "
                        "2026-11-26T11:00:00+00:00: moved forward, else the next run re-appends those rows "
                        "(duplicates)" + note, "2026-11-26T11:00:00+00:00", 42, mark_failed)


def test_plan_escalate_reasons():
    ahead = state_row(last_offload_timestamp=COLD_TS + timedelta(minutes=30))
    assert plan(ahead, hot=None) == expected(
        "escalate", AHEAD + "; the hot tier's oldest row is unknown, so whether the gap's rows still exist cannot be "
                            "proven: escalate")
    assert plan(ahead, hot=COLD_TS + timedelta(minutes=5)) == expected(
        "escalate", AHEAD + ", and ClickHouse's oldest row is 2026-11-26T11:05:00+00:00: rows of the gap may already "
                            "be deleted by TTL (data loss): escalate")


def test_tolerance_bounds():
    # The default tolerance is 1 s and its bound is equal: exactly 1 s apart is equal, 1.5 s is not.
    assert plan(state_row(last_offload_timestamp=COLD_TS + timedelta(seconds=1)))["action"] == "none"
    assert plan(state_row(last_offload_timestamp=COLD_TS - timedelta(seconds=1)))["action"] == "none"
    assert plan(state_row(last_offload_timestamp=COLD_TS + timedelta(seconds=1.5)))["action"] == "move_back"
    assert plan(state_row(last_offload_timestamp=COLD_TS - timedelta(seconds=1.5)))["action"] == "move_forward"


def test_hot_oldest_bound_of_a_gap():
    # ClickHouse's oldest row at the cold maximum (or up to the tolerance after it): the gap's rows are still there.
    ahead = state_row(last_offload_timestamp=COLD_TS + timedelta(minutes=30))
    assert plan(ahead, hot=COLD_TS)["action"] == "move_back"
    assert plan(ahead, hot=COLD_TS + timedelta(seconds=1))["action"] == "move_back"
    assert plan(ahead, hot=COLD_TS + timedelta(seconds=2))["action"] == "escalate"


@pytest.mark.parametrize("cold_sequence, row_sequence, planned", [
    (42, 7, 42),      # the cold tier's sequence is the truth
    (None, 7, 7),     # the cold tier has none: the row's own is kept
    (None, None, 0),  # neither: 0
])
def test_planned_sequence(cold_sequence, row_sequence, planned):
    cold = {**COLD, "max_sequence": cold_sequence}
    behind = state_row(last_offload_timestamp=COLD_TS - timedelta(minutes=30), last_offload_max_sequence=row_sequence)
    result = plan(behind, cold=cold)
    assert result["sequence"] == planned
    assert result["action"] == ("move_forward" if row_sequence is not None else "repair_nulls")


@pytest.mark.parametrize("action", ["repair_nulls", "move_back", "move_forward"])
def test_state_layout_moves_the_one_row(action):
    result = {"table": T, "action": action, "timestamp": COLD_TS.isoformat(), "sequence": 42, "mark_failed": False}
    assert repair.repair_statements("state", result) == [
        (repair.STATE_MOVE_SQL, {"table": T, "timestamp": "2026-11-26T11:00:00+00:00", "sequence": 42})]


def test_statements_of_a_stuck_row_moved_forward():
    result = plan(state_row(status="running", last_offload_timestamp=COLD_TS - timedelta(minutes=30)))
    assert repair.repair_statements("state", result) == [
        (repair.STATE_MARK_FAILED_SQL, {"table": T, "message": "marked failed by offload remediation: status "
                                                               "'running' with no offload in flight"}),
        (repair.STATE_MOVE_SQL, {"table": T, "timestamp": "2026-11-26T11:00:00+00:00", "sequence": 42})]


def test_create_statements():
    assert repair.repair_statements("state", plan(None)) == [
        (repair.STATE_INSERT_SQL, {"table": T, "timestamp": "2026-11-26T11:00:00+00:00", "sequence": 42,
                                   "status": "success"})]
    assert repair.repair_statements("history", plan(None)) == [
        (repair.HISTORY_INSERT_SQL, {"table": T, "timestamp": "2026-11-26T11:00:00+00:00", "sequence": 42})]


@pytest.mark.parametrize("cold, why", [
    (None, "no answer for this table"),
    ({"exists": True, "error": "cannot read /warehouse/x/metadata/v3.metadata.json: Permission denied",
      "max_timestamp": None}, "cannot read /warehouse/x/metadata/v3.metadata.json: Permission denied"),
    ({"exists": True, "error": None, "total_records": 500, "max_timestamp": None}, "no answer for this table"),
])
@pytest.mark.parametrize("row", [None, state_row(), state_row(last_offload_timestamp=None)])
def test_an_unreadable_cold_tier_is_refused_never_taken_for_an_empty_table(cold, why, row):
    """Taken for empty, the watermark went to 1970 and the whole hot tier was offloaded again (duplicates)."""
    assert plan(row, cold=cold) == expected(
        "refused", f"the cold tier of {T} could not be read ({why}); its maximum is the repair's truth, and an "
                   "unreadable table is not an empty one")


def test_a_readable_table_with_rows_and_a_maximum_is_repaired_from_it_not_refused():
    readable = {**COLD, "total_records": 500, "error": None}
    assert plan(state_row(last_offload_timestamp=COLD_TS - timedelta(minutes=30)), cold=readable)["action"] == \
        "move_forward"
