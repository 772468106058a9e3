"""Faults in the middle of a remediation, on the lab: each ends with nothing half-applied (the transaction rolled
back, or the change completed), a clear escalation, and a second remediate.yml that completes the recovery.
The lab injects at the step the remediation's holder records in the stack's lock (`labctl fault --at-step`)."""
from __future__ import annotations

import re

from conftest import HungDockerAPI, RemediateRun, remediate


def start(lab, name: str) -> None:
    ctr = lab.dc.containers.get(name)
    ctr.start()
    lab.wait(f"{name} running", lambda: lab.dc.containers.get(name).status == "running", timeout=60)


def assert_recovered_clean(lab, rc, report, output) -> None:
    assert rc == 0 and report["status"] == "recovered", output[-3000:]
    lab.assert_no_row_lost_or_doubled()


def test_postgres_stopping_during_the_watermark_repair(clean_lab, tmp_path):
    lab = clean_lab
    assert lab.cycle()["state_type"] == "COMPLETED"
    lab.fault("watermark-ahead")
    ahead = lab.wm()["last_offload_timestamp"]
    run = RemediateRun(tmp_path, "repair")
    lab.fault_during_remediation("prefect-db-stopped", "Scenario 4")
    rc, report, output, _ = run.result()

    assert rc != 0 and report["status"] == "escalated", output[-3000:]
    assert report["escalation"].startswith("ESCALATE (") and "Scenario 4" in report["escalation"] or \
        "verification" in report["escalation"], report["escalation"]
    start(lab, "k2-prefect-db")
    lab.wait("PostgreSQL answering", lambda: lab.wm() is not None, timeout=60)
    now = lab.wm()
    # One transaction: either nothing was applied, or the whole repair (back to the cold tier, ~30 min earlier).
    moved = (ahead - now["last_offload_timestamp"]).total_seconds()
    assert moved == 0 or moved >= 29 * 60, (ahead, now)
    assert now["status"] != "running", now

    rc, report, output, _ = remediate()
    assert_recovered_clean(lab, rc, report, output)


def test_clickhouse_stopping_during_the_verifying_run(clean_lab, tmp_path):
    lab = clean_lab
    lab.fault("clickhouse-stopped")
    run = RemediateRun(tmp_path, "verify-ch")
    lab.fault_during_remediation("clickhouse-stopped", "verification", running_run=True)
    rc, report, output, _ = run.result()

    assert rc != 0 and report["status"] == "escalated", output[-3000:]
    assert "verification (flow run, watermarks, truth check)" in report["escalation"], report["escalation"]
    # The run fails reading ClickHouse, or it had read it already and the truth check cannot: either is named.
    assert "FAILED" in report["escalation"] or "ClickHouse" in report["escalation"], report["escalation"]

    start(lab, "k2-clickhouse")  # the fault clears
    rc, report, output, _ = remediate()
    assert_recovered_clean(lab, rc, report, output)


def test_the_worker_killed_during_the_verifying_run(clean_lab, tmp_path):
    """The run the killed worker was executing stays RUNNING in Prefect for ever (a zombie) and its job goes on in
    the Spark container: the escalation comes once no worker has polled for the heartbeat staleness, and the next
    remediation crashes the zombie, lets the job finish, and verifies with a fresh run - without doubling rows."""
    lab = clean_lab
    lab.fault("worker-stopped")
    run = RemediateRun(tmp_path, "verify-worker")
    lab.fault_during_remediation("worker-killed", "verification", running_run=True)
    rc, report, output, _ = run.result()

    assert rc != 0 and report["status"] == "escalated", output[-3000:]
    assert "the worker died during the run" in report["escalation"], report["escalation"]
    zombie = re.search(r"flow run (\S+) is still RUNNING", report["escalation"])[1]

    rc, report, output, _ = remediate()
    assert_recovered_clean(lab, rc, report, output)
    # Scenario 1 crashes it as soon as it has restarted the worker (with its layer subflow), before any step could
    # wait for it; the verification finds nothing left to crash.
    worker = next(o for o in report["outcomes"] if o["scenario"] == 1)
    assert zombie in [r["name"] for r in worker["crashed_runs"]], worker["crashed_runs"]
    assert report["verification"]["crashed_runs"] == [], report["verification"]


def test_a_docker_api_that_hangs_is_blind_and_nothing_is_changed(clean_lab, tmp_path):
    lab = clean_lab
    lab.fault("worker-stopped")
    hung = HungDockerAPI(tmp_path / "docker.sock")
    try:
        rc, report, output, stats = remediate("-e", "offload_diagnose_docker_timeout=2",
                                              env={"DOCKER_HOST": f"unix://{tmp_path / 'docker.sock'}"})
    finally:
        hung.close()
    assert rc != 0 and stats["k2-lab"]["changed"] == 0, output[-3000:]
    assert report["status"] == "escalated" and report["escalation_rule"] == "root cause is unclear", report
    assert "Docker API (container state)" in report["escalation"], report["escalation"]
    assert lab.dc.containers.get("k2-prefect-worker").status == "exited"  # nothing was started blind
