"""remediate.yml's decisions (module_utils/offload_plan.py): inputs, lock outcome, escalation rules, root causes
before scenarios, blind diagnoses, tables per step, and escalation lines that name what failed."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import offload_plan as p
import pytest

TABLES = ["bronze_trades_binance", "bronze_trades_kraken", "silver_trades"]
NOW = datetime(2026, 11, 29, 3, 0, tzinfo=timezone.utc)


def diagnosis(**kw):
    base = {"kind": "k2-offload-diagnosis", "host": "k2-lab", "generated_at": NOW.isoformat(), "status": "healthy",
            "scenarios": [], "root_causes": [], "blind": [], "failing_tables": [], "causes": {},
            "min_ttl_headroom_seconds": 500000.0, "ttl_headroom_seconds": {}}
    base.update(kw)
    return base


def scenario(n, tables=(), evidence=("e",)):
    return {"scenario": n, "title": f"S{n}", "tables": list(tables), "evidence": list(evidence), "next_action": "n"}


@pytest.mark.parametrize("value,expected", [
    ([], []), ("", []), (None, []), ("2", [2]), ("2, 4,", [2, 4]), ([5, "1", 1], [1, 5]), (3, [3])])
def test_forced_scenarios_accept_lists_strings_and_numbers(value, expected):
    assert p.parse_forced(value) == expected


@pytest.mark.parametrize("value", ["7", "0", "-1", "two", [1, 9], "1;2", [True], 2.5, {"a": 1}])
def test_forced_scenarios_out_of_range_or_malformed_are_one_line(value):
    with pytest.raises(p.PlanError, match=r"^remediate_scenarios must be among \[1, 2, 3, 4, 5\], got .*\.$"):
        p.parse_forced(value)


@pytest.mark.parametrize("tables,message", [
    ([], "non-empty list"), ("bronze_trades_binance", "non-empty list"), (None, "non-empty list"),
    ([{"source": "a"}, {"source": "a"}], "lists 'a' twice"), ([{"source": "x; DROP"}], "plain identifier"),
    (["bronze_trades_binance"], "plain identifier"), ([{"target": "cold.x"}], "plain identifier")])
def test_bad_table_configurations_are_refused(tables, message):
    with pytest.raises(p.PlanError, match=message):
        p.check_tables(tables)


@pytest.mark.parametrize("budget", [-1, 86401, "soon", "1e9", None])
def test_bad_budgets_are_refused(budget):
    with pytest.raises(p.PlanError, match="remediate_escalation_budget_seconds"):
        p.check_budget(budget)


def test_budget_and_mitigation_accept_their_ranges():
    assert p.check_budget("1") == 1 and p.check_budget(1800) == 1800 and p.check_budget(86400) == 86400
    assert [p.check_mitigation(m) for m in ("auto", "raise", "manual")] == ["auto", "raise", "manual"]
    with pytest.raises(p.PlanError, match="remediate_timeout_mitigation must be one of auto, raise, manual, got 'rise'"):
        p.check_mitigation("rise")


def test_a_held_lock_means_in_progress_whatever_the_diagnosis():
    lock = {"acquired": False, "outcome": "busy",
            "holder": {"since": "2026-11-29T02:59:00Z", "who": "oncall@ops-1", "control_node": "ops-1", "run_id": "cli-7"}}
    result = p.plan(diagnosis(scenarios=[scenario(1)], min_ttl_headroom_seconds=-5), TABLES, [], lock=lock)
    assert result["outcome"] == "in_progress" and result["scenarios"] == [] and result["root_cause_steps"] == []
    assert result["message"] == ("IN PROGRESS: another remediation in progress since 2026-11-29T02:59:00Z, by "
                                 "oncall@ops-1 on ops-1 (run cli-7); this run changed nothing.")


def test_healthy_is_nothing_to_do():
    result = p.plan(diagnosis(), TABLES, [], lock={"acquired": True})
    assert result["outcome"] == "healthy" and result["message"].startswith("HEALTHY")


@pytest.mark.parametrize("headroom", [-30.0, 0.0])
def test_no_ttl_headroom_left_escalates_as_data_loss_before_any_step(headroom):
    result = p.plan(diagnosis(scenarios=[scenario(2)], min_ttl_headroom_seconds=headroom), TABLES, [])
    assert result["outcome"] == "escalate" and result["escalation_rule"] == "data loss suspected"
    assert result["scenarios"] == []


def test_no_ttl_headroom_left_escalates_even_without_a_scenario():
    result = p.plan(diagnosis(status="degraded", min_ttl_headroom_seconds=-1.0), TABLES, [])
    assert result["outcome"] == "escalate" and result["escalation_rule"] == "data loss suspected"


def test_root_causes_come_first_upstream_and_scenarios_follow():
    d = diagnosis(root_causes=[{"component": "prefect_db", "evidence": ["k2-prefect-db: exited"]},
                               {"component": "prefect_server", "evidence": ["x"]}],
                  scenarios=[scenario(1)], failing_tables=["silver_trades", "not_configured"])
    result = p.plan(d, TABLES, [])
    assert result["outcome"] == "remediate"
    assert result["root_cause_steps"] == ["prefect_db", "prefect_server"] and result["scenarios"] == [1]
    assert result["tables"] == ["silver_trades"] and result["verify_tables"] == ["silver_trades"]
    assert result["message"].startswith("root cause(s) prefect_db, prefect_server (start, upstream first) then "
                                        "scenario(s) 1 for table(s) silver_trades")
    assert result["diagnosis_titles"] == ["prefect_db", "prefect_server", "S1"]


def test_a_blind_diagnosis_escalates_as_unclear_and_names_the_component():
    d = diagnosis(status="blind", blind=[{"component": "PostgreSQL watermarks (offload_watermarks)",
                                          "probe": "watermarks", "cause": "password authentication failed",
                                          "monitoring": False}])
    result = p.plan(d, TABLES, [])
    assert result["outcome"] == "escalate" and result["escalation_rule"] == "root cause is unclear"
    assert "PostgreSQL watermarks (offload_watermarks): password authentication failed" in result["message"]


def test_blind_besides_a_scenario_still_escalates_unless_the_scenario_covers_it():
    blind_pg = [{"component": "PostgreSQL watermarks", "probe": "watermarks", "cause": "auth", "monitoring": False}]
    assert p.plan(diagnosis(blind=blind_pg, scenarios=[scenario(2)]), TABLES, [])["outcome"] == "escalate"
    blind_ch = [{"component": "ClickHouse", "probe": "clickhouse", "cause": "auth", "monitoring": False}]
    assert p.plan(diagnosis(blind=blind_ch, scenarios=[scenario(2)]), TABLES, [])["outcome"] == "remediate"


def test_monitoring_blind_alone_is_reported_and_restarted_only_when_asked():
    blind = [{"component": "Prometheus", "probe": "alerts", "cause": "Connection refused", "monitoring": True}]
    report = p.plan(diagnosis(status="blind", blind=blind), TABLES, [])
    assert report["outcome"] == "alerting_blind" and "Prometheus: Connection refused" in report["message"]
    assert not report["restart_monitoring"]
    restart = p.plan(diagnosis(status="blind", blind=blind), TABLES, [], restart_monitoring=True)
    assert restart["outcome"] == "remediate" and restart["restart_monitoring"] and restart["scenarios"] == []


def test_unknown_failures_escalate_as_unclear():
    unknown = {"scenario": "unknown", "title": "Failures without a known cause", "tables": [],
               "evidence": ["flow run r1 FAILED: boom"], "next_action": "Escalate"}
    result = p.plan(diagnosis(scenarios=[unknown]), TABLES, [])
    assert result["outcome"] == "escalate" and "flow run r1 FAILED: boom" in result["message"]


def test_tables_per_scenario_and_the_verify_set():
    d = diagnosis(scenarios=[scenario(2), scenario(4, ["bronze_trades_kraken"]), scenario(5, ["silver_trades"])],
                  failing_tables=["bronze_trades_binance"])
    result = p.plan(d, TABLES, [])
    assert result["scenarios"] == [2, 4, 5]
    assert result["watermark_tables"] == ["bronze_trades_kraken"] and result["timeout_tables"] == ["silver_trades"]
    assert result["verify_tables"] == ["bronze_trades_binance", "bronze_trades_kraken", "silver_trades"]


def test_forced_scenarios_replace_the_diagnosis_and_default_to_the_first_table():
    result = p.plan(diagnosis(scenarios=[scenario(1)]), TABLES, [3])
    assert result["scenarios"] == [3] and result["tables"] == ["bronze_trades_binance"]


def test_report_files_must_be_json_a_diagnosis_this_hosts_and_fresh():
    good = json.dumps(diagnosis())
    assert p.load_report(good, "r.json", "k2-lab", NOW + timedelta(seconds=60), 900)["host"] == "k2-lab"
    cases = [("{not json", "is not JSON"), (json.dumps({"kind": "k2-offload-remediation"}), "is not a diagnosis"),
             (json.dumps(diagnosis(host="other")), "belongs to host 'other', not 'k2-lab'"),
             (json.dumps(diagnosis(generated_at="yesterday")), "no valid generated_at"),
             (json.dumps([1]), "is not a diagnosis")]
    for text, message in cases:
        with pytest.raises(p.PlanError, match=message):
            p.load_report(text, "r.json", "k2-lab", NOW, 900)
    with pytest.raises(p.PlanError, match=r"is stale: written 3600 s ago \(limit 900 s\)"):
        p.load_report(good, "r.json", "k2-lab", NOW + timedelta(hours=1), 900)


def test_a_published_diagnosis_is_this_hosts_entry_checked_like_a_report_file():
    mine, other = diagnosis(), diagnosis(host="k2-lab-b")
    published = {"k2-lab": mine, "k2-lab-b": other}
    assert p.published_report(published, "k2-lab", NOW, 900) is mine
    assert p.published_report(published, "k2-lab-b", NOW, 900) is other
    assert p.published_report({"k2-lab-b": other}, "k2-lab", NOW, 900) is None, "nothing for this host: use the file"
    assert p.published_report(None, "k2-lab", NOW, 900) is None
    with pytest.raises(p.PlanError, match=r"must be a mapping of host to diagnosis"):
        p.published_report([mine], "k2-lab", NOW, 900)
    with pytest.raises(p.PlanError, match=r"k2_offload_diagnosis\['k2-lab'\] belongs to host 'k2-lab-b'"):
        p.published_report({"k2-lab": other}, "k2-lab", NOW, 900)
    with pytest.raises(p.PlanError, match=r"k2_offload_diagnosis\['k2-lab'\] is stale"):
        p.published_report(published, "k2-lab", NOW + timedelta(hours=1), 900)
    with pytest.raises(p.PlanError, match=r"is not a diagnosis report"):
        p.published_report({"k2-lab": "healthy"}, "k2-lab", NOW, 900)


def test_an_exhausted_wait_names_the_check_and_the_last_value_not_unknown_error():
    line = p.escalation_for_failure(
        "Prefect worker (k2-prefect-worker)", "Wait until the worker polls its work pool",
        {"msg": "Task failed: Action failed: Unknown error.", "attempts": 45, "worker_online": False,
         "error": "Prefect API http://127.0.0.1:4200/api is unreachable: Connection refused"}, 112.4, ["Worker not running"])
    assert line.startswith("ESCALATE (root cause is unclear) after 112.4 s: Prefect worker (k2-prefect-worker): "
                           "check 'Wait until the worker polls its work pool' failed: the condition was not met "
                           "after 45 attempts; last seen: "
                           "error=Prefect API http://127.0.0.1:4200/api is unreachable: Connection refused, "
                           "worker_online=false")
    assert "Unknown error" not in line and line.endswith("| diagnosis: Worker not running")


def test_a_failed_step_with_its_own_message_keeps_it():
    line = p.escalation_for_failure("Spark", "Check the JDBC driver", {"msg": "JDBC driver missing: /opt/x.jar"}, 3, [])
    assert "check 'Check the JDBC driver' failed: JDBC driver missing: /opt/x.jar" in line


@pytest.mark.parametrize("task,result,rule", [
    ("Start PostgreSQL", {"unsafe_lines": ["initdb: error"]}, "code or infrastructure change needed"),
    ("Escalate a missing JDBC driver (the image must be rebuilt; automation cannot)", {}, "code or infrastructure change needed"),
    ("Recovered within the escalation budget", {}, "not resolved within 30 minutes"),
    ("No row lost or doubled (truth check)", {}, "data loss suspected"),
    ("Truth check - hot rows vs cold rows up to the watermark", {"msg": "ClickHouse: Connection refused"},
     "root cause is unclear"),
    ("Wait until the worker polls its work pool", {}, "root cause is unclear")])
def test_a_failed_step_falls_under_the_runbook_rule(task, result, rule):
    assert p.failure_rule(task, result) == rule
    assert p.escalation_for_failure("s", task, result, 1, []).startswith(f"ESCALATE ({rule}) after 1.0 s")


# ---------------------------------------------------------------- the whole plan, every key (remediate.yml reads them)

EMPTY_PLAN = {"outcome": None, "message": "", "escalation_rule": None, "root_cause_steps": [], "scenarios": [],
              "restart_monitoring": False, "tables": [], "watermark_tables": [], "timeout_tables": [],
              "verify_tables": [], "not_automated": [], "monitoring_blind": [], "causes": {}, "diagnosis_titles": [],
              "adopt_schedule": False, "test_table": None}


def test_the_whole_plan_of_a_healthy_diagnosis():
    assert p.plan(diagnosis(), TABLES, []) == {
        **EMPTY_PLAN, "outcome": p.NOTHING,
        "message": "HEALTHY: the diagnosis found nothing to remediate; nothing was changed."}


def test_the_whole_plan_when_another_remediation_holds_the_lock():
    lock = {"acquired": False, "holder": {"since": "2026-11-29T02:55:00Z", "who": "awx", "control_node": "cn1",
                                          "run_id": "r-1", "step": "Scenario 2"}}
    result = p.plan(diagnosis(scenarios=[scenario(2, TABLES[:1])]), TABLES, [], lock=lock)
    assert result == {**EMPTY_PLAN, "outcome": p.IN_PROGRESS, "diagnosis_titles": ["S2"],
                      "message": "IN PROGRESS: another remediation in progress since 2026-11-29T02:55:00Z, by awx on "
                                 "cn1 (run r-1, at: Scenario 2); this run changed nothing."}
    anonymous = p.plan(diagnosis(), TABLES, [], lock={"acquired": False})
    assert anonymous["message"] == ("IN PROGRESS: another remediation in progress since ?, by ? on ? (run ?); this run "
                                    "changed nothing.")


def test_the_whole_plan_of_scenarios_2_and_4_after_a_root_cause():
    diag = diagnosis(status="degraded", failing_tables=["silver_trades", "bronze_trades_binance", "not_configured"],
                     scenarios=[scenario(2, ["bronze_trades_binance"]), scenario(4, ["silver_trades"])],
                     root_causes=[{"component": "prefect_db", "title": "PostgreSQL stopped"},
                                  {"component": "prometheus", "title": "Prometheus stopped"}],
                     causes={"clickhouse_memory": True, "spark_oom": True})
    result = p.plan(diag, TABLES, [])
    assert result == {
        **EMPTY_PLAN, "outcome": p.REMEDIATE, "root_cause_steps": ["prefect_db"], "scenarios": [2, 4],
        "tables": ["silver_trades", "bronze_trades_binance"], "watermark_tables": ["silver_trades"],
        "timeout_tables": ["silver_trades", "bronze_trades_binance"],
        "verify_tables": ["silver_trades", "bronze_trades_binance"], "test_table": "bronze_trades_binance",
        "causes": {"clickhouse_memory": True, "spark_oom": True},
        "diagnosis_titles": ["PostgreSQL stopped", "Prometheus stopped", "S2", "S4"],
        "message": "root cause(s) prefect_db (start, upstream first) then scenario(s) 2, 4 for table(s) silver_trades, "
                   "bronze_trades_binance, restarting ClickHouse (memory); then verify with a flow run, the "
                   "watermarks and the truth check."}


def test_a_schedule_a_dead_remediation_left_paused_is_remediated_alone_and_verified():
    left = {"component": "schedule", "title": "Offload schedule left paused by a remediation that is gone",
            "evidence": ["paused by remediation run cli-1"]}
    result = p.plan(diagnosis(status="degraded", root_causes=[left]), TABLES, [])
    assert result == {
        **EMPTY_PLAN, "outcome": p.REMEDIATE, "adopt_schedule": True, "tables": TABLES[:1], "watermark_tables": TABLES[:1],
        "timeout_tables": TABLES[:1], "verify_tables": TABLES[:1], "diagnosis_titles": [left["title"]],
        "test_table": TABLES[0],
        "message": "the schedule a remediation that is gone left paused (adopt its hold, resume it at the end) for "
                   f"table(s) {TABLES[0]}; then verify with a flow run, the watermarks and the truth check."}
    # Beside a scenario, both are done; a root cause the playbook cannot start is not a reason to act.
    both = p.plan(diagnosis(status="degraded", root_causes=[left], scenarios=[scenario(2, TABLES[:1])]), TABLES, [])
    assert both["adopt_schedule"] and both["scenarios"] == [2]
    other = p.plan(diagnosis(status="degraded", root_causes=[{"component": "prometheus"}]), TABLES, [])
    assert other["outcome"] == p.NOTHING and not other["adopt_schedule"]


def test_an_alert_driven_run_stands_down_after_an_escalation_a_person_does_not():
    escalated = {"acquired": True, "holder": {"run_id": "cli-2"},
                 "escalation": {"at": "2026-11-29T03:00:00Z", "run_id": "cli-1", "rule": "root cause is unclear"}}
    diag = diagnosis(status="degraded", scenarios=[scenario(2, TABLES[:1])])
    at = datetime(2026, 11, 29, 3, 29, 59, tzinfo=timezone.utc)
    stood_down = p.plan(diag, TABLES, [], lock=escalated, alert_driven=True, standdown_seconds=1800, now=at)
    assert stood_down == {**EMPTY_PLAN, "outcome": p.IN_PROGRESS, "diagnosis_titles": ["S2"], "message": (
        "IN PROGRESS: escalated to people at 2026-11-29T03:00:00Z by run cli-1 (root cause is unclear); an "
        "alert-driven run stands down for 1800 s after an escalation, so that it never acts beside them; this run "
        "changed nothing (run remediate.yml by hand to act anyway).")}
    later = at + timedelta(seconds=1)  # the runbook's budget has passed: the loop may try again
    assert p.plan(diag, TABLES, [], lock=escalated, alert_driven=True, standdown_seconds=1800, now=later)[
        "outcome"] == p.REMEDIATE
    assert p.plan(diag, TABLES, [], lock=escalated, alert_driven=False, standdown_seconds=1800, now=at)[
        "outcome"] == p.REMEDIATE  # a person decided to run it
    torn = {**escalated, "escalation": {"corrupt": True}}
    assert p.plan(diag, TABLES, [], lock=torn, alert_driven=True, standdown_seconds=1800, now=at)[
        "outcome"] == p.REMEDIATE


def test_the_whole_plan_of_scenario_5_without_failing_tables_falls_back_to_the_first_table():
    result = p.plan(diagnosis(status="degraded", scenarios=[scenario(5, ["bronze_trades_kraken"])],
                              causes={"spark_oom": True}), TABLES, [])
    assert {k: result[k] for k in ("tables", "watermark_tables", "timeout_tables", "verify_tables")} == {
        "tables": ["bronze_trades_binance"], "watermark_tables": ["bronze_trades_binance"],
        "timeout_tables": ["bronze_trades_kraken"], "verify_tables": ["bronze_trades_binance", "bronze_trades_kraken"]}
    assert result["message"] == ("scenario(s) 5 for table(s) bronze_trades_binance; then verify with a flow run, the "
                                 "watermarks and the truth check.")  # no Spark restart: that is Scenario 3's


def test_the_whole_plan_when_only_monitoring_is_blind():
    blind = [{"component": "Prometheus", "cause": "connection refused", "probe": "prometheus", "monitoring": True}]
    report_only = p.plan(diagnosis(blind=blind), TABLES, [])
    assert report_only == {**EMPTY_PLAN, "outcome": p.REPORT_ONLY, "monitoring_blind": blind,
                           "message": "ALERTING BLIND: Prometheus: connection refused. The offload itself looks "
                                      "healthy; nothing was changed (set remediate_restart_monitoring=true to start "
                                      "the monitoring containers)."}
    restart = p.plan(diagnosis(blind=blind), TABLES, [], restart_monitoring=True)
    assert restart == {**EMPTY_PLAN, "outcome": p.REMEDIATE, "monitoring_blind": blind, "restart_monitoring": True,
                       "message": "the monitoring containers: alerting is blind (remediate_restart_monitoring=true)."}


def test_no_ttl_headroom_left_escalates_as_data_loss_with_the_headroom_of_each_table():
    diag = diagnosis(min_ttl_headroom_seconds=-60.0, ttl_headroom_seconds={"silver_trades": 10.0,
                                                                             "bronze_trades_binance": -60.0},
                     scenarios=[scenario(2, TABLES[:1], evidence=("ClickHouse refused",))])
    result = p.plan(diag, TABLES, [])
    assert (result["outcome"], result["escalation_rule"]) == (p.ESCALATE, p.RULE_DATA_LOSS)
    assert result["message"] == (
        'ESCALATE (data loss suspected): TTL headroom -60.0 s per table {"bronze_trades_binance": -60.0, '
        '"silver_trades": 10.0}; the hot tier may already have deleted rows the cold tier never got. Evidence: '
        + p.first_evidence(diag))
    assert "ClickHouse refused" in result["message"]
    # Headroom left, however little, is not yet a loss: the remediation goes on.
    assert p.plan(diagnosis(min_ttl_headroom_seconds=0.5, scenarios=[scenario(2)]), TABLES, [])["outcome"] == p.REMEDIATE
    assert p.plan(diagnosis(min_ttl_headroom_seconds=0.0, ttl_headroom_seconds=None), TABLES, [])["message"].startswith(
        "ESCALATE (data loss suspected): TTL headroom 0.0 s per table {};")


def test_a_blind_diagnosis_escalates_naming_every_blind_probe():
    blind = [{"component": "PostgreSQL (watermarks)", "cause": "connection refused", "probe": "watermarks"},
             {"component": "Prefect API", "cause": "timed out", "probe": "prefect"}]
    result = p.plan(diagnosis(blind=blind), TABLES, [])
    assert (result["outcome"], result["escalation_rule"]) == (p.ESCALATE, p.RULE_UNCLEAR)
    assert result["message"] == ("ESCALATE (root cause is unclear): the diagnosis is blind - PostgreSQL (watermarks): "
                                 "connection refused; Prefect API: timed out. Nothing was changed: what cannot be seen "
                                 "could be the cause.")


def test_scenarios_not_automated_here_escalate_with_the_first_ones_evidence_and_next_action():
    s3 = {"scenario": 3, "title": "Spark failures", "tables": [], "evidence": ["exit 137", "OOMKilled"],
          "next_action": "restart Spark"}
    s4 = {"scenario": 4, "tables": []}  # no title, evidence or next action
    result = p.plan(diagnosis(scenarios=[s3, s4]), TABLES, [], automated=(1, 2))
    assert (result["outcome"], result["escalation_rule"]) == (p.ESCALATE, p.RULE_UNCLEAR)
    assert result["not_automated"] == [s3, s4] and result["scenarios"] == []
    assert result["diagnosis_titles"] == ["Spark failures", "4"]
    assert result["message"] == ("ESCALATE (root cause is unclear): scenario(s) 3, 4 are not automated here (Spark "
                                 "failures; ). Evidence: exit 137. Next: restart Spark")
    bare = p.plan(diagnosis(scenarios=[s4]), TABLES, [], automated=(1,))
    assert bare["message"] == "ESCALATE (root cause is unclear): scenario(s) 4 are not automated here (). Evidence: . Next: "


def test_a_lock_result_without_acquired_is_taken_as_acquired():
    assert p.plan(diagnosis(scenarios=[scenario(1)]), TABLES, [], lock={"holder": {"who": "x"}})["outcome"] == p.REMEDIATE


@pytest.mark.parametrize("scenarios, causes, extra", [
    ([3], {"spark_oom": True}, ", restarting Spark after an OOM kill"),
    ([3], {"spark_oom": False, "clickhouse_memory": True}, ""),
    ([2], {"clickhouse_memory": True}, ", restarting ClickHouse (memory)"),
    ([2], {"clickhouse_memory": False, "spark_oom": True}, ""),
    ([2, 3], {"clickhouse_memory": True, "spark_oom": True},
     ", restarting Spark after an OOM kill, restarting ClickHouse (memory)"),
])
def test_the_restarts_a_cause_adds_are_named_only_with_their_scenario(scenarios, causes, extra):
    diag = diagnosis(scenarios=[scenario(n) for n in scenarios], causes=causes, failing_tables=["silver_trades"])
    assert p.plan(diag, TABLES, [])["message"] == (
        f"scenario(s) {', '.join(map(str, scenarios))} for table(s) silver_trades{extra}; then verify with a flow run, "
        "the watermarks and the truth check.")


def test_a_root_cause_alone_plans_no_scenario_step_and_verifies_the_failing_tables():
    diag = diagnosis(root_causes=[{"component": "prefect_server", "title": "Prefect server stopped"}],
                     failing_tables=["bronze_trades_kraken"])
    result = p.plan(diag, TABLES, [])
    assert result["message"] == ("root cause(s) prefect_server (start, upstream first) for table(s) bronze_trades_kraken; "
                                 "then verify with a flow run, the watermarks and the truth check.")
    assert result["verify_tables"] == ["bronze_trades_kraken"] and result["scenarios"] == []


@pytest.mark.parametrize("chosen, verify", [
    ([2], ["bronze_trades_binance"]),
    ([4], ["bronze_trades_binance", "silver_trades"]),
    ([5], ["bronze_trades_binance", "bronze_trades_kraken"]),
    ([4, 5], ["bronze_trades_binance", "silver_trades", "bronze_trades_kraken"]),
])
def test_verification_covers_the_watermark_and_timeout_tables_only_with_their_scenario(chosen, verify):
    diag = diagnosis(failing_tables=["bronze_trades_binance"],
                     scenarios=[scenario(2, ["bronze_trades_binance"]), scenario(4, ["silver_trades"]),
                                scenario(5, ["bronze_trades_kraken"])])
    assert p.plan(diag, TABLES, chosen)["verify_tables"] == verify


@pytest.mark.parametrize("restart, expected", [(False, False), (True, True)])
def test_monitoring_is_restarted_beside_a_remediation_only_when_asked(restart, expected):
    blind = [{"component": "Prometheus", "cause": "exited", "probe": "prometheus", "monitoring": True}]
    result = p.plan(diagnosis(blind=blind, scenarios=[scenario(1)]), TABLES, [], restart_monitoring=restart)
    assert result["outcome"] == p.REMEDIATE and result["restart_monitoring"] is expected
    assert p.plan(diagnosis(scenarios=[scenario(1)]), TABLES, [], restart_monitoring=True)["restart_monitoring"] is False


def test_scenarios_2_and_3_prove_their_fix_on_a_table_whose_watermark_is_sound():
    both = p.plan(diagnosis(status="degraded", failing_tables=[TABLES[0]],
                            scenarios=[scenario(2, [TABLES[0]]), scenario(4, [TABLES[0]])]), TABLES, [])
    assert both["scenarios"] == [2, 4] and both["watermark_tables"] == [TABLES[0]]
    assert both["test_table"] == TABLES[1]  # the first failing table's watermark is repaired only after Scenario 2
    alone = p.plan(diagnosis(status="degraded", failing_tables=[TABLES[1]], scenarios=[scenario(2, [TABLES[1]])]),
                   TABLES, [])
    assert alone["test_table"] == TABLES[1]  # no watermark repair: the failing table itself
    every = p.plan(diagnosis(status="degraded", scenarios=[scenario(3), scenario(4, TABLES)]), TABLES, [])
    assert every["test_table"] == TABLES[0]  # every watermark repaired: no sound table, the first as before
