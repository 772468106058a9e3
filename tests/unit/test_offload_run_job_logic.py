"""Pure logic of offload_run_job: the job's argv, the rows it offloaded, and whether it really succeeded."""
from __future__ import annotations

import offload_run_job_logic as logic
import pytest

PYTHON, SCRIPT = "python3", "/home/iceberg/offload/offload_generic.py"
BRONZE_COLUMNS = ("exchange_timestamp,sequence_number,symbol,price,quantity,quote_volume,"
                  "event_time,kafka_offset,kafka_partition,ingestion_timestamp")
BINANCE = {"source": "bronze_trades_binance", "target": "cold.bronze_trades_binance", "layer": "bronze",
           "timestamp_col": "exchange_timestamp", "sequence_col": "sequence_number", "columns": BRONZE_COLUMNS}
GOLD = {"source": "ohlcv_1m", "target": "cold.gold_ohlcv_1m", "layer": "gold", "timestamp_col": "window_start",
        "sequence_col": "trade_count"}

SUCCESS = ["Offload job completed successfully", "Offload completed successfully"]
FAILURE = ["Failed to update watermark"]


def log(level, message):
    return f"2026-11-26 07:31:02,123 - offload_generic - {level} - {message}"


OK_RUN = [
    log("INFO", "✓ Incremental window: 2026-11-26 07:00:00 to 2026-11-26 07:25:00"),
    log("INFO", "✓ Successfully wrote 69260 rows to Iceberg"),
    log("INFO", "✓ Watermark updated successfully"),
    log("INFO", "=" * 60),
    log("INFO", "Offload job completed successfully"),
    log("INFO", "Rows offloaded: 69,260"),
    log("INFO", "Duration: 41s"),
    log("INFO", "Table: bronze_trades_binance → cold.bronze_trades_binance"),
]
# K2's job exits 0 after a failed watermark update: the next run re-reads (and duplicates) the same rows.
WATERMARK_FAILED = [
    log("INFO", "✓ Successfully wrote 69260 rows to Iceberg"),
    log("ERROR", "Failed to update watermark: lab fault: connection to watermark database lost"),
    log("WARNING", "Data written to Iceberg but watermark update failed. Next run will re-read same data "
                   "(Iceberg will deduplicate)."),
    log("INFO", "Offload job completed successfully"),
    log("INFO", "Rows offloaded: 69,260"),
]


# ---------------------------------------------------------------- job_argv

def test_job_argv_of_a_bronze_table():
    assert logic.job_argv(PYTHON, SCRIPT, BINANCE) == [
        "python3", "/home/iceberg/offload/offload_generic.py",
        "--source-table", "bronze_trades_binance", "--target-table", "cold.bronze_trades_binance",
        "--timestamp-col", "exchange_timestamp", "--sequence-col", "sequence_number",
        "--layer", "bronze", "--columns", BRONZE_COLUMNS]


@pytest.mark.parametrize("columns", ["*", "", None, "absent"])
def test_job_argv_always_passes_columns(columns):
    table = dict(GOLD)
    if columns != "absent":
        table["columns"] = columns
    argv = logic.job_argv(PYTHON, SCRIPT, table)
    assert argv[-2:] == ["--columns", "*"]
    assert argv.count("--columns") == 1


def test_job_argv_keeps_each_value_one_argument():
    # No shell: a column list with spaces stays one argv element.
    argv = logic.job_argv("/opt/venv/bin/python", SCRIPT, {**BINANCE, "columns": "a, b"})
    assert argv[0] == "/opt/venv/bin/python" and argv[-1] == "a, b" and len(argv) == 14


def test_job_argv_requires_the_cursor_fields():
    with pytest.raises(KeyError):
        logic.job_argv(PYTHON, SCRIPT, {k: v for k, v in BINANCE.items() if k != "sequence_col"})


# ---------------------------------------------------------------- rows_offloaded

@pytest.mark.parametrize("lines, rows", [
    (OK_RUN, 69260),
    (["Rows offloaded: 69,260"], 69260),
    (["Rows offloaded: 0"], 0),
    (["Rows offloaded:1234567"], 1234567),
    ([log("INFO", "Rows offloaded: 1,234,567")], 1234567),
    (["Rows offloaded: 10", "Rows offloaded: 20"], 20),  # the last one counts
    (["Rows offloaded: 5", "something after"], 5),
])
def test_rows_offloaded(lines, rows):
    assert logic.rows_offloaded(lines) == rows


@pytest.mark.parametrize("lines", [
    [],
    [log("INFO", "No new data to offload (empty time window). Exiting cleanly.")],
    ["Rows offloaded: n/a"],
    ["rows offloaded: 12"],  # case-sensitive, as K2 prints it
    [log("INFO", "✓ Successfully wrote 69260 rows to Iceberg")],
])
def test_rows_offloaded_none(lines):
    assert logic.rows_offloaded(lines) is None


# ---------------------------------------------------------------- judge

def test_success_with_the_first_pattern():
    assert logic.judge(0, OK_RUN, SUCCESS, FAILURE) == (
        True, f"exit code 0 and '{log('INFO', 'Offload job completed successfully')}'")


def test_success_with_the_second_pattern():
    lines = ["  Offload completed successfully  ", "Rows offloaded: 3"]
    assert logic.judge(0, lines, SUCCESS, FAILURE) == (True, "exit code 0 and 'Offload completed successfully'")


def test_exit_0_after_failed_watermark_update_is_a_failure():
    ok, reason = logic.judge(0, WATERMARK_FAILED, SUCCESS, FAILURE)
    assert ok is False
    assert reason == ("exit code 0 but the job logged a failure: "
                      + log("ERROR", "Failed to update watermark: lab fault: connection to watermark database lost"))


def test_exit_0_without_success_line_is_a_failure():
    lines = [log("INFO", "✓ Incremental window: 2026-11-26 07:00:00 to 2026-11-26 07:25:00")]
    assert logic.judge(0, lines, SUCCESS, FAILURE) == (
        False, "exit code 0 but none of the success lines ['Offload job completed successfully', "
               "'Offload completed successfully'] was printed")


def test_exit_0_without_any_output_is_a_failure():
    assert logic.judge(0, [], SUCCESS, FAILURE)[0] is False


@pytest.mark.parametrize("rc", [1, 2, 137, -9])
def test_nonzero_exit_is_a_failure_with_the_last_line(rc):
    lines = [log("INFO", "Reading from ClickHouse"),
             log("ERROR", "Failed to read from ClickHouse: Code: 241. DB::Exception: Memory limit exceeded"),
             "", "   "]
    assert logic.judge(rc, lines, SUCCESS, FAILURE) == (
        False, f"exit code {rc}: " + log("ERROR", "Failed to read from ClickHouse: Code: 241. DB::Exception: "
                                                  "Memory limit exceeded"))


def test_nonzero_exit_without_output():
    assert logic.judge(137, [], SUCCESS, FAILURE) == (False, "exit code 137: no output")
    assert logic.judge(1, ["", "  "], SUCCESS, FAILURE) == (False, "exit code 1: no output")


def test_nonzero_exit_wins_over_success_and_failure_lines():
    ok, reason = logic.judge(1, WATERMARK_FAILED + OK_RUN, SUCCESS, FAILURE)
    assert ok is False and reason.startswith("exit code 1: ") and reason.endswith("Table: bronze_trades_binance → "
                                                                                 "cold.bronze_trades_binance")


def test_timeout_wins_over_everything():
    assert logic.judge(0, OK_RUN, SUCCESS, FAILURE, timed_out_after=600) == (
        False, "timed out after 600 s; the job was stopped inside the container")
    assert logic.judge(None, [], SUCCESS, FAILURE, timed_out_after=45)[1].startswith("timed out after 45 s")


def test_empty_patterns_match_nothing():
    assert logic.judge(0, OK_RUN, SUCCESS, [""])[0] is True  # "" would otherwise match every line
    assert logic.judge(0, ["anything"], ["", "Offload job completed successfully"], FAILURE)[0] is False
    assert logic.judge(0, OK_RUN, SUCCESS, [])[0] is True


def test_custom_patterns():
    assert logic.judge(0, ["DONE 42"], ["DONE"], ["ABORT"]) == (True, "exit code 0 and 'DONE 42'")
    assert logic.judge(0, ["DONE 42", "ABORT: disk full"], ["DONE"], ["ABORT"]) == (
        False, "exit code 0 but the job logged a failure: ABORT: disk full")


def test_reasons_are_truncated():
    long_error = "E" * 1000
    assert logic.judge(1, [long_error], SUCCESS, FAILURE) == (False, "exit code 1: " + "E" * 300)
    ok, reason = logic.judge(0, ["Failed to update watermark: " + long_error], SUCCESS, FAILURE)
    assert ok is False and len(reason) == len("exit code 0 but the job logged a failure: ") + 300
    ok, reason = logic.judge(0, ["Offload job completed successfully " + long_error], SUCCESS, FAILURE)
    line = "Offload job completed successfully " + long_error
    assert ok is True and reason == f"exit code 0 and '{line[:200]}'"


def test_nothing_new_to_offload_is_a_success_only_when_asked_for():
    lines = ["INFO - No new data to offload (empty time window). Exiting cleanly."]
    assert logic.judge(0, lines, SUCCESS, FAILURE)[0] is False
    assert logic.judge(0, lines, SUCCESS, FAILURE, ["No new data to offload"]) == (
        True, "exit code 0, nothing new to offload: 'INFO - No new data to offload (empty time window). Exiting cleanly.'")
    assert logic.judge(1, lines, SUCCESS, FAILURE, ["No new data to offload"])[0] is False


def test_an_empty_nothing_to_do_pattern_matches_nothing():
    # Without a success line, "" among the nothing-to-do patterns must not turn any line into "nothing new".
    lines = ["INFO - Reading from ClickHouse"]
    assert logic.judge(0, lines, SUCCESS, FAILURE, ["", "No new data to offload"]) == (
        False, "exit code 0 but none of the success lines ['Offload job completed successfully', "
               "'Offload completed successfully'] was printed")


def test_the_nothing_to_do_reason_is_truncated():
    line = "No new data to offload " + "x" * 300
    assert logic.judge(0, [line], SUCCESS, FAILURE, ["No new data to offload"]) == (
        True, "exit code 0, nothing new to offload: 'No new data to offload " + "x" * 177 + "'")
