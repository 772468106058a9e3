"""The incident record (module_utils/offload_incident.py, library/offload_incident.py): the record and its schema,
the MTTR rules, the data-loss assessment, the new-failure-mode flag, the Markdown report and the post-mortem
threshold, the JSONL log under concurrent writers, and the module through main() (check mode writes nothing)."""
from __future__ import annotations

import copy
import json
import multiprocessing
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import module_harness
import offload_incident as inc
import offload_plan
import pytest
from module_harness import load_module

T = "bronze_trades_binance"
START = datetime(2026, 11, 29, 10, 0, 0, tzinfo=timezone.utc)  # the run's start


def ts(minutes: float = 0, seconds: float = 0) -> str:
    return (START + timedelta(minutes=minutes, seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def remediation(**kw) -> dict:
    base = {"report_version": 2, "kind": "k2-offload-remediation", "host": "k2-lab", "status": "recovered",
            "message": "scenario(s) 2 for table(s) bronze_trades_binance; then verify", "escalation": None,
            "escalation_rule": None, "check_mode": False, "run_id": "cli-4242",
            "lock": {"outcome": "acquired", "broken": None,
                     "holder": {"run_id": "cli-4242", "who": "oncall@ops-1", "control_node": "ops-1", "token": "t0k3n"}},
            "started_at": ts(0), "seconds_elapsed": 600.0, "diagnosis_status": "degraded",
            "diagnosis": [], "root_causes": [], "blind": [], "remediated_scenarios": [2], "tables": [T],
            "outcomes": [{"scenario": 2, "actions": ["start k2-clickhouse (exited, exit code 137, OOMKilled)"],
                          "stop_reason": "exited, exit code 137, OOMKilled", "exit_code": 137,
                          "error_lines": ["Killed process 1 (clickhouse-serv)"], "manual_offload": "ok"}],
            "verification": {"flow_run": {"name": "inventive-mantis", "id": "r1", "state_type": "COMPLETED",
                                          "start_time": ts(6), "end_time": ts(8)},
                             "crashed_runs": [], "watermarks_before": {}, "watermarks_after": [ts(3)],
                             "truth": [{"table": T, "hot_rows": 1000, "cold_rows": 1000, "missing": 0, "duplicated": 0}]}}
    base.update(kw)
    return base


def alert(state="firing", active_at=None, table=T) -> dict:
    return {"state": state, "labels": {"alertname": "IcebergOffloadConsecutiveFailures", "table": table},
            "active_at": active_at or ts(-20)}


def diagnosis(alerts=(), duration=None, **kw) -> dict:
    base = {"kind": "k2-offload-diagnosis", "host": "k2-lab", "generated_at": ts(0, 20), "duration_seconds": 12.0,
            "status": "degraded", "root_causes": [], "blind": [], "failing_tables": [T],
            "scenarios": [{"scenario": 2, "key": "clickhouse_connectivity", "title": "ClickHouse connectivity failure",
                           "tables": [T], "evidence": ["k2-clickhouse: container exited (exit code 137, OOMKilled)"]}],
            "ttl_headroom_seconds": {T: 600000.0}, "min_ttl_headroom_seconds": 600000.0,
            "facts": {"alerts": {"reachable": True, "alerts": list(alerts),
                                 "rule": {"duration": duration} if duration is not None else None}}}
    base.update(kw)
    return base


NOW = START + timedelta(hours=5)


def record(rem=None, diag=None, **kw) -> dict:
    return inc.build_record(rem or remediation(), diagnosis() if diag is None else diag, now=NOW, **kw)


# ---------------------------------------------------------------- the record

def test_record_has_its_schema_identity_and_outcome():
    r = record()
    assert (r["schema_version"], r["kind"]) == (1, "k2-offload-incident")
    assert r["incident_id"] == "k2-lab-20261129T100000Z-cli-4242"  # detection = the run's start (diagnosis later)
    assert r["run"] == {"run_id": "cli-4242", "kind": "cli", "pid": 4242, "check_mode": False, "who": "oncall@ops-1",
                        "control_node": "ops-1"}
    assert r["outcome"] == {"status": "recovered", "resolved": True, "escalation": None, "escalation_rule": None,
                            "message": "scenario(s) 2 for table(s) bronze_trades_binance; then verify"}
    assert r["plan"] == {"message": "scenario(s) 2 for table(s) bronze_trades_binance; then verify",
                         "root_cause_steps": [], "scenarios": [2]}
    assert r["times"]["remediation_started_at"] == ts(0) and r["times"]["finished_at"] == ts(10)
    assert r["times"]["resolved_at"] == ts(10) and r["recorded_at"] == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert r["diagnosis"]["scenarios"][0]["evidence"] == ["k2-clickhouse: container exited (exit code 137, OOMKilled)"]
    assert r["actions"] == [{"scenario": 2, "step": None, "at": None,
                             "actions": ["start k2-clickhouse (exited, exit code 137, OOMKilled)"],
                             "error_lines": ["Killed process 1 (clickhouse-serv)"],
                             "details": {"stop_reason": "exited, exit code 137, OOMKilled", "exit_code": 137,
                                         "manual_offload": "ok"}}]
    assert r["verification"]["flow_run"]["state_type"] == "COMPLETED" and r["verification"]["truth_clean"] is True
    json.dumps(r)  # one JSON line


@pytest.mark.parametrize("run_id,expected", [
    ("awx-job-812", {"kind": "awx", "awx_job_id": 812}),
    ("cli-77", {"kind": "cli", "pid": 77}),
    ("eda-rulebook-3", {"kind": "custom"}),
])
def test_run_identity_tells_awx_from_cli(run_id, expected):
    run = record(remediation(run_id=run_id))["run"]
    assert {k: run[k] for k in expected} == expected and run["run_id"] == run_id
    # the lock's holder is this run only when the run ids match: who/control_node are not another run's
    assert ("who" in run) is (run_id == "cli-4242")


def test_in_progress_run_does_not_take_the_lock_holders_identity():
    rem = remediation(status="in_progress", lock={"outcome": "busy", "holder": {"run_id": "cli-4242", "who": "other"}})
    assert "who" not in record(rem)["run"]


def test_a_remediation_report_is_required():
    with pytest.raises(inc.IncidentError, match=r"^remediation must be remediate.yml's report .*got 'k2-offload-diagnosis'"):
        inc.build_record(diagnosis(), {})


def test_escalation_rule_is_read_from_the_line_when_the_report_lacks_it():
    rem = remediation(status="escalated", escalation="ESCALATE (root cause is unclear): the diagnosis is blind - x")
    assert record(rem)["outcome"]["escalation_rule"] == "root cause is unclear"


# ---------------------------------------------------------------- MTTR rules

def test_mttr_from_the_alert_start_prometheus_active_at_plus_for():
    r = record(diag=diagnosis([alert(active_at=ts(-20))], duration=300))
    assert r["alert"]["started_at"] == ts(-15) and r["alert"]["active_since"] == ts(-20)
    assert r["alert"]["source"] == "Prometheus activeAt + the rule's for"
    assert r["mttr"] == {"seconds": 1500.0, "from": "alert_start", "from_time": ts(-15), "to_time": ts(10),
                         "human": "25 min 00 s", "reason": None}


def test_mttr_uses_the_earliest_firing_table():
    r = record(diag=diagnosis([alert(active_at=ts(-10)), alert(active_at=ts(-30), table="silver_trades")], duration=0))
    assert r["alert"]["started_at"] == ts(-30) and set(r["alert"]["tables"]) == {T, "silver_trades"}


def test_given_alert_start_wins_over_prometheus():
    r = record(diag=diagnosis([alert(active_at=ts(-20))], duration=300), alert_started_at="2026-11-29T09:40:00.123Z")
    assert r["alert"]["source"] == "given (Alertmanager startsAt)" and r["mttr"]["from_time"] == ts(-20)
    assert r["mttr"]["seconds"] == 1800.0


def test_mttr_from_detection_without_alert_and_says_so():
    r = record(diag=diagnosis([alert(state="pending", active_at=ts(-2))]))
    assert r["alert"]["started_at"] is None and r["alert"]["active_since"] == ts(-2)  # pending: never fired
    assert r["mttr"]["from"] == "detection" and r["mttr"]["from_time"] == ts(0)  # the run's start
    assert r["mttr"]["seconds"] == 600.0


def test_detection_is_the_diagnosis_start_when_it_came_first():
    # use_report=true: diagnose.yml ran before remediate.yml; detection is when that diagnosis started
    r = record(diag=diagnosis(generated_at=ts(-3), duration_seconds=10))
    assert r["times"]["detected_at"] == ts(-3, -10) and r["mttr"]["from_time"] == ts(-3, -10)
    assert r["mttr"]["seconds"] == 790.0


def test_given_detection_time_wins():
    r = record(detected_at="2026-11-29T09:50:00Z")
    assert r["times"]["detected_at"] == ts(-10) and r["mttr"]["seconds"] == 1200.0


@pytest.mark.parametrize("status", ["escalated", "healthy", "in_progress", "alerting_blind", "check"])
def test_no_mttr_unless_recovered(status):
    r = record(remediation(status=status))
    assert r["mttr"]["seconds"] is None and r["mttr"]["reason"] == inc.NO_MTTR[status]
    assert r["times"]["resolved_at"] is None and r["outcome"]["resolved"] is False


def test_a_bad_alert_start_is_one_line_naming_it():
    with pytest.raises(inc.IncidentError, match=r"^alert_started_at 'yesterday' is not an ISO-8601 time"):
        record(alert_started_at="yesterday")


# ---------------------------------------------------------------- post-mortem threshold

@pytest.mark.parametrize("status,elapsed,due", [
    ("recovered", 3600.0, False),   # exactly one hour: not "more than 1 hour"
    ("recovered", 3601.0, True),
    ("escalated", 3700.0, True),
    ("escalated", 600.0, False),
    ("healthy", 7200.0, False),     # nothing was remediated: no outage handled
])
def test_postmortem_only_past_one_hour_of_a_handled_outage(status, elapsed, due):
    rem = remediation(status=status, seconds_elapsed=elapsed)
    r = record(rem, diagnosis(generated_at=ts(0), duration_seconds=0))
    assert r["postmortem"]["due"] is due and r["outage_seconds"] == elapsed


def test_postmortem_threshold_counts_from_the_alert_start():
    r = record(remediation(seconds_elapsed=600.0), diagnosis([alert(active_at=ts(-55))], duration=0))
    assert r["outage_seconds"] == 3900.0 and r["postmortem"]["due"] is True
    assert r["postmortem"]["reason"] == "outage 1 h 05 min from alert start exceeded 1 h 00 min"


# ---------------------------------------------------------------- new failure mode

UNKNOWN = {"scenario": "unknown", "key": "unknown", "title": "Failures without a known cause", "tables": [T],
           "evidence": ["flow run x FAILED: Py4JJavaError: something new"]}


def test_unknown_failure_mode_is_flagged_with_its_evidence():
    r = record(remediation(status="escalated"), diagnosis(status="unknown", scenarios=[UNKNOWN]))
    assert r["new_failure_mode"] == {"flag": True, "note": "new failure mode: update the runbook",
                                     "evidence": ["flow run x FAILED: Py4JJavaError: something new"]}


def test_known_scenario_or_root_cause_is_not_a_new_failure_mode():
    assert record()["new_failure_mode"] == {"flag": False, "note": None, "evidence": []}
    root = diagnosis(scenarios=[], root_causes=[{"component": "prefect_db", "title": "PostgreSQL", "evidence": ["e"]}])
    assert record(diag=root)["new_failure_mode"]["flag"] is False


def test_unknown_status_without_an_unknown_entry_is_still_flagged():
    r = record(diag=diagnosis(status="unknown", scenarios=[]))
    assert r["new_failure_mode"]["flag"] is True and r["new_failure_mode"]["evidence"]


# ---------------------------------------------------------------- data loss

def truth(**kw):
    return {"table": T, "hot_rows": 1000, "cold_rows": 1000, "missing": 0, "duplicated": 0, **kw}


@pytest.mark.parametrize("headroom,rows,rule,verdict", [
    (600000.0, [truth()], None, "none_found"),
    (-5.0, [truth()], None, "loss_suspected"),
    (600000.0, [truth(missing=12)], None, "gap"),
    (600000.0, [truth(duplicated=31)], None, "duplicates"),
    (600000.0, [truth(missing=1, duplicated=2)], offload_plan.RULE_DATA_LOSS, "gap"),  # explained by the truth check
    (600000.0, [], offload_plan.RULE_DATA_LOSS, "loss_suspected"),
    (600000.0, [], None, "not_checked"),
    (600000.0, [truth(error="ClickHouse unreachable", missing=None, duplicated=None)], None, "not_checked"),
])
def test_data_loss_verdict(headroom, rows, rule, verdict):
    rem = remediation(escalation_rule=rule, verification={"flow_run": {}, "truth": rows} if rows else None)
    r = record(rem, diagnosis(ttl_headroom_seconds={T: headroom}, min_ttl_headroom_seconds=headroom))
    assert r["data_loss"]["verdict"] == verdict
    assert r["data_loss"]["ttl_headroom_seconds"] == {T: headroom}


def test_gap_finding_gives_the_time_left_before_ttl():
    rem = remediation(verification={"flow_run": {}, "truth": [truth(missing=12)]})
    loss = record(rem, diagnosis(ttl_headroom_seconds={T: 7200.0}, min_ttl_headroom_seconds=7200.0))["data_loss"]
    assert loss["findings"] == [f"rows in the hot tier missing from the cold tier: {T} 12; repair before the TTL "
                                "deletes them (headroom 2 h 00 min)"]


# ---------------------------------------------------------------- timeline

def test_timeline_is_chronological_with_step_times_and_untimed_actions_after_their_step():
    steps = [{"step": "Scenario 2, ClickHouse (k2-clickhouse)", "at": ts(1)},
             {"step": "verification (flow run, watermarks, truth check)", "at": ts(5)}]
    r = record(diag=diagnosis([alert(active_at=ts(-20))], duration=300), step_times=steps)
    assert r["actions"][0]["step"] == "Scenario 2, ClickHouse (k2-clickhouse)" and r["actions"][0]["at"] == ts(1)
    assert r["verification"]["started_at"] == ts(5)
    assert [(e["at"], e["event"].split(":")[0]) for e in r["timeline"]] == [
        (ts(-20), f"IcebergOffloadConsecutiveFailures pending (failures counted) for {T}"),
        (ts(-15), "IcebergOffloadConsecutiveFailures fired (Prometheus activeAt + the rule's for)"),
        (ts(0), "remediation started (run cli-4242)"),
        (ts(0, 20), "diagnosis degraded"),
        (ts(1), "step started"),
        (None, "Scenario 2, ClickHouse (k2-clickhouse)"),
        (ts(5), "verification started"),
        (ts(8), "verifying flow run inventive-mantis COMPLETED"),
        (ts(10), "RECOVERED")]


def test_orchestration_step_time_maps_to_the_root_cause_outcome():
    rem = remediation(outcomes=[{"scenario": "root_cause", "actions": ["start k2-prefect-db"]}])
    r = record(rem, step_times=[{"step": "orchestration (prefect_db)", "at": ts(2)}])
    assert (r["actions"][0]["step"], r["actions"][0]["at"]) == ("orchestration (prefect_db)", ts(2))


# ---------------------------------------------------------------- secrets

def test_secrets_never_reach_the_record_or_the_report():
    diag = diagnosis(scenarios=[{**UNKNOWN, "evidence": ["connect postgresql://prefect:hunter2@prefect-db/prefect",
                                                         "CLICKHOUSE_PASSWORD=ch-pass-9 in env", "plain ch-pass-9"]}])
    rem = remediation(escalation="ESCALATE (root cause is unclear): auth failed for token=abc123def")
    r = record(rem, diag, secrets=["ch-pass-9"])
    text = json.dumps(r) + inc.render_report(r) + inc.render_postmortem(r)
    for secret in ("hunter2", "ch-pass-9", "abc123def", "t0k3n"):
        assert secret not in text
    assert "postgresql://prefect:********@prefect-db/prefect" in r["diagnosis"]["scenarios"][0]["evidence"][0]


# ---------------------------------------------------------------- Markdown

def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def unescaped_pipes(line: str) -> int:
    return line.count("|") - line.count("\\|")


def test_report_carries_the_facts_and_tables_stay_tables():
    rem = remediation(message="scenario | with a pipe and `ticks`")
    r = record(rem, diagnosis([alert(active_at=ts(-20))], duration=300))
    md = inc.render_report(r)
    assert md.startswith(f"# Incident {r['incident_id']}: Iceberg offload on k2-lab - RECOVERED\n")
    assert "| MTTR | 25 min 00 s (from alert start, 2026-11-29T09:45:00Z) |" in md
    assert "| Data loss | none\\_found" not in md and "| Data loss | none_found: truth check clean" in md
    assert "## Timeline" in md and "## Data-loss assessment" in md and "inventive-mantis" in md
    assert "New failure mode" not in md
    for line in table_rows(md):  # a pipe in the data never adds a column
        assert unescaped_pipes(line) in (3, 7), line
    assert f"| {T} | 166 h 40 min | 1000 | 1000 | 0 | 0 |" in md


def test_report_flags_a_new_failure_mode_first():
    md = inc.render_report(record(remediation(status="escalated"), diagnosis(status="unknown", scenarios=[UNKNOWN])))
    assert md.splitlines()[2].startswith("> **New failure mode: update the runbook.**")
    assert "> - `flow run x FAILED: Py4JJavaError: something new`" in md
    assert "**Unknown failure mode**" in md


@pytest.mark.parametrize("text,expected", [("plain", "`plain`"), ("a `b` c", "`` a `b` c ``"), ("``x", "``` ``x ```")])
def test_code_spans_survive_backticks(text, expected):
    assert inc.md_code(text) == expected


def test_postmortem_skeleton_has_timeline_root_cause_and_action_items():
    rem = remediation(status="escalated", seconds_elapsed=4000.0, escalation_rule="root cause is unclear",
                      escalation="ESCALATE (root cause is unclear): x")
    r = record(rem, diagnosis(status="unknown", scenarios=[UNKNOWN]))
    pm = inc.render_postmortem(r)
    for heading in ("## Timeline", "## Root cause analysis", "## Action items", "## Impact"):
        assert heading in pm
    assert "| 1 | Update the runbook with this new failure mode" in pm
    assert "| 2 | Resolve the escalation: root cause is unclear |  |  |" in pm.splitlines()  # owner, due: to fill
    assert "Cold tier stale from 2026-11-29T10:00:00Z to not resolved yet" in pm


@pytest.mark.parametrize("seconds,text", [(None, "unknown"), (45, "45 s"), (125, "2 min 05 s"), (3900, "1 h 05 min"),
                                          (-90, "-1 min 30 s")])
def test_human_duration(seconds, text):
    assert inc.human_duration(seconds) == text


# ---------------------------------------------------------------- the incident log

def _append_many(path: str, worker: int, count: int) -> None:
    for i in range(count):
        inc.append_record(path, {"incident_id": f"w{worker}-{i}", "payload": "x" * 5000, "worker": worker})


def test_two_concurrent_writers_never_interleave(tmp_path):
    path = str(tmp_path / "incidents.jsonl")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, w, 40)) for w in (1, 2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    lines = Path(path).read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one whole record
    assert len(records) == 80 and len({r["incident_id"] for r in records}) == 80
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_same_incident_is_appended_once_and_check_mode_writes_nothing(tmp_path):
    path = str(tmp_path / "incidents.jsonl")
    r = record()
    assert inc.append_record(path, r, check_mode=True) is True and not os.path.exists(path)
    assert inc.append_record(path, r) is True
    assert inc.append_record(path, r, check_mode=True) is False
    assert inc.append_record(path, r) is False
    assert len(Path(path).read_text().splitlines()) == 1


def test_a_torn_last_line_does_not_swallow_the_next_record(tmp_path):
    path = tmp_path / "incidents.jsonl"
    path.write_text('{"incident_id": "a"}\n{"incident_id": "b", "half')  # a writer died mid-line
    inc.append_record(str(path), {"incident_id": "c"})
    assert path.read_text().splitlines()[-1] == '{"incident_id": "c"}'


def test_an_unusable_log_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(inc.IncidentError, match=rf"^cannot open the incident log {blocker}/log.jsonl: Not a directory$"):
        inc.append_record(str(blocker / "log.jsonl"), {"incident_id": "x"})


# ---------------------------------------------------------------- the module through main()

@pytest.fixture(scope="module")
def mod():
    return load_module("offload_incident")


def run_main(mod, monkeypatch, args: dict, check_mode: bool, diff: bool = False) -> dict:
    return module_harness.run_main(mod, monkeypatch, args, check_mode, diff)


def module_args(tmp_path, **kw) -> dict:
    return {"remediation": remediation(seconds_elapsed=4000.0), "diagnosis": diagnosis(),
            "log_path": str(tmp_path / "incidents" / "incidents.jsonl"), "remediation_report_path": "/r/remediate.json",
            "secrets": ["oncall"], **kw}


def test_module_check_mode_writes_nothing_and_returns_the_record(mod, monkeypatch, tmp_path):
    result = run_main(mod, monkeypatch, module_args(tmp_path), check_mode=True)
    assert not (tmp_path / "incidents").exists()
    assert result["changed"] is True and result["appended"] is True
    assert result["record"]["schema_version"] == 1 and result["record"]["postmortem"]["due"] is True
    ident = result["record"]["incident_id"]
    assert result["report_path"] == str(tmp_path / "incidents" / f"incident-{ident}.md")
    assert result["postmortem_path"] == str(tmp_path / "incidents" / f"postmortem-{ident}.md")
    assert "oncall" not in json.dumps(result)  # a secret is masked (the lock holder's who is oncall@ops-1)


def test_module_writes_log_report_and_postmortem_then_is_idempotent(mod, monkeypatch, tmp_path):
    args = module_args(tmp_path)
    check = run_main(mod, monkeypatch, copy.deepcopy(args), check_mode=True)
    real = run_main(mod, monkeypatch, copy.deepcopy(args), check_mode=False, diff=True)
    log = tmp_path / "incidents" / "incidents.jsonl"
    assert real["changed"] is True and real["appended"] is True
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    [line] = log.read_text().splitlines()
    logged = json.loads(line)
    assert logged["incident_id"] == check["record"]["incident_id"] == real["record"]["incident_id"]
    assert logged["reports"]["incident_report"] == real["report_path"]
    assert Path(real["report_path"]).read_text() == real["markdown"] == check["markdown"]
    assert "## Action items" in Path(real["postmortem_path"]).read_text()
    assert real["diff"]["after"] == line + "\n" and real["diff"]["before"] == ""
    again = run_main(mod, monkeypatch, copy.deepcopy(args), check_mode=False)
    assert again["changed"] is False and again["appended"] is False
    assert len(log.read_text().splitlines()) == 1


def test_module_no_postmortem_under_an_hour(mod, monkeypatch, tmp_path):
    result = run_main(mod, monkeypatch, module_args(tmp_path, remediation=remediation()), check_mode=False)
    assert result["postmortem_path"] is None
    assert sorted(p.name for p in (tmp_path / "incidents").iterdir()) == [
        f"incident-{result['record']['incident_id']}.md", "incidents.jsonl"]


@pytest.mark.parametrize("args,expected", [
    ({"alert_started_at": "soon"}, "Incident record: alert_started_at 'soon' is not an ISO-8601 time"),
    ({"remediation": {"kind": "something"}}, "Incident record: remediation must be remediate.yml's report"),
    ({"postmortem_after_seconds": -1}, "postmortem_after_seconds must not be negative"),
])
def test_module_bad_input_is_one_line(mod, monkeypatch, tmp_path, args, expected):
    result = run_main(mod, monkeypatch, module_args(tmp_path, **args), check_mode=False)
    assert result["failed"] is True and result["msg"].startswith(expected) and "\n" not in result["msg"]
    assert not (tmp_path / "incidents").exists()


def test_module_log_path_that_is_a_directory_is_refused(mod, monkeypatch, tmp_path):
    result = run_main(mod, monkeypatch, module_args(tmp_path, log_path=str(tmp_path)), check_mode=False)
    assert result["failed"] is True and result["msg"] == f"log_path must name the incident log file, got '{tmp_path}'."
