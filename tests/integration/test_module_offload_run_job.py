"""offload_run_job through real ansible-playbook against the lab's Spark container (the Docker SDK's exec): a manual
offload judged by its output, check mode, the timeout that stops the job inside the container, and the refusal while
an offload of the table is in flight."""
from __future__ import annotations

import json

import faults
import labctl  # noqa: F401 - puts the lab's flows (table_config) on sys.path
import pytest
from ansible_run import run_module
from conftest import TABLE
from table_config import by_source

pytestmark = pytest.mark.on_a_twin  # see tests/conftest.py

MODULE = "offload_run_job"


def _args(lab, **extra) -> dict:
    entry = by_source(TABLE)
    table = {"source": TABLE, "target": entry["target_table"], "layer": entry["layer"],
             "timestamp_col": entry["timestamp_col"], "sequence_col": entry["sequence_col"],
             "columns": entry["columns"]}
    return {"container": lab.cfg.container("spark-iceberg"), "table": table, "timeout": 120, **extra}


def test_check_mode_runs_nothing_and_a_manual_offload_is_judged_by_its_output(clean_lab, tmp_path):
    """... and renews the heartbeat of the stack's lock it runs under (a 30-minute offload keeps its lock)."""
    lab = clean_lab
    assert lab.cycle()["state_type"] == "COMPLETED"
    before = lab.wm()
    planned = run_module(MODULE, _args(lab), check=True)
    assert planned["changed"] is True and planned["exit_code"] is None, planned
    assert planned["command"][:3] == ["docker", "exec", lab.cfg.container("spark-iceberg")]
    assert "--columns" in planned["command"] and lab.wm()["last_offload_timestamp"] == before["last_offload_timestamp"]

    lock = {"lock_path": str(tmp_path / "remediation.lock")}
    token = run_module("offload_lock", {"path": lock["lock_path"], "state": "acquired"})["holder"]["token"]
    result = run_module(MODULE, _args(lab, **lock, lock_token=token))
    assert not result.get("failed"), result.get("msg")
    assert result["succeeded"] is True and result["exit_code"] == 0 and result["timed_out"] is False
    assert result["rows_offloaded"] is not None and result["output_tail"], result
    assert result["lock_heartbeat"]["beats"] >= 1 and result["lock_heartbeat"]["lost"] is None, result
    holder = json.loads((tmp_path / "remediation.lock").read_text())
    assert holder["token"] == token and holder["heartbeat"] >= holder["since"]
    lab.assert_no_row_lost_or_doubled()


def test_a_job_past_its_timeout_is_stopped_inside_the_container(clean_lab):
    lab = clean_lab
    lab.fault("job-slow")
    result = run_module(MODULE, _args(lab, timeout=8))
    assert result.get("failed") and result["timed_out"] is True and result["exit_code"] is None, result
    assert result["stopped_pids"], "the stalled job was found and stopped in the container"
    assert "\n" not in result["msg"] and TABLE in result["msg"]
    assert not faults.orphan_offload_pids(lab.dc, lab.cfg)


def test_refuses_waits_for_and_stops_an_offload_of_the_table_in_flight(clean_lab):
    lab = clean_lab
    (lab.cfg.faults_dir / "job-slow").write_text("300")  # job-slow's stall, long enough for every step below
    command = run_module(MODULE, _args(lab), check=True)["command"]  # docker exec <container> <job argv...>
    lab.dc.containers.get(command[2]).exec_run(command[3:], detach=True)  # one stalled job, as a flow run leaves it
    lab.wait("the job running in Spark", lambda: faults.orphan_offload_pids(lab.dc, lab.cfg), timeout=60)

    refused = run_module(MODULE, _args(lab))
    assert refused.get("failed") and f"Refusing to offload {TABLE}: an offload of it is already running" in \
        refused["msg"], refused
    waited = run_module(MODULE, _args(lab, action="wait", timeout=3))
    assert waited.get("failed") and "still running" in waited["msg"] and waited["jobs"], waited
    planned = run_module(MODULE, _args(lab, action="stop"), check=True)
    assert planned["changed"] is True and planned["stopped_pids"] and faults.orphan_offload_pids(lab.dc, lab.cfg)

    stopped = run_module(MODULE, _args(lab, action="stop"))
    assert stopped["changed"] is True and stopped["stopped_pids"] == planned["stopped_pids"]
    assert not faults.orphan_offload_pids(lab.dc, lab.cfg)  # the module waits until TERM/KILL took effect


@pytest.mark.parametrize("extra, message", [
    ({"container": "k2 bad;name"}, "Invalid container name"),
    ({"timeout": 0}, "timeout must be positive"),
    ({"success_patterns": [" "]}, "success_patterns must name at least one success line"),
    ({"container": "k2-no-such-container"}, "k2-no-such-container"),
])
def test_bad_input_is_one_line_and_runs_nothing(lab, extra, message):
    result = run_module(MODULE, _args(lab, **extra))
    assert result.get("failed") and message in result["msg"] and "\n" not in result["msg"], result
