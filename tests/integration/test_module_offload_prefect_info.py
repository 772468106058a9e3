"""offload_prefect_info through real ansible-playbook against the lab's Prefect server (read-only module).

Another process triggers runs and injects faults into the shared lab all the time: assertions are about the
module's contract and about the one run this file triggers (table bronze_trades_kraken), never about the lab
being healthy at a given moment beyond what the lab guarantees (deployment paused, a worker)."""
from __future__ import annotations

import lab_clients
import offload_prefect_logic as logic
import pytest
from ansible_run import run_module
from config import LabConfig

from offload_common import parse_utc

MODULE = "offload_prefect_info"
TABLE = "bronze_trades_kraken"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
RUN_KEYS = {"id", "name", "state_type", "state_name", "expected_start_time", "start_time", "end_time", "message",
            "parameters", "failed_tables", "offload_errors", "log_lines", "log_truncated"}
TOP_KEYS = {"reachable", "api_url", "error", "deployment", "flow_runs", "running_runs", "counts",
            "consecutive_failures", "failed_tables", "work_pool", "workers", "worker_online", "idle",
            "not_idle_because", "changed"}


@pytest.fixture(scope="module")
def prefect_api():
    api = lab_clients.Prefect(LabConfig())
    if not api.healthy():
        pytest.fail(f"the lab's Prefect API {api.api} is not healthy: run `make lab-up`")
    return api


@pytest.fixture(scope="module")
def our_run(prefect_api) -> dict:
    """One run of the deployment on bronze_trades_kraken, waited for until final."""
    run = prefect_api.wait(prefect_api.trigger([TABLE]), timeout=300)
    assert run["state_type"] in FINAL, f"run {run['id']} still {run['state_type']} after 300 s"
    return run


@pytest.fixture(scope="module")
def inspected(our_run) -> dict:
    # Many runs per minute come from elsewhere: look far enough back to still see ours.
    return run_module(MODULE, {"recent_runs": 60})


def _find(result: dict, run_id: str) -> dict:
    rows = [r for r in result["flow_runs"] if r["id"] == run_id]
    assert rows, f"run {run_id} not among the {len(result['flow_runs'])} recent runs"
    return rows[0]


def test_inspect_reports_the_lab_deployment_paused(inspected, prefect_api):
    assert not inspected.get("failed"), inspected.get("msg")
    assert inspected["changed"] is False
    assert TOP_KEYS <= set(inspected)
    assert inspected["reachable"] is True and inspected["error"] is None
    assert inspected["api_url"] == "http://127.0.0.1:4200/api"
    dep = inspected["deployment"]
    assert dep["exists"] is True and dep["name"] == "iceberg-offload-15min"
    assert dep["id"] == prefect_api.deployment()["id"]
    assert dep["paused"] is True  # the lab pauses the 15-min schedule
    assert dep["schedules"] and dep["schedules"][0]["cron"] == "*/15 * * * *"
    assert dep["work_pool_name"] == "iceberg-offload"


def test_inspect_reports_the_work_pool_and_an_online_worker(inspected):
    pool = inspected["work_pool"]
    assert pool["exists"] is True and pool["name"] == "iceberg-offload" and pool["type"] == "process"
    assert pool["paused"] is False
    workers = inspected["workers"]
    assert workers and inspected["worker_online"] is True
    for w in workers:
        assert w["online"] == (w["status"] == "ONLINE" and w["heartbeat_age_seconds"] is not None
                               and w["heartbeat_age_seconds"] < 90)
    ages = [w["heartbeat_age_seconds"] for w in workers if w["heartbeat_age_seconds"] is not None]
    assert ages == sorted(ages)


def test_inspect_lists_our_run_with_its_final_state(inspected, our_run):
    runs = inspected["flow_runs"]
    assert 1 <= len(runs) <= 60
    for r in runs:
        assert set(r) == RUN_KEYS
    expected = [parse_utc(r["expected_start_time"]) for r in runs]
    assert expected == sorted(expected, reverse=True)  # newest first
    mine = _find(inspected, our_run["id"])
    assert mine["state_type"] == our_run["state_type"] and mine["name"] == our_run["name"]
    assert mine["parameters"] == {"tables": [TABLE]}
    if mine["state_type"] in ("FAILED", "CRASHED"):
        # A fault injected elsewhere made it fail: its logs are read and name no other table.
        assert isinstance(mine["log_lines"], list) and mine["log_lines"]
        assert len(mine["log_lines"]) <= 50
        assert set(mine["failed_tables"]) <= {TABLE}
        assert all(e["table"] == TABLE for e in mine["offload_errors"])
    else:
        assert mine["log_lines"] is None and mine["failed_tables"] == []


def test_inspect_counts_are_consistent(inspected):
    runs = inspected["flow_runs"]
    assert sum(inspected["counts"].values()) == len(runs)
    for state in {r["state_type"] for r in runs}:
        assert inspected["counts"][state] == sum(1 for r in runs if r["state_type"] == state)
    assert inspected["consecutive_failures"] == logic.consecutive_failures(runs)
    assert all(isinstance(i, str) for i in inspected["running_runs"])
    failed = {t for r in runs if r["state_type"] in ("FAILED", "CRASHED") for t in r["failed_tables"]}
    assert set(inspected["failed_tables"]) == failed


def test_check_mode_gives_the_same_read(our_run, inspected):
    result = run_module(MODULE, {"recent_runs": 60}, check=True)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["reachable"] is True
    assert result["deployment"]["id"] == inspected["deployment"]["id"]
    assert result["deployment"]["paused"] is True
    assert result["work_pool"] == inspected["work_pool"]
    assert _find(result, our_run["id"])["state_type"] == our_run["state_type"]


def test_without_logs_no_log_lines(our_run):
    result = run_module(MODULE, {"recent_runs": 5, "include_logs": False})
    assert not result.get("failed"), result.get("msg")
    assert len(result["flow_runs"]) <= 5
    assert all(r["log_lines"] is None and r["offload_errors"] is None for r in result["flow_runs"])


def test_unknown_deployment_and_pool_are_findings():
    result = run_module(MODULE, {"deployment": "no-such-flow/no-such-deployment", "work_pool": "no-such-pool"})
    assert not result.get("failed"), result.get("msg")
    assert result["reachable"] is True and result["error"] is None
    assert result["deployment"]["exists"] is False and result["flow_runs"] == []
    assert result["consecutive_failures"] == 0
    assert result["work_pool"]["exists"] is False and result["workers"] == [] and result["worker_online"] is False
    assert result["idle"] is False  # nothing in flight cannot be known of a deployment that is not there
    assert result["not_idle_because"] == "deployment no-such-flow/no-such-deployment was not found"


def test_a_run_in_flight_is_waited_for_and_not_idle_when_the_wait_is_too_short(prefect_api):
    run_id = prefect_api.trigger([TABLE])
    short = run_module(MODULE, {"recent_runs": 1, "include_logs": False, "wait_for_idle_seconds": 1})
    assert short["idle"] is False and run_id in short["running_runs"], short
    assert short["not_idle_because"].endswith("are in flight after 1 s") and run_id in \
        short["not_idle_because"]
    waited = run_module(MODULE, {"recent_runs": 1, "include_logs": False, "wait_for_idle_seconds": 300})
    assert waited["idle"] is True and waited["running_runs"] == [] and waited["not_idle_because"] is None, waited
    assert waited["waited_seconds"] > 0
    assert prefect_api.flow_run(run_id)["state_type"] in FINAL


def test_unreachable_server_is_a_finding_not_a_failure():
    result = run_module(MODULE, {"api_url": "http://127.0.0.1:1/api", "timeout": 3, "wait_for_idle_seconds": 600})
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert result["reachable"] is False
    assert "127.0.0.1:1" in result["error"] and "\n" not in result["error"]
    assert result["deployment"]["exists"] is False and result["flow_runs"] == [] and result["worker_online"] is False
    # Not idle, and not waited for: waiting does not bring the API back (the run would have lasted 600 s).
    assert result["idle"] is False and result["not_idle_because"] == result["error"]


@pytest.mark.parametrize("args, expected", [
    ({"deployment": "iceberg-offload-15min"}, "is not of the form flow/deployment"),
    ({"deployment": "a/b/c"}, "is not of the form flow/deployment"),
    ({"recent_runs": -1}, "recent_runs must be between 1 and 200"),
    ({"api_url": "127.0.0.1:4200/api"}, "must start with http:// or https://"),
    ({"api_url": "http://127.0.0.1:99999/api"}, "is malformed"),
    ({"heartbeat_stale_seconds": 0}, "heartbeat_stale_seconds must be positive"),
    ({"wait_for_idle_seconds": -5}, "wait_for_idle_seconds must be between 0 and 86400"),
])
def test_bad_input_fails_with_one_clear_line(args, expected):
    result = run_module(MODULE, args)
    assert result.get("failed") is True
    assert expected in result["msg"]
    assert "\n" not in result["msg"] and "Traceback" not in result["msg"]
