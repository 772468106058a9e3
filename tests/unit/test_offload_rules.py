"""The runbook's decision tree (module_utils/offload_rules.py): log classification and triage rules."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import offload_rules as rules

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
TABLES = ["bronze_trades_binance", "bronze_trades_kraken"]
RUNNING = {"exists": True, "status": "running", "exit_code": 0, "networks": ["k2-network"],
           "memory_limit": 1000, "memory_usage": 100}


def healthy_facts(**overrides) -> dict:
    facts = {
        "network_name": "k2-network",
        "containers": {n: dict(RUNNING, name=n) for n in
                       ("k2-clickhouse", "k2-prefect-worker", "k2-spark-iceberg", "k2-prefect-db", "k2-prefect-server")},
        "prefect": {"reachable": True, "worker_online": True, "flow_runs": [], "running_runs": []},
        "watermarks": {"layout": "state", "watermarks": {t: {"timestamp": "2026-11-26T11:50:00+00:00",
                                                             "status": "success", "failure_count": 0,
                                                             "anomalies": []} for t in TABLES}},
        "clickhouse": {"reachable": True, "tables": {t: {"volume": "normal", "rows_last_hour": 72000,
                                                         "ttl_headroom_seconds": 600000.0} for t in TABLES},
                       "long_running_queries": []},
        "iceberg": {"warehouse": {"exists": True, "mode": "0775", "uid": 0},
                    "tables": {t: {"max_timestamp": "2026-11-26T11:50:00+00:00"} for t in TABLES}},
        "spark": {"jdbc_present": True, "offload_processes": []},
        "alerts": {"reachable": True, "alert_tables": [], "metrics_empty": False},
    }
    for key, value in overrides.items():
        facts[key] = value
    return facts


def failed_run(*lines, message="Flow run encountered an exception"):
    return {"name": "r1", "state_type": "FAILED", "message": message, "log_lines": list(lines)}


def scenario_numbers(result):
    return [s["scenario"] for s in result["scenarios"]]


def test_healthy_stack_is_healthy():
    result = rules.triage(healthy_facts(), TABLES, now=NOW)
    assert result["status"] == "healthy" and result["scenarios"] == []
    assert result["min_ttl_headroom_seconds"] == 600000.0


@pytest.mark.parametrize("line,expected", [
    ("✗ Offload timeout: bronze_trades_binance (exceeded 10 minutes)", "timeout"),
    ("subprocess.TimeoutExpired: Command '...' timed out after 600 seconds", "timeout"),
    ("Failed to get watermark: Watermark not found for table: bronze_trades_binance.", "watermark"),
    ("psycopg2.errors.NotNullViolation: null value violates not-null constraint", "watermark"),
    ("ERROR: duplicate key value violates unique constraint", "watermark"),
    ("Failed to read from ClickHouse: HTTPConnectionPool(host='clickhouse', port=8123)", "connection"),
    ("Code: 241. DB::Exception: Memory limit (total) exceeded (MEMORY_LIMIT_EXCEEDED)", "connection"),
    ("[Errno -2] Name or service not known", "connection"),
    ("  Exit code: 137", "process"),
    ("Error response from daemon: Container abc is not running", "process"),
    ("Failed to initialize Spark: ClickHouse JDBC driver not found: /opt/spark/jars/x.jar", "process"),
    ("Failed to write to Iceberg: [Errno 13] Permission denied", "process"),
    ("java.lang.OutOfMemoryError: Java heap space", "process"),
    ("  Exit code: 0", None),
    ("✓ Offload completed: bronze_trades_binance", None),
    ("", None),
    ("'; DROP TABLE offload_watermarks; --", "watermark"),
    (None, None),
    ("\x00\xff binary garbage ✗", None),
])
def test_classify_line(line, expected):
    assert rules.classify_line(line) == expected


def test_classify_lines_keeps_at_most_five_per_class():
    found = rules.classify_lines([f"  Exit code: {n}" for n in range(1, 21)] + ["Offload timeout: t", "Offload timeout: t"])
    assert len(found["process"]) == 5 and found["timeout"] == ["Offload timeout: t"]


# As K2's job prints them (Py4J's message of a failed spark.read.jdbc, logged by the flow as one "Stderr:" record).
K2_DRIVER_MISSING = ("  Stderr: 2026-12-07 10:00:01 - __main__ - ERROR - Failed to read from ClickHouse: An error "
                     "occurred while calling o52.jdbc.\n: java.lang.ClassNotFoundException: "
                     "com.clickhouse.jdbc.ClickHouseDriver\n\tat java.base/java.net.URLClassLoader.findClass")
K2_JVM_START = ("  Stderr: ERROR - Failed to initialize Spark: [JAVA_GATEWAY_EXITED] Java gateway process exited "
                "before sending its port number.")


@pytest.mark.parametrize("entries, expected", [
    ([K2_DRIVER_MISSING], {"process"}),  # never Scenario 2: ClickHouse was not asked
    (K2_DRIVER_MISSING.split("\n")[1:], {"process"}),
    ([K2_JVM_START], {"process"}),
    (["Failed to read from ClickHouse: HTTPConnectionPool(host='clickhouse', port=8123): Connection refused"],
     {"connection"}),
    ([K2_DRIVER_MISSING, "Failed to read from ClickHouse: Connection refused"], {"process", "connection"}),
    # the run's error line alone, beside the driver line from another record of the same run
    (["ERROR - Failed to read from ClickHouse: An error occurred while calling o52.jdbc.",
      "java.lang.ClassNotFoundException: com.clickhouse.jdbc.ClickHouseDriver"], {"process"}),
    (["ERROR - Failed to read from ClickHouse: An error occurred while calling o52.jdbc."], {"connection"}),
])
def test_a_missing_jdbc_driver_or_a_jvm_that_cannot_start_is_spark_not_clickhouse(entries, expected):
    assert set(rules.classify_lines(entries)) == expected


def test_tables_in_lines():
    lines = ["✗ Offload failed: bronze_trades_binance", "✗ Offload timeout: silver_trades (exceeded 10 minutes)",
             "RuntimeError: Offload failed for ohlcv_1m: boom", "Watermark not found for table: ohlcv_5m. Run",
             "✗ Offload failed: x'; drop"]
    assert rules.tables_in_lines(lines) == {"bronze_trades_binance", "silver_trades", "ohlcv_1m", "ohlcv_5m", "x"}


@pytest.mark.parametrize("state,expected", [
    (None, "container absent"), ({"exists": False}, "container absent"),
    ({"exists": True, "status": "exited", "exit_code": 137, "oom_killed": True}, "container exited (exit code 137, OOMKilled)"),
    ({"exists": True, "status": "running"}, None),
])
def test_container_down(state, expected):
    assert rules.container_down(state) == expected


def test_worker_stopped_is_scenario_1():
    facts = healthy_facts()
    facts["containers"]["k2-prefect-worker"].update(status="exited", exit_code=137, oom_killed=True)
    facts["prefect"]["worker_online"] = False
    result = rules.triage(facts, TABLES, now=NOW)
    assert scenario_numbers(result) == [1]
    assert "OOMKilled" in result["scenarios"][0]["evidence"][0]


def test_stale_heartbeat_alone_is_scenario_1():
    facts = healthy_facts()
    facts["prefect"]["worker_online"] = False
    assert scenario_numbers(rules.triage(facts, TABLES, now=NOW)) == [1]


def test_prefect_unreachable_with_its_server_running_is_blind_not_scenario_1():
    facts = healthy_facts(prefect={"reachable": False, "error": "Connection refused"})
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["status"] == "blind" and scenario_numbers(result) == [] and result["root_causes"] == []
    assert result["blind"] == [{"component": "Prefect API", "probe": "prefect", "cause": "Connection refused",
                                "monitoring": False}]
    assert "BLIND: Prefect API did not answer: Connection refused" in rules.summary_lines(result)


@pytest.mark.parametrize("probe,component,error", [
    ("watermarks", "PostgreSQL watermarks (offload_watermarks)",
     "Cannot connect to PostgreSQL at 127.0.0.1:15432/prefect as prefect: password authentication failed"),
    ("clickhouse", "ClickHouse", "Code: 516. DB::Exception: default: Authentication failed"),
    ("iceberg", "cold tier (Iceberg metadata)", "Permission denied: /warehouse"),
    ("docker", "Docker API (container state)", "k2-clickhouse: Error connecting: Read timed out"),
])
def test_a_probe_that_does_not_answer_is_never_healthy(probe, component, error):
    result = rules.triage(healthy_facts(**{probe: {"reachable": False, "error": error}}), TABLES, now=NOW)
    assert result["status"] == "blind", result
    assert [(b["component"], b["cause"]) for b in result["blind"]] == [(component, error)]
    assert scenario_numbers(result) == []  # a wrong password is not a ClickHouse outage: nothing to restart


def test_a_docker_api_that_does_not_answer_leaves_containers_unknown_not_absent():
    facts = rules.facts_from_raw({
        "container_names": {"clickhouse": "k2-clickhouse", "prefect_worker": "k2-prefect-worker"},
        "docker": {"reachable": True, "error": "k2-clickhouse: Read timed out", "containers": {},
                   "errors": {"k2-clickhouse": "Read timed out"}, "processes": {}, "files": []},
        "probes": {}})
    assert facts["containers"] == {}
    assert facts["docker"]["reachable"] is False and "k2-clickhouse: Read timed out" in facts["docker"]["error"]
    result = rules.triage({**healthy_facts(containers={}), "docker": facts["docker"]}, TABLES, now=NOW)
    assert scenario_numbers(result) == [] and result["status"] == "blind"


@pytest.mark.parametrize("registered,why", [
    ({"reachable": False, "error": "Docker engine not answering: Read timed out", "containers": {}},
     "Docker engine not answering"),
    ({"failed": True, "msg": "Failed to import the required Python library (docker)\nmore"}, "Failed to import"),
    ({"changed": False, "failed_when_suppressed_exception": "x", "msg": "MODULE FAILURE"}, "MODULE FAILURE"),
    ({"skipped": True}, "did not run"),
    (None, "did not run"),
])
def test_a_docker_probe_without_an_answer_is_blind(registered, why):
    facts = rules.facts_from_raw({"container_names": {}, "docker": registered, "probes": {}})
    assert facts["docker"]["reachable"] is False and why in facts["docker"]["error"], facts["docker"]
    assert facts["containers"] == {} and facts["spark"]["offload_processes"] == []


def test_docker_facts_carry_containers_spark_jobs_and_the_jdbc_check():
    ps = "  1 100 sleep infinity\n 42  75 python3 /home/iceberg/offload/offload_generic.py --source-table t1\n"
    facts = rules.facts_from_raw({
        "container_names": {"spark": "k2-spark-iceberg"}, "jdbc_path": "/opt/j.jar", "probes": {},
        "docker": {"reachable": True, "error": None, "errors": {},
                   "containers": {"k2-spark-iceberg": {"name": "k2-spark-iceberg", "status": "running"}},
                   "processes": {"k2-spark-iceberg": {"rc": 0, "output": ps, "error": None}},
                   "files": [{"container": "k2-spark-iceberg", "path": "/opt/j.jar", "present": False,
                              "error": None}]}})
    assert facts["docker"] == {"reachable": True}
    assert facts["spark"]["jdbc_present"] is False and facts["spark"]["jdbc_path"] == "/opt/j.jar"
    assert [(p["pid"], p["table"]) for p in facts["spark"]["offload_processes"]] == [(42, "t1")]


def test_a_running_spark_container_whose_ps_fails_is_blind_not_jobless():
    facts = rules.facts_from_raw({
        "container_names": {"spark": "k2-spark-iceberg"}, "probes": {},
        "docker": {"reachable": True, "error": None, "errors": {},
                   "containers": {"k2-spark-iceberg": {"name": "k2-spark-iceberg", "status": "running"}},
                   "processes": {"k2-spark-iceberg": {"rc": None, "output": "", "error": "exec failed: 500"}},
                   "files": []}})
    assert facts["spark"]["reachable"] is False and "exec failed: 500" in facts["spark"]["error"]
    assert facts["spark"]["jdbc_present"] is None


@pytest.mark.parametrize("probe,component", [("alerts", "Prometheus"), ("alertmanager", "Alertmanager")])
def test_monitoring_down_is_alerting_blind_and_said_prominently(probe, component):
    result = rules.triage(healthy_facts(**{probe: {"reachable": False, "error": "Connection refused"}}), TABLES, now=NOW)
    assert result["status"] == "blind" and result["alerting_blind"] is True
    assert result["blind"][0]["component"] == component and result["blind"][0]["monitoring"] is True
    assert any(line.startswith("ALERTING IS BLIND") for line in rules.summary_lines(result))


def test_clickhouse_refusing_connections_stays_scenario_2_and_is_not_listed_blind_twice():
    result = rules.triage(healthy_facts(clickhouse={"reachable": False, "error": "Connection refused"}), TABLES, now=NOW)
    assert scenario_numbers(result) == [2] and result["blind"] == [] and result["status"] == "degraded"


def _down(facts, container, exit_code=0):
    facts["containers"][container].update(status="exited", exit_code=exit_code)
    return facts


def test_prefect_db_down_is_the_root_cause_and_the_stale_worker_its_consequence():
    facts = _down(healthy_facts(), "k2-prefect-db")
    facts["prefect"] = {"reachable": True, "worker_online": False, "flow_runs": [], "running_runs": []}
    facts["watermarks"] = {"reachable": False, "error": "Cannot connect to PostgreSQL: Connection refused"}
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["status"] == "degraded" and scenario_numbers(result) == []  # not Scenario 1
    assert [c["component"] for c in result["root_causes"]] == ["prefect_db"]
    cause = result["root_causes"][0]
    assert cause["evidence"] == ["k2-prefect-db: container exited (exit code 0)"]
    assert "no worker of pool iceberg-offload is online (heartbeat stale)" in cause["consequences"]
    assert any(c.startswith("watermarks unreadable") for c in cause["consequences"])
    assert result["blind"] == []  # explained by the database being down
    assert rules.summary_lines(result)[0].startswith("ROOT CAUSE: PostgreSQL (k2-prefect-db)")


def test_prefect_server_down_is_the_root_cause_not_a_stopped_worker():
    facts = _down(healthy_facts(prefect={"reachable": False, "error": "Connection refused"}), "k2-prefect-server")
    result = rules.triage(facts, TABLES, now=NOW)
    assert [c["component"] for c in result["root_causes"]] == ["prefect_server"]
    assert scenario_numbers(result) == [] and result["blind"] == []
    assert "Prefect API unreachable: Connection refused" in result["root_causes"][0]["consequences"]


def test_root_causes_come_upstream_first_and_a_stopped_worker_stays_scenario_1():
    facts = _down(_down(_down(healthy_facts(prefect={"reachable": False, "error": "x"}), "k2-prefect-server"),
                        "k2-prefect-db"), "k2-prefect-worker")
    result = rules.triage(facts, TABLES, now=NOW)
    assert [c["component"] for c in result["root_causes"]] == ["prefect_db", "prefect_server"]
    assert scenario_numbers(result) == [1]


@pytest.mark.parametrize("mutate,evidence", [
    (lambda f: f["containers"]["k2-clickhouse"].update(status="exited", exit_code=139), "exit code 139"),
    (lambda f: f["containers"]["k2-clickhouse"].update(networks=[]), "not attached to network k2-network"),
    (lambda f: f["clickhouse"].update(reachable=False, error="timed out"), "ClickHouse unreachable"),
])
def test_clickhouse_problems_are_scenario_2(mutate, evidence):
    facts = healthy_facts()
    mutate(facts)
    result = rules.triage(facts, TABLES, now=NOW)
    assert scenario_numbers(result) == [2]
    assert any(evidence in e for e in result["scenarios"][0]["evidence"])


def test_memory_exactly_at_threshold_is_not_pressure():
    facts = healthy_facts()
    facts["containers"]["k2-clickhouse"]["memory_usage"] = 900
    assert rules.triage(facts, TABLES, now=NOW)["status"] == "healthy"


def test_clickhouse_down_does_not_also_blame_spark_for_docker_exec():
    facts = healthy_facts()
    facts["containers"]["k2-clickhouse"].update(status="exited")
    facts["prefect"]["flow_runs"] = [failed_run("Failed to read from ClickHouse: Connection refused", "  Exit code: 1")]
    numbers = scenario_numbers(rules.triage(facts, TABLES, now=NOW))
    assert numbers[0] == 2


@pytest.mark.parametrize("mutate,evidence", [
    (lambda f: f["containers"]["k2-spark-iceberg"].update(status="exited", exit_code=0), "k2-spark-iceberg"),
    (lambda f: f["spark"].update(jdbc_present=False, jdbc_path="/opt/spark/jars/x.jar"), "JDBC driver missing"),
    (lambda f: f["spark"].update(warehouse_write={"path": "/home/iceberg/warehouse", "writable": False}),
     "cannot write its warehouse"),
    (lambda f: f["prefect"].update(flow_runs=[failed_run("✗ Offload failed: bronze_trades_binance", "  Exit code: 137")]),
     "Exit code: 137"),
])
def test_spark_problems_are_scenario_3(mutate, evidence):
    facts = healthy_facts()
    mutate(facts)
    result = rules.triage(facts, TABLES, now=NOW)
    assert scenario_numbers(result) == [3]
    assert any(evidence in e for e in result["scenarios"][0]["evidence"])


@pytest.mark.parametrize("anomaly", ["missing_row", "stuck_running", "null_values", "future_watermark", "history_bloat"])
def test_watermark_anomalies_are_scenario_4(anomaly):
    facts = healthy_facts()
    facts["watermarks"]["watermarks"]["bronze_trades_kraken"]["anomalies"] = [anomaly]
    result = rules.triage(facts, TABLES, now=NOW)
    assert scenario_numbers(result) == [4] and result["scenarios"][0]["tables"] == ["bronze_trades_kraken"]


@pytest.mark.parametrize("offset,word", [(timedelta(minutes=30), "AHEAD"), (timedelta(minutes=-30), "BEHIND")])
def test_watermark_against_cold_tier(offset, word):
    facts = healthy_facts()
    ts = datetime(2026, 11, 26, 11, 50, tzinfo=timezone.utc) + offset
    facts["watermarks"]["watermarks"]["bronze_trades_binance"]["timestamp"] = ts.isoformat()
    result = rules.triage(facts, TABLES, now=NOW)
    assert scenario_numbers(result) == [4] and word in result["scenarios"][0]["evidence"][0]


def test_watermark_within_tolerance_and_initial_epoch_are_fine():
    facts = healthy_facts()
    facts["watermarks"]["watermarks"]["bronze_trades_binance"]["timestamp"] = "2026-11-26T11:50:00.5+00:00"
    facts["watermarks"]["watermarks"]["bronze_trades_kraken"]["timestamp"] = "1970-01-01T00:00:00+00:00"
    assert rules.triage(facts, TABLES, now=NOW)["status"] == "healthy"


def test_absent_watermark_table_is_scenario_4_for_all_tables():
    result = rules.triage(healthy_facts(watermarks={"layout": "absent"}), TABLES, now=NOW)
    assert scenario_numbers(result) == [4] and result["scenarios"][0]["tables"] == TABLES


def test_timeout_with_spike_and_orphans_is_scenario_5():
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [failed_run("✗ Offload timeout: bronze_trades_binance (exceeded 10 minutes)")]
    facts["clickhouse"]["tables"]["bronze_trades_binance"].update(volume="spike", rows_last_hour=12_000_000)
    facts["spark"]["offload_processes"] = [{"pid": 7, "table": "bronze_trades_binance"}]
    result = rules.triage(facts, TABLES, now=NOW)
    assert scenario_numbers(result) == [5]
    evidence = " ".join(result["scenarios"][0]["evidence"])
    assert "12000000 rows" in evidence and "orphans" in evidence
    assert result["failing_tables"] == ["bronze_trades_binance"]
    assert result["causes"] == {"clickhouse_memory": False, "spark_oom": False, "warehouse_not_writable": False,
                                "volume_spike_tables": ["bronze_trades_binance"], "orphan_processes": 1,
                                "long_running_queries": 0}


def test_healthy_stack_has_no_causes():
    causes = rules.triage(healthy_facts(), TABLES, now=NOW)["causes"]
    assert causes == {"clickhouse_memory": False, "spark_oom": False, "warehouse_not_writable": False,
                      "volume_spike_tables": [], "orphan_processes": 0, "long_running_queries": 0}


@pytest.mark.parametrize("line, cause", [
    ("Code: 241. DB::Exception: Memory limit (total) exceeded (MEMORY_LIMIT_EXCEEDED)", "clickhouse_memory"),
    ("  Exit code: 137", "spark_oom"),
    ("java.lang.OutOfMemoryError: Java heap space", "spark_oom"),
])
def test_causes_that_change_the_remediation_are_structured(line, cause):
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [failed_run("✗ Offload failed: bronze_trades_binance", line)]
    causes = rules.triage(facts, TABLES, now=NOW)["causes"]
    assert causes[cause] is True
    assert [k for k in ("clickhouse_memory", "spark_oom") if causes[k]] == [cause]


def test_clickhouse_above_its_memory_threshold_is_no_memory_cause_while_the_offload_works():
    facts = healthy_facts()
    facts["containers"]["k2-clickhouse"]["memory_usage"] = 950
    assert rules.triage(facts, TABLES, now=NOW)["causes"]["clickhouse_memory"] is False


def _run(state, seconds, minutes_ago):
    end = NOW - timedelta(minutes=minutes_ago)
    return {"name": f"r{minutes_ago}", "state_type": state, "start_time": (end - timedelta(seconds=seconds)).isoformat(),
            "end_time": end.isoformat()}


def test_duration_trend_flags_a_run_much_longer_than_the_completed_ones():
    runs = [_run("FAILED", 140, 0), _run("COMPLETED", 40, 15), _run("COMPLETED", 50, 30), _run("COMPLETED", 45, 45)]
    assert rules.duration_trend(runs) == ("flow run duration trend: the newest run took 140 s, 3.1x the median 45 s "
                                          "of 3 earlier completed runs")
    assert rules.duration_trend([_run("COMPLETED", 60, 0), *runs[1:]]) is None  # 1.3x: normal noise
    assert rules.duration_trend(runs[:2]) is None  # too little history to call a trend


def test_duration_trend_is_timeout_evidence():
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [
        {**_run("FAILED", 140, 0), "log_lines": ["✗ Offload timeout: bronze_trades_binance (exceeded 10 minutes)"]},
        _run("COMPLETED", 40, 15), _run("COMPLETED", 50, 30)]
    evidence = rules.triage(facts, TABLES, now=NOW)["scenarios"][0]["evidence"]
    assert any(e.startswith("flow run duration trend: the newest run took 140 s") for e in evidence)


def test_in_flight_offload_with_running_flow_run_is_not_an_orphan():
    facts = healthy_facts()
    facts["spark"]["offload_processes"] = [{"pid": 7}]
    facts["prefect"]["running_runs"] = ["abc"]
    assert rules.triage(facts, TABLES, now=NOW)["status"] == "healthy"


def test_failures_without_matching_rule_are_unknown_with_evidence():
    facts = healthy_facts()
    facts["watermarks"]["watermarks"]["bronze_trades_binance"].update(status="failed", failure_count=4,
                                                                     last_error_message="something new")
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["status"] == "unknown"
    assert result["scenarios"][0]["scenario"] == "unknown"
    assert "something new" in result["scenarios"][0]["evidence"][0]


def test_several_scenarios_come_in_runbook_order():
    facts = healthy_facts()
    facts["containers"]["k2-spark-iceberg"].update(status="exited")
    facts["containers"]["k2-prefect-worker"].update(status="exited")
    facts["watermarks"]["watermarks"]["bronze_trades_binance"]["anomalies"] = ["missing_row"]
    assert scenario_numbers(rules.triage(facts, TABLES, now=NOW)) == [1, 3, 4]


def test_empty_facts_do_not_crash_and_guess_no_container_state():
    # No container facts at all (no Docker probe result): every container's state is unknown, never "absent".
    result = rules.triage({}, TABLES, now=NOW)
    assert result["root_causes"] == [] and result["scenarios"] == [] and result["failing_tables"] == []


def test_alert_tables_are_failing_tables_without_prometheus_metrics():
    facts = healthy_facts(alerts={"reachable": True, "alert_tables": ["bronze_trades_kraken"], "metrics_empty": True})
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["failing_tables"] == ["bronze_trades_kraken"] and result["prometheus_metrics_exported"] is False


def test_ttl_headroom_from_watermark_and_table_ttl():
    ch = {"tables": {"a": {"ttl": {"interval_seconds": 7 * 86400}}, "b": {"ttl_headroom_seconds": 5.0},
                     "c": {"ttl": None}}}
    wms = {"a": {"timestamp": (NOW - timedelta(days=6)).isoformat()}, "c": {"timestamp": NOW.isoformat()}}
    assert rules.ttl_headroom(ch, wms, NOW) == {"a": 86400.0, "b": 5.0}


def test_ttl_already_passed_gives_negative_headroom():
    ch = {"tables": {"a": {"ttl": {"interval_seconds": 3600}}}}
    assert rules.ttl_headroom(ch, {"a": {"timestamp": (NOW - timedelta(hours=2)).isoformat()}}, NOW)["a"] == -3600.0


def test_failures_older_than_the_last_completed_run_are_history():
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [{"name": "new", "state_type": "COMPLETED"},
                                     failed_run("✗ Offload timeout: bronze_trades_binance (exceeded 10 minutes)")]
    assert rules.triage(facts, TABLES, now=NOW)["status"] == "healthy"


def test_multiline_log_entries_are_classified_line_by_line():
    entry = "Stderr: WARNING: Using incubator modules\nFailed to write to Iceberg: [Errno 13] Permission denied\nx"
    assert rules.classify_lines([entry]) == {"process": ["Failed to write to Iceberg: [Errno 13] Permission denied"]}


def test_bare_exit_code_is_not_blamed_on_spark_when_clickhouse_explains_it():
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [failed_run("Failed to read from ClickHouse: Connection refused", "  Exit code: 1")]
    assert scenario_numbers(rules.triage(facts, TABLES, now=NOW)) == [2]


def test_bare_exit_code_alone_points_at_the_job():
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [failed_run("✗ Offload failed: bronze_trades_binance", "  Exit code: 1")]
    assert scenario_numbers(rules.triage(facts, TABLES, now=NOW)) == [3]


def test_timeout_names_the_timed_out_table_and_ignores_busy_unrelated_tables():
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [failed_run("✗ Offload timeout: bronze_trades_binance (exceeded 10 minutes)")]
    facts["clickhouse"]["tables"]["bronze_trades_kraken"].update(volume="elevated", rows_last_hour=6_000_000)
    scenario = rules.triage(facts, TABLES, now=NOW)["scenarios"][0]
    assert scenario["scenario"] == 5  # not "unknown": the timeout line alone is Scenario 5
    assert scenario["tables"] == ["bronze_trades_binance"]
    assert not any("bronze_trades_kraken" in e for e in scenario["evidence"])


def test_alert_still_firing_after_a_completed_run_is_stale_not_a_failure():
    facts = healthy_facts(alerts={"reachable": True, "alert_tables": ["bronze_trades_kraken"], "metrics_empty": False},
                          prefect={"reachable": True, "worker_online": True, "running_runs": [],
                                   "flow_runs": [{"name": "ok", "state_type": "COMPLETED"}, failed_run("x")]})
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["status"] == "healthy" and result["failing_tables"] == []
    assert result["stale_alert_tables"] == ["bronze_trades_kraken"]
    assert any("clears by itself" in line for line in rules.summary_lines(result))


def test_alert_with_a_failing_watermark_is_not_stale_even_after_a_completed_run():
    facts = healthy_facts(alerts={"reachable": True, "alert_tables": ["bronze_trades_kraken"], "metrics_empty": False},
                          prefect={"reachable": True, "worker_online": True, "running_runs": [],
                                   "flow_runs": [{"name": "ok", "state_type": "COMPLETED"}]})
    facts["watermarks"]["watermarks"]["bronze_trades_kraken"].update(status="failed", failure_count=3)
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["failing_tables"] == ["bronze_trades_kraken"] and result["stale_alert_tables"] == []


@pytest.mark.parametrize("result,answered", [
    ({"finished": 1, "reachable": True, "changed": False}, True),
    ({"failed_when_result": False, "failed_when_suppressed_exception": "(traceback unavailable)",
      "msg": "Cannot connect to PostgreSQL: password authentication failed"}, False),
    ({"failed": True, "msg": "boom", "finished": 1}, False),
    ({"finished": 0, "started": 1, "ansible_job_id": "j1"}, False),  # still running when the wait gave up
    ({"skipped": True}, False), (None, False)])
def test_an_async_probe_counts_as_answered_only_when_it_finished_without_failing(result, answered):
    probe = rules._probe(result)
    assert (probe.get("reachable") is not False) is answered, probe


# ---------------------------------------------------------------- one rule at a time
# Each test below makes exactly one rule of `triage` fire and pins its scenario number, tables and evidence, so
# that deleting that rule (or its condition) fails a test even when another rule would give the same scenario.

TIMEOUT_LINE = "✗ Offload timeout: bronze_trades_binance (exceeded 10 minutes)"
ORPHAN_EVIDENCE = ("1 offload process(es) running in k2-spark-iceberg with no RUNNING flow run (orphans of a timed-out "
                   "task)")


def brief(result):
    return [(s["scenario"], s["tables"], s["evidence"]) for s in result["scenarios"]]


def test_worker_container_down_alone_is_scenario_1_with_its_state():
    facts = _down(healthy_facts(), "k2-prefect-worker", exit_code=143)  # heartbeat still fresh: the state is the evidence
    assert brief(rules.triage(facts, TABLES, now=NOW)) == [(1, [], ["k2-prefect-worker: container exited (exit code 143)"])]


def test_stale_heartbeat_alone_is_scenario_1_with_its_evidence():
    facts = healthy_facts()
    facts["prefect"]["worker_online"] = False
    assert brief(rules.triage(facts, TABLES, now=NOW)) == [
        (1, [], ["no worker of pool iceberg-offload is online (heartbeat stale)"])]


def test_worker_down_evidence_names_the_configured_worker_container():
    facts = healthy_facts(container_names={"prefect_worker": "k2-worker-2"})
    facts["containers"]["k2-worker-2"] = dict(RUNNING, name="k2-worker-2", status="exited")
    assert brief(rules.triage(facts, TABLES, now=NOW)) == [(1, [], ["k2-worker-2: container exited (exit code 0)"])]


@pytest.mark.parametrize("scenario,mutate,evidence", [
    (2, lambda f: f["containers"]["k2-clickhouse"].update(status="exited", exit_code=139),
     "k2-clickhouse: container exited (exit code 139)"),
    (2, lambda f: f["containers"]["k2-clickhouse"].update(networks=["bridge"]),
     "k2-clickhouse is not attached to network k2-network"),
    (2, lambda f: f["clickhouse"].update(reachable=False, error="Read timed out"), "ClickHouse unreachable: Read timed out"),
    (3, lambda f: f["containers"]["k2-spark-iceberg"].update(status="exited", exit_code=137, oom_killed=True),
     "k2-spark-iceberg: container exited (exit code 137, OOMKilled)"),
    (3, lambda f: f["spark"].update(jdbc_present=False, jdbc_path="/opt/spark/jars/x.jar"),
     "JDBC driver missing: /opt/spark/jars/x.jar"),
    (3, lambda f: f["spark"].update(warehouse_write={"path": "/home/iceberg/warehouse", "writable": False,
                                                       "error": "sh: 1: cannot create ...: Permission denied"}),
     "k2-spark-iceberg cannot write its warehouse /home/iceberg/warehouse as its own user: sh: 1: cannot create ...: "
     "Permission denied"),
])
def test_each_clickhouse_and_spark_rule_alone_is_its_scenario_with_its_evidence(scenario, mutate, evidence):
    facts = healthy_facts()
    mutate(facts)
    assert brief(rules.triage(facts, TABLES, now=NOW)) == [(scenario, [], [evidence])]


def test_a_connection_log_line_alone_is_scenario_2_for_the_failing_table():
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [failed_run("✗ Offload failed: bronze_trades_kraken",
                                                "Failed to read from ClickHouse: Connection refused")]
    assert brief(rules.triage(facts, TABLES, now=NOW)) == [
        (2, ["bronze_trades_kraken"], ["log: Failed to read from ClickHouse: Connection refused"])]


def test_a_down_clickhouse_does_not_blame_spark_for_the_exec_into_it():
    facts = _down(healthy_facts(), "k2-clickhouse")
    facts["prefect"]["flow_runs"] = [failed_run("Error response from daemon: Container k2-clickhouse is not running")]
    assert brief(rules.triage(facts, TABLES, now=NOW)) == [(2, [], ["k2-clickhouse: container exited (exit code 0)"])]


def test_a_bare_exit_code_is_not_blamed_on_spark_when_the_worker_is_down():
    facts = _down(healthy_facts(), "k2-prefect-worker")
    facts["prefect"]["flow_runs"] = [failed_run("✗ Offload failed: bronze_trades_binance", "  Exit code: 1")]
    assert brief(rules.triage(facts, TABLES, now=NOW)) == [
        (1, ["bronze_trades_binance"], ["k2-prefect-worker: container exited (exit code 0)"])]


def test_a_process_log_line_alone_is_scenario_3_for_the_failing_table():
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [failed_run("✗ Offload failed: bronze_trades_binance",
                                                "java.lang.OutOfMemoryError: Java heap space")]
    assert brief(rules.triage(facts, TABLES, now=NOW)) == [
        (3, ["bronze_trades_binance"], ["log: java.lang.OutOfMemoryError: Java heap space"])]


def test_absent_watermark_table_is_scenario_4_with_its_evidence():
    assert brief(rules.triage(healthy_facts(watermarks={"layout": "absent"}), TABLES, now=NOW)) == [
        (4, TABLES, ["table offload_watermarks does not exist"])]


def test_a_watermark_anomaly_is_scenario_4_for_its_table_only():
    facts = healthy_facts(alerts={"reachable": True, "alert_tables": ["bronze_trades_binance"], "metrics_empty": False})
    facts["watermarks"]["watermarks"]["bronze_trades_kraken"]["anomalies"] = ["stuck_running", "failed"]
    # "failed" is not a Scenario 4 anomaly; the alerted binance is failing but not this rule's table
    assert brief(rules.triage(facts, TABLES, now=NOW)) == [
        (4, ["bronze_trades_kraken"], ["watermark bronze_trades_kraken: stuck_running"])]


@pytest.mark.parametrize("timestamp,evidence", [
    ("2026-11-26T12:20:00+00:00", "watermark bronze_trades_binance is 1800 s AHEAD of the cold tier's max "
                                  "(2026-11-26T11:50:00+00:00): rows in between will never be offloaded (gap)"),
    ("2026-11-26T11:20:00+00:00", "watermark bronze_trades_binance is 1800 s BEHIND the cold tier's max "
                                  "(2026-11-26T11:50:00+00:00): the next run re-appends rows (duplicates)"),
])
def test_watermark_off_the_cold_tier_is_scenario_4_for_that_table(timestamp, evidence):
    facts = healthy_facts(alerts={"reachable": True, "alert_tables": ["bronze_trades_kraken"], "metrics_empty": False})
    facts["watermarks"]["watermarks"]["bronze_trades_binance"]["timestamp"] = timestamp
    assert brief(rules.triage(facts, TABLES, now=NOW)) == [(4, ["bronze_trades_binance"], [evidence])]


def test_a_watermark_log_line_alone_is_scenario_4_for_the_failing_table():
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [
        failed_run("Failed to get watermark: Watermark not found for table: bronze_trades_kraken.")]
    assert brief(rules.triage(facts, TABLES, now=NOW)) == [
        (4, ["bronze_trades_kraken"], ["log: Failed to get watermark: Watermark not found for table: bronze_trades_kraken."])]


def test_a_timeout_log_line_alone_is_scenario_5_for_the_table_it_names():
    # No orphan process, no spike, no slow query: only the timeout line can make this Scenario 5. The alerted kraken
    # is failing too, so the tables must come from the line, not from the failing tables.
    facts = healthy_facts(alerts={"reachable": True, "alert_tables": ["bronze_trades_kraken"], "metrics_empty": False})
    facts["prefect"]["flow_runs"] = [failed_run(TIMEOUT_LINE)]
    result = rules.triage(facts, TABLES, now=NOW)
    assert brief(result) == [(5, ["bronze_trades_binance"], [f"log: {TIMEOUT_LINE}"])]
    assert result["status"] == "degraded" and result["error_classes"] == ["timeout"]
    assert result["failing_tables"] == ["bronze_trades_binance", "bronze_trades_kraken"]


def test_orphan_offload_processes_alone_are_scenario_5():
    facts = healthy_facts()
    facts["spark"]["offload_processes"] = [{"pid": 7, "table": "bronze_trades_binance"}]
    result = rules.triage(facts, TABLES, now=NOW)
    assert brief(result) == [(5, [], [ORPHAN_EVIDENCE])]
    assert result["causes"]["orphan_processes"] == 1


def test_orphans_with_nothing_failing_blame_every_busy_table():
    facts = healthy_facts()
    facts["spark"]["offload_processes"] = [{"pid": 7}]
    facts["clickhouse"]["tables"]["bronze_trades_kraken"].update(volume="elevated", rows_last_hour=6_000_000)
    result = rules.triage(facts, TABLES, now=NOW)
    assert brief(result) == [(5, ["bronze_trades_kraken"],
                              [ORPHAN_EVIDENCE, "bronze_trades_kraken: 6000000 rows in the last hour (elevated)"])]
    assert result["causes"]["volume_spike_tables"] == ["bronze_trades_kraken"]


def test_a_long_running_query_is_timeout_evidence():
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [failed_run(TIMEOUT_LINE)]
    facts["clickhouse"]["long_running_queries"] = [{"elapsed": 612.5, "query": "SELECT * FROM k2.t WHERE " + "x" * 200}]
    result = rules.triage(facts, TABLES, now=NOW)
    assert brief(result) == [(5, ["bronze_trades_binance"], [
        f"log: {TIMEOUT_LINE}", "long-running ClickHouse query (612.5 s): SELECT * FROM k2.t WHERE " + "x" * 95])]
    assert result["causes"]["long_running_queries"] == 1


def test_a_long_running_query_without_a_timeout_is_no_finding():
    facts = healthy_facts()
    facts["clickhouse"]["long_running_queries"] = [{"elapsed": 612.5, "query": "SELECT 1"}]
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["status"] == "healthy" and result["causes"]["long_running_queries"] == 0


# ---------------------------------------------------------------- root causes, blind probes, alerts, TTL

def test_prefect_db_down_explains_an_otherwise_unknown_failure():
    facts = _down(healthy_facts(), "k2-prefect-db")
    facts["prefect"]["flow_runs"] = [failed_run("something odd", message="boom")]
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["status"] == "degraded" and result["scenarios"] == [] and result["blind"] == []
    [cause] = result["root_causes"]
    assert {k: v for k, v in cause.items() if k != "next_action"} == {
        "component": "prefect_db", "container": "k2-prefect-db",
        "title": "PostgreSQL (k2-prefect-db): Prefect's database and the offload watermarks",
        "evidence": ["k2-prefect-db: container exited (exit code 0)"], "consequences": ["flow run r1 FAILED: boom"]}
    assert cause["next_action"].startswith("Start k2-prefect-db (never re-create it")


def test_prefect_server_down_is_a_root_cause_with_its_evidence_and_next_step():
    facts = _down(healthy_facts(prefect={"reachable": False, "error": "Connection refused"}), "k2-prefect-server", 1)
    [cause] = rules.triage(facts, TABLES, now=NOW)["root_causes"]
    assert {k: v for k, v in cause.items() if k != "next_action"} == {
        "component": "prefect_server", "container": "k2-prefect-server",
        "title": "Prefect server (k2-prefect-server): API, scheduler, work pools",
        "evidence": ["k2-prefect-server: container exited (exit code 1)"],
        "consequences": ["Prefect API unreachable: Connection refused"]}
    assert cause["next_action"].startswith("Start k2-prefect-server, wait until its API answers")


def test_a_failed_spark_probe_is_blind_unless_the_spark_container_is_down():
    error = "ps in the Spark container failed: exec failed (rc None)"
    result = rules.triage(healthy_facts(spark={"reachable": False, "error": error, "offload_processes": []}), TABLES, now=NOW)
    assert result["status"] == "blind" and result["alerting_blind"] is False  # Spark is not the alerting path
    assert result["blind"] == [{"component": "Spark container probes", "probe": "spark", "cause": error,
                                "monitoring": False}]
    facts = _down(healthy_facts(spark={"reachable": False, "error": error, "offload_processes": []}), "k2-spark-iceberg")
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["blind"] == [] and brief(result) == [(3, [], ["k2-spark-iceberg: container exited (exit code 0)"])]


def test_a_clickhouse_auth_failure_is_blind_even_next_to_scenario_2():
    facts = healthy_facts(clickhouse={"reachable": False, "error": "Code: 516. Authentication failed"})
    facts["containers"]["k2-clickhouse"]["networks"] = []
    result = rules.triage(facts, TABLES, now=NOW)
    assert brief(result) == [(2, [], ["k2-clickhouse is not attached to network k2-network"])]
    assert [b["cause"] for b in result["blind"]] == ["Code: 516. Authentication failed"]


def test_a_blind_business_probe_does_not_make_alerting_blind():
    result = rules.triage(healthy_facts(iceberg={"reachable": False, "error": "no answer"}), TABLES, now=NOW)
    assert result["status"] == "blind" and result["alerting_blind"] is False
    assert not any(line.startswith("ALERTING IS BLIND") for line in rules.summary_lines(result))


def test_prometheus_and_alertmanager_down_are_both_listed_as_monitoring():
    result = rules.triage(healthy_facts(alerts={"reachable": False, "error": "Connection refused"},
                                        alertmanager={"reachable": False, "error": "timed out"}), TABLES, now=NOW)
    assert result["alerting_blind"] is True and result["prometheus_metrics_exported"] is False
    assert [(b["probe"], b["cause"], b["monitoring"]) for b in result["blind"]] == [
        ("alerts", "Connection refused", True), ("alertmanager", "timed out", True)]


def test_an_alert_is_a_failure_when_the_newest_finished_run_failed():
    # stale only after a COMPLETED run: here the newest finished run FAILED, so the alert stands
    facts = healthy_facts(alerts={"reachable": True, "alert_tables": ["bronze_trades_kraken"], "metrics_empty": False})
    facts["prefect"]["flow_runs"] = [{"name": "now", "state_type": "RUNNING"}, failed_run("x"),
                                     {"name": "ok", "state_type": "COMPLETED"}]
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["stale_alert_tables"] == [] and result["failing_tables"] == ["bronze_trades_kraken"]
    assert brief(result) == [("unknown", ["bronze_trades_kraken"], [
        "alert IcebergOffloadConsecutiveFailures active for bronze_trades_kraken",
        "flow run r1 FAILED: Flow run encountered an exception"])]


def test_an_alert_with_a_watermark_at_three_failures_is_not_stale():
    facts = healthy_facts(alerts={"reachable": True, "alert_tables": ["bronze_trades_kraken"], "metrics_empty": False},
                          prefect={"reachable": True, "worker_online": True, "running_runs": [],
                                   "flow_runs": [{"name": "ok", "state_type": "COMPLETED"}]})
    facts["watermarks"]["watermarks"]["bronze_trades_kraken"].update(failure_count=3)  # status still "success"
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["stale_alert_tables"] == [] and result["failing_tables"] == ["bronze_trades_kraken"]


def test_a_flow_runs_failed_tables_are_failing_tables():
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [dict(failed_run("x"), failed_tables=["bronze_trades_kraken"])]
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["failing_tables"] == ["bronze_trades_kraken"]
    assert brief(result) == [("unknown", ["bronze_trades_kraken"], ["flow run r1 FAILED: Flow run encountered an exception"])]


def test_summary_names_scenario_tables_evidence_and_next_step():
    facts = healthy_facts()
    facts["prefect"]["flow_runs"] = [failed_run(TIMEOUT_LINE)]
    assert rules.summary_lines(rules.triage(facts, TABLES, now=NOW))[:3] == [
        "Scenario 5: Timeout errors (offload > task timeout) - tables: bronze_trades_binance",
        f"  evidence: log: {TIMEOUT_LINE}",
        f"  next: {rules.NEXT_ACTIONS[5]}"]


def test_ttl_headroom_line_names_the_tightest_table():
    facts = healthy_facts()
    facts["clickhouse"]["tables"]["bronze_trades_kraken"]["ttl_headroom_seconds"] = 36000.0
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["ttl_headroom_seconds"] == {"bronze_trades_binance": 600000.0, "bronze_trades_kraken": 36000.0}
    assert result["min_ttl_headroom_seconds"] == 36000.0
    assert "TTL headroom: 10.0 h for bronze_trades_kraken before ClickHouse deletes rows not yet offloaded" \
        in rules.summary_lines(result)


@pytest.mark.parametrize("seconds,line", [
    (-1800.0, "TTL headroom: -0.5 h for bronze_trades_kraken before ClickHouse deletes rows not yet offloaded"
              " - DATA LOSS POSSIBLE: escalate"),
    (0.0, "TTL headroom: 0.0 h for bronze_trades_kraken before ClickHouse deletes rows not yet offloaded"
          " - DATA LOSS POSSIBLE: escalate"),
    (60.0, "TTL headroom: 0.0 h for bronze_trades_kraken before ClickHouse deletes rows not yet offloaded"),
])
def test_ttl_headroom_gone_says_data_loss_possible(seconds, line):
    facts = healthy_facts()
    facts["clickhouse"]["tables"]["bronze_trades_kraken"]["ttl_headroom_seconds"] = seconds
    assert line in rules.summary_lines(rules.triage(facts, TABLES, now=NOW))


def test_ttl_headroom_computed_from_the_watermark_when_clickhouse_gave_none():
    facts = healthy_facts()
    facts["clickhouse"]["tables"] = {"bronze_trades_binance": {"ttl": {"interval_seconds": 86400}},
                                     "bronze_trades_kraken": {"ttl": {"interval_seconds": 86400}}}
    facts["watermarks"]["watermarks"]["bronze_trades_kraken"]["timestamp"] = "1970-01-01T00:00:00+00:00"
    result = rules.triage(facts, TABLES, now=NOW)
    # 11:50 watermark + 1 day - 12:00; the epoch watermark ("never offloaded") gives no figure
    assert result["ttl_headroom_seconds"] == {"bronze_trades_binance": 85800.0}
    assert result["min_ttl_headroom_seconds"] == 85800.0


def test_an_alert_with_a_failed_watermark_is_not_stale_whatever_its_count():
    facts = healthy_facts(alerts={"reachable": True, "alert_tables": ["bronze_trades_kraken"], "metrics_empty": False},
                          prefect={"reachable": True, "worker_online": True, "running_runs": [],
                                   "flow_runs": [{"name": "ok", "state_type": "COMPLETED"}]})
    facts["watermarks"]["watermarks"]["bronze_trades_kraken"].update(status="failed", failure_count=1)
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["stale_alert_tables"] == [] and result["failing_tables"] == ["bronze_trades_kraken"]


def test_ttl_headroom_gone_is_never_healthy_even_without_a_scenario():
    facts = healthy_facts()
    facts["clickhouse"]["tables"]["bronze_trades_binance"]["ttl_headroom_seconds"] = -60.0
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["scenarios"] == [] and result["status"] == "degraded"
    lines = rules.summary_lines(result)
    assert not any("looks healthy" in line for line in lines)
    assert any("DATA LOSS POSSIBLE" in line for line in lines), lines


# ---------------------------------------------------------------- facts_from_raw, whole

SPARK_PS = "  1 100 sleep infinity\n 42  75 python3 /home/iceberg/offload/offload_generic.py --source-table t1\n"


def _docker_raw(**kw):
    base = {"reachable": True, "error": None, "errors": {},
            "containers": {"k2-spark-iceberg": {"name": "k2-spark-iceberg", "status": "running"}},
            "processes": {"k2-spark-iceberg": {"rc": 0, "output": SPARK_PS, "error": None}},
            "files": [{"container": "other", "path": "/x.jar", "present": False, "error": None},
                      {"container": "k2-spark-iceberg", "path": "/opt/j.jar", "present": True, "error": None}]}
    base.update(kw)
    return base


def test_the_whole_facts_of_a_healthy_read():
    prefect = {"finished": 1, "reachable": True, "error": None, "flow_runs": [], "invocation": {"module_args": {}},
               "ansible_job_id": "j1", "results_file": "/r", "started": 1, "changed": False, "failed": False,
               "item": "prefect", "attempts": 2}
    names = {"spark": "k2-spark-iceberg", "clickhouse": "k2-clickhouse"}
    facts = rules.facts_from_raw({"network_name": "k2-net", "container_names": names, "docker": _docker_raw(),
                                  "probes": {"prefect": prefect}})
    assert facts == {
        "network_name": "k2-net", "container_names": names,
        "containers": {"k2-spark-iceberg": {"name": "k2-spark-iceberg", "status": "running"}},
        "prefect": {"reachable": True, "error": None, "flow_runs": []},  # the async wrapper's keys are dropped
        "docker": {"reachable": True},
        "spark": {"reachable": None, "error": None, "jdbc_path": "/opt/j.jar", "jdbc_present": True,
                  "warehouse_write": {}, "offload_processes": [{"pid": 42, "elapsed_seconds": 75, "table": "t1",
                                         "args": "python3 /home/iceberg/offload/offload_generic.py --source-table t1"}]}}


def test_without_container_names_the_spark_container_is_k2s_and_the_configured_jar_path_wins():
    facts = rules.facts_from_raw({"docker": _docker_raw(), "jdbc_path": "/opt/spark/jars/ch.jar"})
    assert facts["container_names"] == {} and facts["network_name"] is None
    assert facts["spark"]["offload_processes"][0]["pid"] == 42 and facts["spark"]["jdbc_path"] == "/opt/spark/jars/ch.jar"


@pytest.mark.parametrize("status, reachable", [("running", False), ("exited", None)])
def test_a_failed_ps_names_its_output_and_exit_code_and_reads_no_job_or_jar(status, reachable):
    docker = _docker_raw(containers={"k2-spark-iceberg": {"name": "k2-spark-iceberg", "status": status}},
                         processes={"k2-spark-iceberg": {"rc": 126, "output": " OCI runtime exec failed \n",
                                                         "error": None}})
    spark = rules.facts_from_raw({"container_names": {"spark": "k2-spark-iceberg"}, "docker": docker})["spark"]
    assert spark == {"reachable": reachable, "error": "ps in the Spark container failed: OCI runtime exec failed (rc 126)",
                     "jdbc_path": "/opt/j.jar", "jdbc_present": None, "warehouse_write": {}, "offload_processes": []}


def test_a_spark_container_never_read_is_not_read_and_a_long_error_is_cut():
    docker = _docker_raw(processes={}, errors={"k2-clickhouse": "x"}, error=None)
    facts = rules.facts_from_raw({"docker": docker})
    assert facts["docker"] == {"reachable": False, "error": "no answer"}
    assert facts["spark"]["error"] == "ps in the Spark container failed: not read (rc None)"
    long_error = "E" * 500 + " tail"
    facts = rules.facts_from_raw({"docker": _docker_raw(reachable=False, error=long_error)})
    assert facts["docker"] == {"reachable": False, "error": "E" * 400}
    ps_error = "P" * 300
    docker = _docker_raw(processes={"k2-spark-iceberg": {"rc": 1, "output": "", "error": ps_error}})
    assert rules.facts_from_raw({"docker": docker})["spark"]["error"] == \
        f"ps in the Spark container failed: {'P' * 200} (rc 1)"


# ---------------------------------------------------------------- summary_lines, whole

def test_the_whole_summary_of_a_result_with_every_part():
    result = {
        "status": "degraded",
        "root_causes": [{"title": "PostgreSQL (k2-prefect-db) stopped", "evidence": ["exited (0)"],
                         "consequences": [f"c{i}" for i in range(8)], "next_action": "start it"}],
        "blind": [{"component": "Iceberg metadata", "cause": "permission denied"}],
        "alerting_blind": True,
        "scenarios": [{"scenario": 2, "title": "ClickHouse connectivity", "tables": [],
                       "evidence": [f"e{i}" for i in range(8)], "next_action": "start ClickHouse"},
                      {"scenario": 4, "title": "Watermark", "tables": ["t1", "t2"], "evidence": [],
                       "next_action": "repair"}],
        "stale_alert_tables": ["t1", "t3"],
        "min_ttl_headroom_seconds": -1800.0, "ttl_headroom_seconds": {"t1": 7200.0, "t2": -1800.0},
        "prometheus_metrics_exported": False}
    assert rules.summary_lines(result) == [
        "ROOT CAUSE: PostgreSQL (k2-prefect-db) stopped", "  evidence: exited (0)",
        *[f"  consequence: c{i}" for i in range(6)], "  next: start it",
        "BLIND: Iceberg metadata did not answer: permission denied",
        "ALERTING IS BLIND: Prometheus/Alertmanager are not answering, so IcebergOffloadConsecutiveFailures cannot "
        "fire or notify anyone until they are back.",
        "Scenario 2: ClickHouse connectivity - tables: all", *[f"  evidence: e{i}" for i in range(6)],
        "  next: start ClickHouse",
        "Scenario 4: Watermark - tables: t1, t2", "  next: repair",
        "Alert still firing for t1, t3 although the newest flow run COMPLETED and the watermark is healthy: it clears "
        "by itself within its 15-min window.",
        "TTL headroom: -0.5 h for t2 before ClickHouse deletes rows not yet offloaded - DATA LOSS POSSIBLE: escalate",
        "Prometheus offload metrics absent: diagnosis stands on PostgreSQL and Prefect signals."]


@pytest.mark.parametrize("status, line", [
    ("healthy", "No runbook scenario applies: the offload stack looks healthy."),
    ("blind", "No runbook scenario applies to what the probes could see."),
])
def test_the_whole_summary_without_a_scenario(status, line):
    result = {"status": status, "scenarios": [], "min_ttl_headroom_seconds": 0.0,
              "ttl_headroom_seconds": {"t1": 0.0}, "prometheus_metrics_exported": True}
    assert rules.summary_lines(result) == [
        line, "TTL headroom: 0.0 h for t1 before ClickHouse deletes rows not yet offloaded - DATA LOSS POSSIBLE: escalate"]
    result.update(min_ttl_headroom_seconds=36, ttl_headroom_seconds={"t1": 36})
    assert rules.summary_lines(result)[-1] == "TTL headroom: 0.0 h for t1 before ClickHouse deletes rows not yet offloaded"


def _stock_k2_monitoring(facts):
    """What a stock K2 deploys: Prometheus with no rules loaded, no Alertmanager probed, no offload metric."""
    facts["alerts"].update(rule_loaded=False, metrics_empty=True)
    facts.pop("alertmanager", None)
    return facts


def test_a_stock_k2s_monitoring_is_not_deployed_not_blind_and_the_stack_is_healthy():
    result = rules.triage(_stock_k2_monitoring(healthy_facts()), TABLES, now=NOW)
    assert result["status"] == "healthy" and result["blind"] == [] and not result["alerting_blind"]
    assert result["monitoring_not_deployed"] == [
        "alert rule IcebergOffloadConsecutiveFailures (Prometheus loads no such rule)",
        "Alertmanager (k2_alertmanager_url is empty)", "offload metrics (none exported)"]
    lines = rules.summary_lines(result)
    assert not any("BLIND" in line for line in lines)
    assert sum(line.startswith("MONITORING NOT DEPLOYED: ") for line in lines) == 1
    assert any("alert-driven loop cannot start" in line for line in lines)
    assert not any(line.startswith("Prometheus offload metrics absent") for line in lines)  # said once, above


def test_deployed_monitoring_that_does_not_answer_is_still_blind():
    facts = healthy_facts()
    facts["alertmanager"] = {"reachable": False, "error": "Connection refused"}
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["status"] == "blind" and result["alerting_blind"]
    assert result["monitoring_not_deployed"] == []


def test_deployed_monitoring_is_not_reported_missing():
    facts = healthy_facts()
    facts["alerts"]["rule_loaded"] = True
    facts["alertmanager"] = {"reachable": True}
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["monitoring_not_deployed"] == []
    assert not any(line.startswith("MONITORING") for line in rules.summary_lines(result))


@pytest.mark.parametrize("write, finding", [
    ({"writable": True}, False),
    ({"writable": None, "error": "exec in k2-spark-iceberg failed: 409"}, False),  # not known: no finding
    ({"writable": False}, True),
])
def test_only_a_failed_write_as_sparks_user_is_a_warehouse_finding_whatever_the_mode_and_owner(write, finding):
    facts = healthy_facts()
    facts["iceberg"]["warehouse"].update(mode="0755", uid=1000)  # K2: the operator's checkout, Spark runs as root
    facts["spark"]["warehouse_write"] = {"path": "/home/iceberg/warehouse", **write}
    result = rules.triage(facts, TABLES, now=NOW)
    assert result["causes"]["warehouse_not_writable"] is finding
    assert scenario_numbers(result) == ([3] if finding else [])


@pytest.mark.parametrize("container, scenario", [("k2-prefect-worker", 1), ("k2-clickhouse", 2),
                                                 ("k2-spark-iceberg", 3)])
def test_a_container_that_crashes_and_heals_itself_with_its_restart_policy_is_still_a_finding(container, scenario):
    facts = healthy_facts()
    facts["containers"].setdefault(container, {"name": container, "exists": True, "status": "running"})
    facts["containers"][container].update(status="running", restart_count=4,
                                          started_at=(NOW - timedelta(minutes=3)).isoformat())
    result = rules.triage(facts, TABLES, now=NOW)
    assert scenario_numbers(result) == [scenario]
    assert result["scenarios"][0]["evidence"] == [
        f"{container}: container restarted 4 time(s) by Docker's restart policy, the last 3 min ago: it crashes and "
        "heals itself"]


@pytest.mark.parametrize("update", [
    {"restart_count": 4, "started_at_minutes": 16},   # restarted long ago: healed
    {"restart_count": 0, "started_at_minutes": 1},    # started by hand (docker restart does not count)
    {"restart_count": 4, "started_at_minutes": None},
])
def test_no_restart_by_the_policy_within_the_window_is_no_finding(update):
    facts = healthy_facts()
    minutes = update["started_at_minutes"]
    facts["containers"]["k2-clickhouse"].update(
        restart_count=update["restart_count"],
        started_at=None if minutes is None else (NOW - timedelta(minutes=minutes)).isoformat())
    assert scenario_numbers(rules.triage(facts, TABLES, now=NOW)) == []


def test_clickhouse_memory_above_the_threshold_is_scenario_2_only_while_the_offload_fails_reading_it():
    """A restart drops ClickHouse's caches and queries in flight: high memory alone, with the offload working, is
    reported, never acted on; with the offload failing on it (Code 241), it is Scenario 2's evidence."""
    facts = healthy_facts()
    facts["containers"]["k2-clickhouse"].update(memory_usage=950 * 2**20, memory_limit=1000 * 2**20)
    quiet = rules.triage(facts, TABLES, now=NOW)
    assert quiet["scenarios"] == [] and quiet["status"] == "healthy"
    assert quiet["observations"] == ["k2-clickhouse memory 950 MiB > 90% of its 1000 MiB limit, but the offload is "
                                     "not failing reading ClickHouse: not restarted"]
    assert "Observed, not acted on: k2-clickhouse memory 950 MiB" in "\n".join(rules.summary_lines(quiet))
    facts["prefect"]["flow_runs"] = [failed_run("✗ Offload failed: bronze_trades_kraken",
                                                "Code: 241. DB::Exception: Memory limit (total) exceeded")]
    failing = rules.triage(facts, TABLES, now=NOW)
    assert failing["scenarios"][0]["scenario"] == 2 and failing["observations"] == []
    assert "k2-clickhouse memory 950 MiB > 90% of its 1000 MiB limit" in failing["scenarios"][0]["evidence"]
    assert failing["causes"]["clickhouse_memory"] is True


def _paused(hold_facts):
    facts = healthy_facts(schedule_hold=hold_facts)
    facts["prefect"]["deployment"] = {"exists": True, "paused": True}
    return facts


def test_a_schedule_a_dead_remediation_left_paused_is_a_root_cause_not_healthy():
    dead = {"hold": {"run_id": "cli-7", "paused_at": "2026-11-26T11:00:00Z"}, "owner_alive": False,
            "lock": "stale: no sign of life for 700 s"}
    result = rules.triage(_paused(dead), TABLES, now=NOW)
    assert result["status"] == "degraded" and [c["component"] for c in result["root_causes"]] == ["schedule"]
    assert result["root_causes"][0]["evidence"] == [
        "the offload deployment's schedule was paused by remediation run cli-7 at 2026-11-26T11:00:00Z, which is gone "
        "(lock stale: no sign of life for 700 s): no scheduled offload runs until it is resumed"]
    assert rules.summary_lines(result)[0] == f"ROOT CAUSE: {rules.SCHEDULE_LEFT_PAUSED}"


def test_a_paused_schedule_of_a_live_remediation_or_a_person_is_observed_not_acted_on():
    live = rules.triage(_paused({"hold": {"run_id": "cli-7"}, "owner_alive": True, "lock": "held by run cli-7"}),
                        TABLES, now=NOW)
    person = rules.triage(_paused({}), TABLES, now=NOW)
    for result in (live, person):
        assert result["status"] == "healthy" and result["root_causes"] == [] and len(result["observations"]) == 1
    assert "paused by remediation run cli-7, still at work" in live["observations"][0]
    assert "not by a remediation" in person["observations"][0]
    unread = _paused({"hold": {"run_id": "cli-7"}, "owner_alive": False})
    unread["prefect"]["reachable"] = False  # whether it is paused is then unknown: no finding on a guess
    assert all(c["component"] != "schedule" for c in rules.triage(unread, TABLES, now=NOW)["root_causes"])
