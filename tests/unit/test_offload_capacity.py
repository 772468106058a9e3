"""The capacity rules (module_utils/offload_capacity.py), each alone at its threshold's edges: "sustained" volume,
Spark memory, the least-squares duration trend against the task timeout; the parsing of K2's task logs into
durations; the report and its summary."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import offload_capacity as C
import pytest

NOW = datetime(2026, 11, 29, 18, 0, tzinfo=timezone.utc)
T0_MS = C.to_ms(NOW)
T = "bronze_trades_binance"
LIMITS = C.Thresholds(normal_rows_per_hour=1000, sustained_hours=3, memory_fraction=0.8, task_timeout_seconds=600,
                      timeout_fraction=0.8, trend_horizon_hours=7 * 24, trend_min_points=6)


def series(values):
    """An hourly series, oldest first, ending now."""
    n = len(values)
    return [{"start": C.iso_ms(T0_MS - (n - i) * C.HOUR_MS), "rows": v} for i, v in enumerate(values)]


# --- rows per hour ------------------------------------------------------------------------------------------

def test_hourly_rows_sql_binds_the_window_and_quotes_the_names():
    sql = C.hourly_rows_sql("k2", T, "exchange_timestamp")
    assert "{t0_ms:Int64}" in sql and "{since_ms:Int64}" in sql  # values bound server-side, never formatted in
    assert "FROM `k2`.`bronze_trades_binance`" in sql and "GROUP BY hours_ago" in sql
    assert "`exchange_timestamp` > fromUnixTimestamp64Milli({since_ms:Int64}, 'UTC')" in sql
    with pytest.raises(ValueError):
        C.hourly_rows_sql("k2", "t; DROP TABLE x", "ts")


def test_hourly_series_is_zero_filled_oldest_first_and_ignores_buckets_outside_the_window():
    rows = [{"hours_ago": 0, "rows": 70}, {"hours_ago": 2, "rows": 50}, {"hours_ago": 5, "rows": 9},
            {"hours_ago": -1, "rows": 7}]
    out = C.hourly_series(rows, T0_MS, 4)
    assert [p["rows"] for p in out] == [0, 50, 0, 70]
    assert out[-1]["start"] == (NOW - timedelta(hours=1)).isoformat()  # bucket 0 = the last 60 minutes
    assert out[0]["start"] == (NOW - timedelta(hours=4)).isoformat()


@pytest.mark.parametrize("values,expected", [
    ([], (0, None)),
    ([5, 5, 5], (0, None)),                     # equal to the threshold is not above it
    ([6, 6, 5, 6], (2, 0)),
    ([6, 5, 6, 6, 5, 6, 6], (2, 5)),            # the most recent of equally long runs
    ([5, 6, 6, 6], (3, 1)),
])
def test_longest_run_above(values, expected):
    assert C.longest_run_above(values, 5) == expected


def rec(values, limits=LIMITS):
    return C.volume_recommendation(T, C.volume_summary(series(values), limits))


def test_sustained_exactly_the_required_consecutive_hours_recommends_parallel_offload():
    r = rec([10, 1001, 1500, 2000, 10])
    assert r["rule"] == C.RULE_PARALLEL and r["subject"] == T
    e = r["evidence"]
    assert e["longest_run_hours"] == 3 and e["longest_run_min"] == 1001 and e["longest_run_mean"] == 1500.3
    assert e["threshold"] == 1000 and e["sustained_hours"] == 3 and e["max"] == 2000 and e["hours_above"] == 3
    assert e["longest_run_start"] == (NOW - timedelta(hours=4)).isoformat()
    assert e["longest_run_end"] == (NOW - timedelta(hours=1)).isoformat()
    assert "above 1,000 rows/hour for 3 consecutive hours" in r["reason"] and "min 1,001" in r["reason"]


def test_one_hour_short_of_sustained_is_no_recommendation():
    assert rec([10, 1001, 1500, 10]) is None


def test_an_hour_exactly_at_the_threshold_breaks_the_run():
    assert rec([1001, 1000, 1500, 2000]) is None
    assert rec([1001, 1001, 1500, 2000]) is not None


def test_many_hours_above_but_never_consecutive_is_not_sustained():
    volume = C.volume_summary(series([5000, 0] * 12), LIMITS)
    assert volume["hours_above"] == 12 and volume["longest_run_hours"] == 1 and not volume["sustained"]
    assert C.volume_recommendation(T, volume) is None


def test_a_one_hour_spike_is_sustained_only_when_one_hour_is_asked_for():
    values = [72] * 10 + [720_000]
    assert rec(values, C.Thresholds(normal_rows_per_hour=300_000)) is None  # default: 3 hours
    assert rec(values, C.Thresholds(normal_rows_per_hour=300_000, sustained_hours=1))["evidence"]["longest_run_min"] \
        == 720_000


def test_an_old_sustained_period_still_counts_and_says_when():
    r = rec([2000, 2000, 2000, 0, 0, 0, 0, 0])
    assert r is not None and r["evidence"]["longest_run_start"] == (NOW - timedelta(hours=8)).isoformat()
    assert r["evidence"]["last_hour"] == 0


# --- memory -------------------------------------------------------------------------------------------------

def state(fraction, usage=None, limit=1000, status="running"):
    return {"name": "k2-spark-iceberg", "exists": True, "status": status, "memory_usage": usage,
            "memory_limit": limit, "memory_fraction": fraction}


@pytest.mark.parametrize("fraction,recommended", [(0.8, False), (0.8001, True), (0.79, False), (0.95, True)])
def test_spark_memory_strictly_above_the_threshold(fraction, recommended):
    memory = C.memory_summary("k2-spark-iceberg", state(fraction, usage=int(fraction * 1000)))
    r = C.memory_recommendation(memory, 0.8)
    assert (r is not None) is recommended
    if r:
        assert r["rule"] == C.RULE_SPARK and r["evidence"]["fraction"] == fraction and f"{fraction:.1%}" in r["reason"]


@pytest.mark.parametrize("the_state,error,reason", [
    (None, "Docker engine not answering: timeout", "not read: Docker engine not answering: timeout"),
    ({"name": "x", "exists": False, "status": "absent"}, None, "the container does not exist"),
    (state(None, status="exited"), None, "the container is exited: no memory to read"),
    (state(None, usage=5, limit=None), None, "no memory limit set: no fraction to compare"),
])
def test_memory_that_cannot_be_judged_says_why_and_recommends_nothing(the_state, error, reason):
    memory = C.memory_summary("k2-spark-iceberg", the_state, error)
    assert memory["fraction"] is None and memory["reason"] == reason
    assert C.memory_recommendation(memory, 0.8) is None


# --- durations from K2's task logs --------------------------------------------------------------------------

def log(run, seconds_after, message, level=20):
    return {"task_run_id": run, "timestamp": (NOW - timedelta(hours=1) + timedelta(seconds=seconds_after)).isoformat(),
            "message": message, "level": level}


def test_attempts_completed_timeout_and_failed_with_their_durations():
    run = {"id": "r1", "state_type": "COMPLETED", "run_count": 3, "total_run_time": 99.0}
    logs = [log("r1", 40, "✗ Offload timeout: bronze_trades_binance (exceeded 0.5 minutes)", 40),
            log("r1", 50, "✗ Offload failed: bronze_trades_binance", 40), log("r1", 51, "  Exit code: 1", 40),
            log("r1", 70, "  Duration: 12.5s"),  # a Duration line with no completion before it belongs to nobody
            log("r1", 90, "✓ Offload completed: bronze_trades_binance"), log("r1", 91, "  Duration: 16.4s"),
            log("r1", 92, "  Rows: 72,000"), log("r1", 93, "Finished in state Completed()")]
    attempts = C.attempts_from_logs(run, list(reversed(logs)))  # order of arrival does not matter
    assert [(a["table"], a["outcome"], a["seconds"]) for a in attempts] == [
        (T, "timeout", None), (T, "failed", None), (T, "completed", 16.4)]
    assert attempts[-1]["at"] == NOW - timedelta(hours=1) + timedelta(seconds=91)


def test_a_single_attempt_without_a_duration_line_takes_the_task_run_time():
    logs = [log("r1", 10, "✓ Offload completed: bronze_trades_binance")]
    single = C.attempts_from_logs({"id": "r1", "state_type": "COMPLETED", "run_count": 1, "total_run_time": 11.0}, logs)
    assert single[0]["seconds"] == 11.0
    retried = C.attempts_from_logs({"id": "r1", "state_type": "COMPLETED", "run_count": 2, "total_run_time": 41.0},
                                   logs)
    assert retried[0]["seconds"] is None  # total_run_time would include the failed attempt


def test_hostile_table_names_in_logs_are_ignored():
    logs = [log("r1", 1, "✓ Offload completed: <script>alert(1)</script>"), log("r1", 2, "  Duration: 5s")]
    assert C.attempts_from_logs({"id": "r1"}, logs) == []


def test_collect_durations_groups_by_table_and_counts_runs_naming_none():
    runs = [{"id": "a", "state_type": "COMPLETED", "run_count": 1}, {"id": "b", "state_type": "FAILED"},
            {"id": "c", "state_type": "CRASHED"}]
    logs = [log("a", 1, "✓ Offload completed: bronze_trades_kraken"), log("a", 2, "  Duration: 9.0s"),
            log("b", 1, "✗ Offload timeout: bronze_trades_kraken (exceeded 10 minutes)"),
            log("b", 3, "✓ Offload completed: silver_trades")]  # completed without duration, run_count unknown
    tables, unattributed = C.collect_durations(runs, logs)
    assert unattributed == 1  # c logged nothing K2 writes
    assert [s[1] for s in tables["bronze_trades_kraken"]["samples"]] == [9.0]
    assert tables["bronze_trades_kraken"]["timeouts"] == 1
    assert tables["silver_trades"]["completed_without_duration"] == 1 and tables["silver_trades"]["samples"] == []


def test_hourly_points_take_the_median_per_now_aligned_hour_and_drop_older_samples():
    samples = [(NOW - timedelta(minutes=10), 10.0), (NOW - timedelta(minutes=20), 30.0),
               (NOW - timedelta(minutes=30), 11.0), (NOW - timedelta(hours=2, minutes=5), 5.0),
               (NOW + timedelta(minutes=1), 12.0),  # server clocks differ: counts in the last hour
               (NOW - timedelta(hours=30), 99.0)]
    points = C.hourly_points(samples, NOW, 24)
    assert [(p["x"], p["median"], p["max"], p["count"]) for p in points] == [(-2.5, 5.0, 5.0, 1),
                                                                            (-0.5, 11.5, 30.0, 4)]


# --- least squares and the trend ----------------------------------------------------------------------------

def test_least_squares_recovers_an_exact_line():
    fit = C.least_squares([(x, 3 + 2 * x) for x in (-5, -3, -1, 0)])
    assert fit["slope"] == pytest.approx(2) and fit["intercept"] == pytest.approx(3) and fit["r2"] == pytest.approx(1)


def test_least_squares_by_hand():
    # mean x 1, mean y 2; sxx 2, sxy 1 -> slope 0.5, intercept 1.5; residuals -0.5, 1, -0.5 -> r2 = 1 - 1.5/2.
    fit = C.least_squares([(0, 1), (1, 3), (2, 2)])
    assert fit == {"slope": 0.5, "intercept": 1.5, "r2": 0.25}


def test_least_squares_needs_two_distinct_x():
    assert C.least_squares([(1, 2)]) is None and C.least_squares([(1, 2), (1, 5)]) is None
    assert C.least_squares([(0, 4), (1, 4)]) == {"slope": 0.0, "intercept": 4.0, "r2": 1.0}


def points(values, step_hours=1.0):
    """Hourly medians ending in the last hour (x = -0.5), oldest first."""
    n = len(values)
    return [{"x": -0.5 - (n - 1 - i) * step_hours, "median": v, "max": v, "count": 1, "start": ""}
            for i, v in enumerate(values)]


def test_too_few_hours_is_no_trend_and_says_why():
    trend = C.duration_trend(points([500] * 5), LIMITS)
    assert not trend["evaluated"] and not trend["reaches_warning"]
    assert trend["reason"].startswith("5 hour(s) with timed successful offloads") and "needs 6" in trend["reason"]


def test_rising_trend_reaching_the_warning_within_the_horizon():
    # 7 days of hourly medians rising 10 s/day from 300 s: ~370 s now, ~439 s a week ahead (warning: 480 s).
    values = [300 + 10 * (i / 24) for i in range(7 * 24)]
    trend = C.duration_trend(points(values), LIMITS)
    assert trend["evaluated"] and trend["slope_seconds_per_day"] == pytest.approx(10, abs=1e-6)
    assert trend["fitted_now_seconds"] == pytest.approx(300 + 10 * 167.5 / 24, abs=0.01)
    assert trend["projection_hours"] == pytest.approx(167, abs=0.01)  # capped at the history's own span
    assert trend["projected_seconds"] == pytest.approx(300 + 10 * 334.5 / 24, abs=0.01)
    assert not trend["reaches_warning"] and trend["days_to_warning"] == pytest.approx(11.02, abs=0.01)
    faster = C.duration_trend(points([300 + 20 * (i / 24) for i in range(7 * 24)]), LIMITS)  # 20 s/day: 440 s now
    assert faster["reaches_warning"] and faster["days_to_warning"] == pytest.approx(2.02, abs=0.01)
    assert faster["days_to_timeout"] == pytest.approx(8.02, abs=0.01)


def test_projection_is_never_longer_than_the_history():
    # 6 hours rising 5 s/hour to 425 s: a week ahead this would pass the timeout; 5 hours ahead (its span) it does not.
    trend = C.duration_trend(points([400, 405, 410, 415, 420, 425]), LIMITS)
    assert trend["span_hours"] == 5 and trend["projection_hours"] == 5
    assert trend["fitted_now_seconds"] == pytest.approx(427.5)
    assert trend["projected_seconds"] == pytest.approx(452.5) and not trend["reaches_warning"]
    assert trend["days_to_warning"] == pytest.approx((480 - 427.5) / 5 / 24, abs=0.01)  # said, not recommended


@pytest.mark.parametrize("level,reaches", [(480.0, True), (479.9, False)])
def test_a_flat_duration_at_the_warning_level_is_the_edge(level, reaches):
    trend = C.duration_trend(points([level] * 6), LIMITS)
    assert trend["evaluated"] and trend["slope_seconds_per_day"] == 0 and trend["reaches_warning"] is reaches


def test_a_falling_trend_judges_the_current_level():
    falling_from_above = C.duration_trend(points([560, 540, 520, 500, 480, 460]), LIMITS)
    assert falling_from_above["fitted_now_seconds"] == pytest.approx(450) and not falling_from_above["reaches_warning"]
    still_above = C.duration_trend(points([600, 590, 580, 570, 560, 550]), LIMITS)
    assert still_above["reaches_warning"] and still_above["days_to_warning"] == 0.0


def test_one_slow_hour_among_fast_ones_does_not_make_a_trend():
    # Hourly medians: one hour of slow jobs (a fault, then cleared) among 40 normal hours keeps the line far below.
    trend = C.duration_trend(points([12] * 20 + [50] + [12] * 20), C.Thresholds(task_timeout_seconds=30))
    assert trend["evaluated"] and not trend["reaches_warning"] and trend["fitted_now_seconds"] < 24


def duration_entry(values_by_hour, timeouts=0):
    samples = [(NOW - timedelta(hours=h, minutes=30), v) for h, v in values_by_hour]
    return {"samples": samples, "timeouts": timeouts, "failures": 0, "completed_without_duration": 0}


def test_duration_recommendation_carries_the_numbers():
    entry = duration_entry([(h, 560.0 - h) for h in range(12)], timeouts=2)
    duration = C.duration_summary(entry, NOW, 24, LIMITS)
    r = C.duration_recommendation(T, duration)
    assert r["rule"] == C.RULE_TIMEOUT and r["evidence"]["timeouts"] == 2 and r["evidence"]["points"] == 12
    assert r["evidence"]["fitted_now_seconds"] == pytest.approx(560.5, abs=0.01)
    assert "of the 600 s task timeout now" in r["reason"] and "2 timed-out attempt(s)" in r["reason"]
    assert duration["completed"] == 12 and duration["max_seconds"] == 560.0 and duration["p95_seconds"] == 560.0


def test_duration_summary_keeps_only_the_window_and_no_trend_means_no_recommendation():
    entry = duration_entry([(0, 10.0), (30, 500.0)])
    duration = C.duration_summary(entry, NOW, 24, LIMITS)
    assert duration["completed"] == 1 and duration["last_seconds"] == 10.0
    assert C.duration_recommendation(T, duration) is None


# --- report -------------------------------------------------------------------------------------------------

TABLES = [{"source": T, "timestamp_col": "exchange_timestamp", "layer": "bronze"},
          {"source": "silver_trades", "timestamp_col": "timestamp", "layer": "silver"}]


def sources(rows=None, ch_reachable=True, prefect_reachable=True, spark_fraction=0.1, table_error=None):
    rows = rows if rows is not None else {T: [{"hours_ago": h, "rows": 500} for h in range(24)]}
    clickhouse = {"reachable": ch_reachable, "error": None if ch_reachable else "ClickHouse at x:1: refused",
                  "t0_ms": T0_MS if ch_reachable else None,
                  "tables": {T: {"rows": rows[T], "error": None},
                             "silver_trades": {"rows": None if table_error else [], "error": table_error}}}
    prefect = {"reachable": prefect_reachable, "error": None if prefect_reachable else "Prefect API x: refused",
               "now": NOW, "task_runs": [], "logs": [], "truncated": False}
    docker = {"reachable": True, "error": None, "errors": {},
              "containers": {"k2-spark-iceberg": state(spark_fraction, usage=int(spark_fraction * 1000)),
                             "k2-clickhouse": state(0.5, usage=500)}}
    return clickhouse, prefect, docker


def report(*args, **kwargs):
    return C.build_report(TABLES, LIMITS, 24, *sources(*args, **kwargs), "k2-spark-iceberg", "k2-clickhouse")


def test_a_calm_stack_has_no_recommendation():
    r = report()
    assert r["status"] == C.STATUS_OK and r["recommendations"] == [] and r["blind"] == []
    assert r["tables"][T]["volume"]["max"] == 500 and len(r["tables"][T]["rows_per_hour"]) == 24
    assert r["memory"]["spark"]["fraction"] == 0.1 and r["window"]["until"] == NOW.isoformat()
    assert C.summary_lines(r)[0] == "CAPACITY OK: no recommendation over the last 1 days"


def test_recommendations_are_ordered_and_make_the_status():
    r = report(rows={T: [{"hours_ago": h, "rows": 5000} for h in range(3)]}, spark_fraction=0.9)
    assert [(x["rule"], x["subject"]) for x in r["recommendations"]] == [(C.RULE_PARALLEL, T),
                                                                         (C.RULE_SPARK, "k2-spark-iceberg")]
    assert r["status"] == C.STATUS_RECOMMENDATIONS
    lines = C.summary_lines(r)
    assert lines[0].startswith("CAPACITY: 2 recommendation(s)") and lines[1].startswith("RECOMMEND parallel_offload")


def test_a_source_that_does_not_answer_makes_the_report_incomplete_not_wrong():
    r = report(ch_reachable=False, prefect_reachable=False)
    assert r["status"] == C.STATUS_INCOMPLETE
    assert r["blind"] == ["ClickHouse (rows per hour): ClickHouse at x:1: refused",
                          "Prefect (offload durations): Prefect API x: refused"]
    assert r["tables"][T]["volume"] is None and r["tables"][T]["duration"] is None
    assert C.summary_lines(r)[0].startswith("CAPACITY INCOMPLETE")


def test_one_table_query_error_is_named():
    r = report(table_error="Code: 60. DB::Exception: Unknown table")
    assert r["blind"] == ["ClickHouse rows of silver_trades: Code: 60. DB::Exception: Unknown table"]
    assert r["tables"]["silver_trades"]["error"].startswith("Code: 60")
