"""Safe at the edges, on the lab (no mocks): exactly one remediation acts, a stale lock is broken and recorded,
a blind probe is never healthy, and a stopped PostgreSQL or Prefect server is named and healed as the root cause."""
from __future__ import annotations

import http.server
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from ansible_run import run_playbook
from conftest import TABLE, RemediateRun, diagnose, remediate

SECRETS = ("k2-lab-prefect", "k2-lab-clickhouse")


def lock_file(lab):
    return lab.cfg.state_dir / "locks" / "remediation.lock"


def assert_no_secret(output: str) -> None:
    for secret in SECRETS:
        assert secret not in output


def assert_truth_clean(lab) -> None:
    lab.assert_no_row_lost_or_doubled()  # the product's count and the independent oracle, after the playbook's


@pytest.mark.parametrize("count", [2, 3])
def test_remediations_started_together_on_a_stopped_worker_exactly_one_acts(clean_lab, tmp_path, count):
    lab = clean_lab
    lab.fault("worker-stopped")
    runs_before = lab.prefect.run_ids()
    started = [RemediateRun(tmp_path, f"run{i}") for i in range(count)]
    results = [run.result() for run in started]

    acted = [r for r in results if r[1] and r[1]["status"] == "recovered"]
    waited = [r for r in results if "IN PROGRESS: another remediation in progress since" in r[2]]
    assert len(acted) == 1 and len(waited) == count - 1, [(r[0], r[1] and r[1]["status"], r[2][-800:]) for r in results]
    for rc, report, output, stats in waited:
        assert rc == 0 and stats["k2-lab"]["changed"] == 0, output[-2000:]
        assert report is None  # the holder's report is the one that counts
        holder = acted[0][1]["lock"]["holder"]
        assert f"by {holder['who']} on {holder['control_node']} (run {holder['run_id']})" in output
    assert len(lab.prefect.run_ids() - runs_before) == 1  # one verifying flow run, not one per remediation
    assert lab.dc.containers.get("k2-prefect-worker").status == "running"
    assert_truth_clean(lab)
    assert not lock_file(lab).exists()  # released by the holder


def test_a_killed_runs_lock_is_broken_by_the_next_run_and_the_break_recorded(clean_lab, tmp_path):
    lab = clean_lab
    victim = RemediateRun(tmp_path, "victim")
    lab.wait("the victim to take the lock", lambda: lock_file(lab).exists(), timeout=120)
    holder = json.loads(lock_file(lab).read_text())
    victim.run.kill()  # a control node that dies mid-run: nothing releases the lock
    assert lock_file(lab).exists()

    rc, report, output, stats = remediate()
    assert rc == 0, output[-2000:]
    assert report["status"] == "healthy" and report["lock"]["outcome"] == "acquired_after_break", report["lock"]
    broken = report["lock"]["broken"]
    assert broken["stale_holder"]["token"] == holder["token"] and "no longer runs" in broken["reason"]
    record = json.loads((lock_file(lab).parent / "remediation.lock.breaks.jsonl").read_text().splitlines()[-1])
    assert record["stale_holder"]["token"] == holder["token"]
    assert not lock_file(lab).exists()


def _foreign_lock(lab, age_seconds: float, silent_seconds: float) -> dict:
    """A lock taken `age_seconds` ago by a run on another control node (an AWX job pod), whose last heartbeat was
    `silent_seconds` ago."""
    def ago(seconds):
        return (datetime.now(timezone.utc) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    holder = {"who": "awx@awx-job-pod", "control_node": "awx-job-pod", "run_id": "awx-job-4242", "pid": 7,
              "since": ago(age_seconds), "heartbeat": ago(silent_seconds), "step": "Scenario 5 - Timeouts",
              "token": "foreign-token"}
    lock_file(lab).parent.mkdir(parents=True, exist_ok=True)
    lock_file(lab).write_text(json.dumps(holder))
    return holder


def test_a_live_holder_keeps_its_lock_under_any_budget_and_only_silence_breaks_it(clean_lab):
    """A 30-minute manual offload elsewhere, beating: a run with budget 1 changes nothing (the budget is not the
    lock's staleness). Silent for longer than k2_lock_stale_after_seconds (600), the holder is taken for dead."""
    lab = clean_lab
    lab.fault("worker-stopped")
    _foreign_lock(lab, age_seconds=2000, silent_seconds=20)
    rc, report, output, stats = remediate("-e", "remediate_escalation_budget_seconds=1")
    assert rc == 0 and stats["k2-lab"]["changed"] == 0, output[-2000:]
    assert "another remediation in progress since" in output and "by awx@awx-job-pod on awx-job-pod (run awx-job-4242)" in output
    assert lab.dc.containers.get("k2-prefect-worker").status == "exited"  # nothing was touched
    assert json.loads(lock_file(lab).read_text())["token"] == "foreign-token"
    rc, out, _ = run_playbook("playbooks/timeout_revert.yml")  # it restarts the worker: it obeys the lock too
    assert rc != 0 and "IN PROGRESS: awx-job-4242 holds the stack's lock" in json.dumps(out), out.get("stats")
    assert json.loads(lock_file(lab).read_text())["token"] == "foreign-token"

    lab.clear()  # the stale half needs nothing to remediate: the break itself is what is tested
    _foreign_lock(lab, age_seconds=2000, silent_seconds=700)
    rc, report, output, _ = remediate("-e", "remediate_escalation_budget_seconds=1800")
    assert rc == 0 and report["status"] == "healthy", output[-2000:]
    assert report["lock"]["outcome"] == "acquired_after_break"
    assert "no heartbeat from its holder for 70" in report["lock"]["broken"]["reason"]
    assert report["lock"]["broken"]["stale_holder"]["run_id"] == "awx-job-4242"
    assert not lock_file(lab).exists()


def test_a_schedule_held_by_a_killed_run_is_named_and_resumed_by_the_next_run(live_schedule, tmp_path):
    """The schedule is live; a remediation holds it (its scheduled runs deleted) and its control node dies there.
    The diagnosis names the paused schedule a root cause; the next run breaks the lock, adopts the hold, heals the
    stack and resumes the schedule, and no two runs were ever in flight together."""
    lab = live_schedule.lab
    hold = lock_file(lab).with_name("remediation.lock.schedule-hold")
    lab.fault("worker-stopped")
    live_schedule.start(first_in=240)  # live, its first tick after this test's first half
    lab.wait("the schedule's runs to be created", live_schedule.scheduled_runs, timeout=60)
    victim = RemediateRun(tmp_path, "victim")
    lab.wait("the victim to hold the schedule", lambda: hold.exists() and not live_schedule.still_live(), timeout=180)
    victim.run.kill()
    assert live_schedule.scheduled_runs() == []  # the pause deleted what the schedule had created

    report = diagnose()
    causes = {c["component"]: c for c in report["root_causes"]}
    assert report["status"] == "degraded" and "schedule" in causes, report["root_causes"]
    assert "which is gone (lock stale: " in causes["schedule"]["evidence"][0]

    rc, report, output, _ = remediate()
    assert rc == 0 and report["status"] == "recovered", output[-3000:]
    assert "adopted the schedule hold of run cli-" in output and report["lock"]["outcome"] == "acquired_after_break"
    assert live_schedule.still_live() and not hold.exists()
    live_schedule.stop()
    live_schedule.assert_no_runs_overlapped()
    assert_truth_clean(lab)


def test_blind_probes_are_named_never_healthy(clean_lab):
    """A wrong ClickHouse password, a Prefect API that does not answer and a stopped Prometheus, in one diagnosis:
    each is named with its cause (the unit tests prove each alone is enough to leave `healthy`; the wrong
    PostgreSQL password, and each of these through remediate.yml at -vvv, are cases of test_hostile_inputs.py)."""
    lab = clean_lab
    lab.fault("prometheus-stopped")
    report = diagnose("-e", "k2_clickhouse_password=wrong-password", "-e", "k2_prefect_api_url=http://127.0.0.1:1/api")
    assert report["status"] == "blind", report["blind"]
    named = {b["component"]: b["cause"] for b in report["blind"]}
    assert "Authentication failed" in named["ClickHouse"]
    assert "Connection refused" in named["Prefect API"]
    assert "Prometheus" in named and report["alerting_blind"] is True
    assert report["scenarios"] == []  # a wrong password is not a ClickHouse outage


def test_monitoring_down_is_reported_and_restarted_only_when_asked(clean_lab):
    lab = clean_lab
    lab.fault("prometheus-stopped")
    rc, report, output, stats = remediate()
    assert rc == 0 and stats["k2-lab"]["changed"] == 0, output[-2000:]
    assert report["status"] == "alerting_blind" and "ALERTING BLIND: Prometheus" in report["message"]
    assert lab.dc.containers.get("k2-prometheus").status == "exited"

    rc, report, output, _ = remediate("-e", "remediate_restart_monitoring=true")
    assert rc == 0, output[-2000:]
    assert report["status"] == "recovered" and report["verification"] is None  # the offload itself was fine
    assert report["outcomes"] == [{"scenario": "monitoring", "actions": ["start k2-prometheus (exited, exit code 0)"]}]
    assert lab.dc.containers.get("k2-prometheus").status == "running"


@pytest.mark.parametrize("fault,component,container", [
    ("prefect-server-stopped", "prefect_server", "k2-prefect-server"),
    ("prefect-db-stopped", "prefect_db", "k2-prefect-db")])
def test_a_stopped_orchestration_component_is_the_root_cause_and_is_healed(clean_lab, fault, component, container):
    lab = clean_lab
    lab.fault(fault)
    rc, report, output, _ = remediate()
    assert rc == 0, output[-3000:]
    assert report["status"] == "recovered" and report["root_causes"] == [component], report
    assert "ROOT CAUSE: " in output and report["remediated_scenarios"] == []  # not named Scenario 1
    started = [a for o in report["outcomes"] for a in o["actions"]]
    assert any(a.startswith(f"start {container}") for a in started), started
    assert report["verification"]["flow_run"]["state_type"] == "COMPLETED"
    assert_truth_clean(lab)
    assert_no_secret(output)


def test_postgres_with_a_damaged_data_directory_is_escalated_not_started(clean_lab):
    lab = clean_lab
    lab.fault("prefect-db-unsafe")
    rc, report, output, _ = remediate()
    assert rc != 0
    assert report["status"] == "escalated" and report["root_causes"] == ["prefect_db"]
    escalation = report["escalation"]
    assert "orchestration (prefect_db)" in escalation and "k2-prefect-db not started: starting it is not safe" in escalation
    assert "exists but is not empty" in escalation
    assert lab.dc.containers.get("k2-prefect-db").status == "exited"  # never started again


def _manual_offload(tmp_path, wait_seconds: int) -> tuple[int, str]:
    play = tmp_path / f"manual-offload-{wait_seconds}.yml"
    play.write_text(json.dumps([{"name": "manual offload", "hosts": "k2_docker_hosts", "gather_facts": False,
                                 "roles": [{"role": "offload_manual_offload",
                                            "vars": {"offload_manual_offload_table": TABLE,
                                                     "offload_manual_offload_wait_for_runs_seconds": wait_seconds}}]}]))
    rc, out, stderr = run_playbook(play, timeout=600)
    return rc, json.dumps(out) + stderr


def test_a_manual_offload_waits_for_the_run_in_flight_and_refuses_when_it_does_not_end(clean_lab, tmp_path):
    """Two offloads of one table at once double rows (K2 has no lock): a flow run in flight is waited for, within
    a bound; still running after it, the manual offload is refused and nothing is started."""
    lab = clean_lab
    run_id = lab.prefect.trigger([TABLE])
    lab.wait("the flow run in flight", lambda: lab.prefect.flow_run(run_id)["state_type"] in ("PENDING", "RUNNING"))
    rc, output = _manual_offload(tmp_path, 0)
    assert rc != 0 and f"Refusing the manual offload of {TABLE}: flow run(s) {run_id} of" in output, output[-2000:]
    assert "are in flight; wait for them to finish" in output
    assert "Run the offload job once" not in output  # refused before any job
    rc, output = _manual_offload(tmp_path, 300)
    assert rc == 0, output[-2000:]
    assert lab.prefect.flow_run(run_id)["state_type"] == "COMPLETED"  # it ended first, then the manual offload ran
    lab.assert_no_row_lost_or_doubled()


class _Webhook(http.server.BaseHTTPRequestHandler):
    """A Slack/PagerDuty-style escalation endpoint on the control node's loopback: keeps what it is sent."""
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_an_unreachable_docker_host_is_escalated_from_the_control_node(tmp_path):
    """The stack's own alerting is behind the host: the escalation goes through the webhook, from the control node,
    and the run fails with one line naming the host. No lab needed: the host is an SSH port nobody listens on."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    unreachable = tmp_path / "unreachable.yml"  # merged over the lab inventory: the same host, over SSH to port 1
    unreachable.write_text(json.dumps({"k2_docker_hosts": {"hosts": {"k2-lab": {
        "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}}}}))
    try:
        rc, out, stderr = run_playbook("playbooks/remediate.yml", "-i", "inventory/lab/hosts.yml", "-i", str(unreachable),
                                       "-e", f"k2_escalation_webhook_url=http://127.0.0.1:{server.server_port}/hook",
                                       "-e", f"remediation_report_path={tmp_path / 'remediation.json'}", timeout=300)
    finally:
        server.shutdown()
    output = json.dumps(out) + stderr
    assert rc != 0 and "ESCALATE (Docker host unreachable): k2-lab cannot be reached" in output, output[-3000:]
    assert out["stats"]["k2-lab"]["changed"] == 0 and not (tmp_path / "remediation.json").exists()
    (sent,) = _Webhook.received
    assert "k2-lab" in json.dumps(sent) and "cannot be reached from the control node" in json.dumps(sent), sent
