"""Pure logic of offload_prefect: K2's log lines, run states, heartbeats, schedules, input checks."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import offload_prefect_logic as logic
import pytest

NOW = datetime(2026, 11, 26, 8, 0, 0, tzinfo=timezone.utc)
T = "bronze_trades_kraken"


def run(state: str | None, message: str | None = None, **extra) -> dict:
    return {"id": f"id-{state}", "name": "a-run", "state_type": state,
            "state": {"type": state, "name": (state or "").title(), "message": message}, **extra}


# ---------------------------------------------------------------- log lines: failed tables

@pytest.mark.parametrize("lines, expected", [
    (["✗ Offload failed: bronze_trades_kraken"], [T]),
    (["✗ Offload timeout: bronze_trades_kraken (exceeded 10 minutes)"], [T]),
    # K2 logs one failure per task attempt (retries=2 -> 3 attempts): one table, once.
    (["✗ Offload failed: bronze_trades_kraken"] * 3, [T]),
    (["✗ Offload failed: silver_trades", "✗ Offload timeout: ohlcv_1m (exceeded 10 minutes)",
      "✗ Offload failed: silver_trades"], ["silver_trades", "ohlcv_1m"]),
    # Prefixes from a log formatter, extra spaces.
    (["12:00:01.123 | ERROR | Task run 'offload-table-0' - ✗ Offload failed:   ohlcv_1h"], ["ohlcv_1h"]),
    # Trailing punctuation is not part of the name; a dotted Iceberg name is accepted.
    (["✗ Offload failed: ohlcv_5m."], ["ohlcv_5m"]),
    (["✗ Offload failed: cold.gold_ohlcv_1d"], ["cold.gold_ohlcv_1d"]),
    # Not failures.
    (["✓ Offload completed: bronze_trades_kraken", "Offload failed for bronze_trades_kraken: boom",
      "Offload failed: bronze_trades_kraken"], []),
    # Hostile / garbled: shell or SQL in the name, unicode look-alikes, empty, missing name, non-strings.
    (["✗ Offload failed: ;rm -rf /", "✗ Offload failed: x'; DROP TABLE t;--", "✗ Offload failed: ",
      "✗ Offload failed:", "✗ Offload timeout: $(reboot)", "✗ Offload failed: brønze_trädes",
      "✗ Offload failed: 1table", "✗ Offload failed: " + "a" * 300, None, 42, b"\xe2\x9c\x97 Offload failed: x"], []),
    (["✗ Offload failed: 表"], []),
    (["✗ Offload failed: t1\n", "✗ Offload timeout: t2\n(exceeded 1 minutes)"], ["t1", "t2"]),
    ([], []),
])
def test_failed_tables(lines, expected):
    assert logic.failed_tables(lines) == expected


def test_offload_errors_attach_exit_code_and_stderr_to_the_failure_they_follow():
    stderr = ("  Stderr: 26/11/26 WARN NativeCodeLoader: Unable to load native-hadoop library\n"
              "2026-11-26 07:47:02,016 - offload_generic - ERROR - Failed to write to Iceberg: readonly database\n"
              "2026-11-26 07:47:02,100 - offload_generic - INFO - Stopping Spark\n")
    errors = logic.parse_offload_errors([
        "Beginning subflow run 'x' for flow 'offload-bronze-layer'",
        "✗ Offload failed: bronze_trades_binance", "  Exit code: 1", stderr,
        "✗ Offload timeout: bronze_trades_kraken (exceeded 10 minutes)",
        "  Exit code: 7",  # after a timeout line: not attached to anything
    ])
    assert [(e["table"], e["kind"], e["exit_code"]) for e in errors] == [
        ("bronze_trades_binance", "failed", 1), ("bronze_trades_kraken", "timeout", None)]
    assert errors[0]["error_line"].endswith("ERROR - Failed to write to Iceberg: readonly database")
    assert errors[0]["stderr"].endswith("Stopping Spark")
    assert errors[1]["stderr"] is None and errors[1]["error_line"] is None


@pytest.mark.parametrize("stderr, expected", [
    ("Error response from daemon: Container abc is not running\n",
     "Error response from daemon: Container abc is not running"),
    ("a\n2026 - offload_generic - ERROR - Failed to read from ClickHouse: Connection refused\nERROR later? no\n",
     "2026 - offload_generic - ERROR - Failed to read from ClickHouse: Connection refused"),
    ("line one\nTraceback\nValueError: Watermark not found for table: x\n",
     "ValueError: Watermark not found for table: x"),
    ("just progress\n\n   \n", "just progress"),
    ("", None),
    (None, None),
])
def test_error_line(stderr, expected):
    assert logic.error_line(stderr) == expected


def test_killed_job_says_so_when_its_stderr_names_no_error():
    errors = logic.parse_offload_errors(["✗ Offload failed: bronze_trades_binance", "  Exit code: 137",
                                         "  Stderr: ✓ Incremental window: a to b\n[Stage 0:> (0 + 1) / 1]"])
    assert errors[0]["exit_code"] == 137
    assert errors[0]["error_line"].startswith("killed (exit 137")
    assert "Stage 0" in errors[0]["error_line"]


def test_long_stderr_keeps_its_tail_and_a_bounded_size():
    noise = "x" * 5000
    errors = logic.parse_offload_errors(["✗ Offload failed: t1", f"  Stderr: {noise}\nFATAL the real reason"])
    assert len(errors[0]["stderr"]) <= logic.MAX_STDERR_CHARS
    assert errors[0]["stderr"].endswith("FATAL the real reason")
    assert errors[0]["error_line"] == "FATAL the real reason"


def test_garbled_failure_line_does_not_swallow_the_next_exit_code():
    errors = logic.parse_offload_errors(["✗ Offload failed: t1", "✗ Offload failed: ;;", "  Exit code: 2"])
    assert errors == [{"table": "t1", "kind": "failed", "exit_code": None, "stderr": None, "error_line": None}]


@pytest.mark.parametrize("message, expected", [
    ("Flow run encountered an exception: RuntimeError: Offload failed for bronze_trades_binance: Error x",
     ["bronze_trades_binance"]),
    ("RuntimeError: Offload failed for a: x; Offload failed for b: y; Offload failed for a: z", ["a", "b"]),
    ("Offload failed for ;rm: x", []),
    ("All states completed.", []),
    (None, []),
    (12, []),
])
def test_tables_from_state_message(message, expected):
    assert logic.tables_from_state_message(message) == expected


# ---------------------------------------------------------------- relevant log lines

@pytest.mark.parametrize("log, relevant", [
    ({"level": 40, "message": "anything"}, True),
    ({"level": 30, "message": "a warning"}, True),
    ({"level": 20, "message": "✓ Offload completed: t"}, True),
    ({"level": 20, "message": "Task run failed with exception: RuntimeError('x')"}, True),
    ({"level": 20, "message": "✗ something"}, True),
    ({"level": 20, "message": "the job TIMEOUT hit"}, True),
    ({"level": 20, "message": "Beginning flow run 'x'"}, False),
    ({"level": 10, "message": None}, False),
    ({"level": "40", "message": "string level, no keyword"}, False),
    ({"message": "no level"}, False),
])
def test_is_relevant(log, relevant):
    assert logic.is_relevant(log) is relevant


def test_relevant_log_lines_keep_the_last_ones_clipped():
    logs = [{"level": 40, "message": f"Error {i}", "timestamp": f"t{i}", "name": "prefect.task_runs"}
            for i in range(80)]
    logs.insert(3, {"level": 20, "message": "Beginning flow run"})
    logs.append({"level": 55, "message": "HEAD " + "E" * 5000 + " TAIL"})
    logs.append({"level": 40, "message": None})
    logs.append("not a dict")
    rows = logic.relevant_log_lines(logs, max_lines=50)
    assert len(rows) == 50 and all(isinstance(r, str) for r in rows)
    assert rows[0] == "Error 32" and rows[-3] == "Error 79" and rows[-1] == ""
    assert len(rows[-2]) <= logic.MAX_MESSAGE_CHARS
    assert rows[-2].startswith("HEAD ") and rows[-2].endswith(" TAIL") and " … " in rows[-2]
    assert logic.relevant_log_lines(logs, max_lines=0) == []


def test_relevant_log_lines_feed_the_triage_rules():
    """The lines are plain strings that offload_rules classifies (the contract with offload_diagnosis)."""
    import offload_rules
    logs = [{"level": 40, "message": "✗ Offload failed: bronze_trades_binance"},
            {"level": 40, "message": "  Exit code: 1"},
            {"level": 40, "message": "  Stderr: x - ERROR - Failed to read from ClickHouse: Connection refused"}]
    lines = logic.relevant_log_lines(logs)
    assert set(offload_rules.classify_lines(lines)) == {"connection", "process"}
    assert offload_rules.tables_in_lines(lines) == {"bronze_trades_binance"}


def test_run_failure_details_falls_back_on_the_state_message():
    details = logic.run_failure_details({"message": "RuntimeError: Offload failed for ohlcv_1m: boom"},
                                        [{"level": 40, "message": "Engine execution exited"}])
    assert details["failed_tables"] == ["ohlcv_1m"] and details["offload_errors"] == []
    details = logic.run_failure_details({"message": "RuntimeError: Offload failed for ohlcv_1m: boom"},
                                        [{"level": 40, "message": "✗ Offload timeout: ohlcv_5m (exceeded 10 minutes)"}])
    assert details["failed_tables"] == ["ohlcv_5m"]


# ---------------------------------------------------------------- states and streaks

@pytest.mark.parametrize("states, expected", [
    ([], 0),
    (["COMPLETED", "FAILED", "FAILED"], 0),
    (["FAILED", "FAILED", "FAILED", "COMPLETED", "FAILED"], 3),
    (["CRASHED", "FAILED", "CRASHED"], 3),
    # In-flight runs at the head are skipped (a run is going while the last ones failed).
    (["RUNNING", "PENDING", "SCHEDULED", "FAILED", "FAILED", "COMPLETED"], 2),
    # ... but an in-flight run inside the streak ends it (overlapping runs: order unclear).
    (["FAILED", "RUNNING", "FAILED"], 1),
    (["CANCELLED", "FAILED", "FAILED"], 0),
    (["FAILED", "CANCELLED", "FAILED"], 1),
    (["PAUSED", "CANCELLING", "CRASHED"], 1),
    ([None, "FAILED"], 0),
])
def test_consecutive_failures(states, expected):
    assert logic.consecutive_failures([run(s) for s in states]) == expected


def test_state_type_read_from_the_nested_state_when_the_flat_field_is_missing():
    runs = [{"state": {"type": "FAILED"}}, {"state_type": "FAILED", "state": None}, {}]
    assert [logic.state_type(r) for r in runs] == ["FAILED", "FAILED", None]
    assert logic.consecutive_failures(runs) == 2


def test_count_states_lists_every_type():
    counts = logic.count_states([run("FAILED"), run("FAILED"), run("COMPLETED"), run(None), {"state_type": "WEIRD"}])
    assert counts["FAILED"] == 2 and counts["COMPLETED"] == 1 and counts["RUNNING"] == 0
    assert counts["UNKNOWN"] == 1 and counts["WEIRD"] == 1
    assert set(logic.STATE_TYPES) <= set(logic.count_states([]))


def test_summarize_run():
    raw = {"id": "r1", "name": "inventive-mantis", "state_type": "FAILED", "state_name": "Failed",
           "start_time": "2026-11-26T07:42:31Z", "end_time": None, "expected_start_time": "2026-11-26T07:42:27Z",
           "parameters": {"tables": [T]}, "state": {"type": "FAILED", "name": "Failed", "message": "boom"}}
    assert logic.summarize_run(raw) == {
        "id": "r1", "name": "inventive-mantis", "state_type": "FAILED", "state_name": "Failed",
        "expected_start_time": "2026-11-26T07:42:27Z", "start_time": "2026-11-26T07:42:31Z", "end_time": None,
        "message": "boom", "parameters": {"tables": [T]}}
    assert logic.summarize_run({"state": None})["parameters"] == {}


# ---------------------------------------------------------------- timestamps and heartbeats



@pytest.mark.parametrize("status, age, online", [
    ("ONLINE", 10, True),
    ("ONLINE", 89.9, True),
    ("ONLINE", 90, False),        # stale although Prefect still says ONLINE
    ("ONLINE", 3600, False),
    ("OFFLINE", 5, False),
    (None, 5, False),
    ("ONLINE", -0.7, True),       # a heartbeat slightly "in the future" (Date header resolution, skew): age 0
])
def test_worker_online(status, age, online):
    worker = {"name": "w", "status": status,
              "last_heartbeat_time": (NOW - timedelta(seconds=age)).isoformat().replace("+00:00", "Z")}
    row = logic.worker_summary(worker, NOW, 90)
    assert row["online"] is online
    assert row["heartbeat_age_seconds"] == pytest.approx(max(age, 0))


def test_worker_without_heartbeat_is_offline_and_sorted_last():
    workers = [{"name": "never", "status": "ONLINE", "last_heartbeat_time": None},
               {"name": "old", "status": "OFFLINE", "last_heartbeat_time": "2026-11-26T07:00:00Z"},
               {"name": "fresh", "status": "ONLINE", "last_heartbeat_time": "2026-11-26T07:59:50Z"},
               "garbage"]
    rows = logic.summarize_workers(workers, NOW, 90)
    assert [r["name"] for r in rows] == ["fresh", "old", "never"]
    assert [r["online"] for r in rows] == [True, False, False]
    assert rows[1]["heartbeat_age_seconds"] == 3600
    assert logic.summarize_workers(None, NOW, 90) == []


def test_age_seconds_accepts_naive_now():
    assert logic.age_seconds("2026-11-26T07:59:00Z", NOW.replace(tzinfo=None)) == 60


# ---------------------------------------------------------------- schedules (payload shapes)

CRON = {"cron": "*/15 * * * *", "timezone": "UTC", "day_or": True}


@pytest.mark.parametrize("deployment, paused", [
    # Prefect 3: deployment-level pause (what `paused=True` on deploy sets; the lab's state).
    ({"paused": True, "schedules": [{"active": True, "schedule": CRON}]}, True),
    # Prefect 3: `prefect deployment schedule pause` deactivates the schedules, `paused` stays false.
    ({"paused": False, "schedules": [{"active": False, "schedule": CRON}]}, True),
    ({"paused": False, "schedules": [{"active": False, "schedule": CRON}, {"active": True, "schedule": CRON}]}, False),
    ({"paused": False, "schedules": [{"active": True, "schedule": CRON}]}, False),
    # A schedule without `active` counts as active.
    ({"schedules": [{"schedule": CRON}]}, False),
    # No schedule at all is not "paused" (nothing to pause; schedules == []).
    ({"paused": False, "schedules": []}, False),
    ({}, False),
    # Prefect 2 (< 2.18): one schedule + is_schedule_active.
    ({"schedule": CRON, "is_schedule_active": False}, True),
    ({"schedule": CRON, "is_schedule_active": True}, False),
    ({"schedule": None, "is_schedule_active": False}, True),
    # Garbage inside the list is ignored.
    ({"paused": False, "schedules": ["x", None, {"active": False, "schedule": "not a dict"}]}, True),
])
def test_schedule_paused(deployment, paused):
    assert logic.schedule_paused(deployment) is paused


def test_schedules_summary_shapes():
    assert logic.schedules_summary({"schedules": [{"active": False, "schedule": CRON}]}) == [
        {"cron": "*/15 * * * *", "interval": None, "rrule": None, "timezone": "UTC", "active": False}]
    assert logic.schedules_summary({"schedule": {"interval": 900.0}, "is_schedule_active": True}) == [
        {"cron": None, "interval": 900.0, "rrule": None, "timezone": None, "active": True}]
    assert logic.schedules_summary({}) == []


def test_deployment_and_work_pool_summaries():
    assert logic.deployment_summary(None)["exists"] is False
    dep = logic.deployment_summary({"id": "d", "name": "iceberg-offload-15min", "paused": True, "schedules": [],
                                    "work_pool_name": "iceberg-offload", "status": "READY"})
    assert dep["exists"] and dep["paused"] and dep["id"] == "d" and dep["work_pool_name"] == "iceberg-offload"
    assert logic.work_pool_summary(None) == {"exists": False, "name": None, "type": None, "paused": None,
                                             "status": None, "concurrency_limit": None}
    assert logic.work_pool_summary({"name": "p", "is_paused": False, "status": "READY"})["paused"] is False
    assert logic.work_pool_summary({"name": "p", "is_paused": True, "status": "PAUSED"})["paused"] is True
    assert logic.work_pool_summary({"name": "p", "status": "PAUSED"})["paused"] is True


# ---------------------------------------------------------------- input checks

@pytest.mark.parametrize("name, expected", [
    ("iceberg-offload-main/iceberg-offload-15min", ("iceberg-offload-main", "iceberg-offload-15min")),
    ("my flow/my deployment", ("my flow", "my deployment")),
    ("flöw/dëployment", ("flöw", "dëployment")),
])
def test_parse_deployment_name_ok(name, expected):
    assert logic.parse_deployment_name(name) == expected


@pytest.mark.parametrize("name", ["iceberg-offload-15min", "a/b/c", "/b", "a/", "/", "", " a/b", "a/b ", "  /b",
                                  "a/  ", None, 3, "a\n/b", "a/b\n"])
def test_parse_deployment_name_rejects(name):
    with pytest.raises(ValueError) as exc:
        logic.parse_deployment_name(name)
    assert "flow/deployment" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("url, ok", [
    ("http://127.0.0.1:4200/api", True),
    ("https://prefect.example/api/", True),
    ("http://[::1]:4200/api", True),
    ("127.0.0.1:4200/api", False),
    ("ftp://127.0.0.1/api", False),
    ("http:///api", False),
    ("http://127.0.0.1:99999/api", False),
    ("http://127.0.0.1:abc/api", False),
    ("http://127.0.0.1:0/api", False),
    ("http://[::1/api", False),
    ("http://127.0.0.1:4200/api?x=1", False),
    ("http://127.0.0.1:4200/a pi", False),
    ("", False),
    (None, False),
])
def test_api_url_problem(url, ok):
    assert (logic.api_url_problem(url) is None) is ok


def test_runs_in_flight_since_before_the_workers_restart_are_zombies():
    runs = [{"id": "old", "state": {"type": "RUNNING"}, "start_time": "2026-11-26T07:40:00Z"},
            {"id": "new", "state": {"type": "RUNNING"}, "start_time": "2026-11-26T07:50:00Z"},
            {"id": "done", "state": {"type": "COMPLETED"}, "start_time": "2026-11-26T07:30:00Z"},
            {"id": "queued", "state": {"type": "PENDING"}, "start_time": None, "expected_start_time": "2026-11-26T07:41:00Z"}]
    assert [r["id"] for r in logic.runs_older_than(runs, "2026-11-26T07:45:00.123456789Z")] == ["old", "queued"]
    assert logic.runs_older_than(runs, "not a time") == [] and logic.runs_older_than(runs, None) == []


@pytest.mark.parametrize("seconds,lost", [(None, False), (0, False), (10, False), (10.5, True)])
def test_a_worker_is_lost_only_once_the_pool_stays_without_one_past_the_grace(seconds, lost):
    assert logic.worker_lost(seconds, 10) is lost


def test_a_scheduled_run_is_in_flight_when_due_or_waiting_to_retry_not_when_scheduled_for_later():
    now = datetime(2026, 12, 7, 20, 0, tzinfo=timezone.utc)

    def scheduled(run_id, offset_seconds, name="Scheduled", kind="SCHEDULED"):
        start = (now + timedelta(seconds=offset_seconds)).isoformat().replace("+00:00", "Z")
        return {"id": run_id, "state_type": kind, "state_name": name, "expected_start_time": start}

    runs = [scheduled("just-created", 0), scheduled("late", -3600, "Late"), scheduled("date-header-slack", 5),
            scheduled("next-quarter-hour", 6), scheduled("retry", 300, "AwaitingRetry"),
            scheduled("running", -10, "Running", "RUNNING"), {"id": "no-start", "state_type": "SCHEDULED"}, "junk"]
    assert [r["id"] for r in logic.due_to_start(runs, now)] == [
        "just-created", "late", "date-header-slack", "retry", "no-start"]
    assert logic.due_to_start(None, now) == []
