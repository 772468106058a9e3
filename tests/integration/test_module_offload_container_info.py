"""offload_container_info through real ansible-playbook against the lab's Docker engine (read-only module)."""
from __future__ import annotations

import json

import pytest
from ansible_run import run_module, run_playbook
from conftest import HungDockerAPI

MODULE = "offload_container_info"
SPARK = "k2-spark-iceberg"
JDBC = "/opt/spark/jars/clickhouse-jdbc-0.4.6-all.jar"


@pytest.fixture(scope="module")
def stack_read(lab) -> dict:
    return run_module(MODULE, {"containers": ["k2-clickhouse", SPARK, "k2-prefect-db", "k2-no-such-container"],
                               "memory_of": ["k2-clickhouse"], "processes_in": [SPARK],
                               "file_checks": [{"container": SPARK, "path": JDBC},
                                               {"container": SPARK, "path": "/nonexistent/file"}]})


def test_reads_state_memory_processes_and_files(stack_read):
    result = stack_read
    assert not result.get("failed"), result.get("msg")
    assert result["reachable"] is True and result["error"] is None and result["errors"] == {}
    assert result["changed"] is False
    clickhouse = result["containers"]["k2-clickhouse"]
    assert clickhouse["status"] == "running" and "k2-network" in clickhouse["networks"]
    assert 0 < clickhouse["memory_usage"] < clickhouse["memory_limit"] and 0 < clickhouse["memory_fraction"] < 1
    assert result["containers"]["k2-prefect-db"]["memory_usage"] is None  # only asked of ClickHouse
    absent = result["containers"]["k2-no-such-container"]
    assert absent["exists"] is False and absent["status"] == "absent"
    ps = result["processes"][SPARK]
    assert ps["rc"] == 0 and "sleep infinity" in ps["output"]
    assert result["offload_jobs"] == {SPARK: []}  # the lab's schedule is paused: no offload runs unless started
    assert [(f["path"], f["present"]) for f in result["files"]] == [(JDBC, True), ("/nonexistent/file", False)]


def test_returns_no_container_environment(lab, stack_read):
    text = json.dumps(stack_read)
    assert lab.cfg.db_password not in text and lab.cfg.clickhouse_password not in text
    assert "Env" not in text and "Config" not in text


def test_exec_in_a_container_that_does_not_exist_is_unknown_not_absent(lab):
    result = run_module(MODULE, {"containers": [SPARK], "processes_in": ["k2-no-such-container"],
                                 "file_checks": [{"container": "k2-no-such-container", "path": "/x"}]})
    assert result["processes"]["k2-no-such-container"]["rc"] is None
    assert "k2-no-such-container" in result["processes"]["k2-no-such-container"]["error"]
    assert result["files"][0]["present"] is None


@pytest.mark.parametrize("args,message", [
    ({"containers": ["k2 bad;name"]}, "Invalid container name"),
    ({"containers": [SPARK], "memory_of": ["k2-clickhouse"]}, "memory_of names container(s) not in containers"),
    ({"containers": [SPARK], "file_checks": [{"container": SPARK, "path": "relative"}]}, "must be absolute"),
    ({"containers": [SPARK], "timeout": 0}, "timeout must be between"),
])
def test_bad_input_is_one_line_and_reads_nothing(lab, args, message):
    result = run_module(MODULE, args)
    assert result.get("failed") and message in result["msg"] and "\n" not in result["msg"], result


def test_a_hung_docker_api_is_unreachable_within_the_timeout(lab, tmp_path):
    """A socket that accepts connections and never answers: reachable=false with one line, not a hang."""
    path = tmp_path / "docker.sock"
    hung = HungDockerAPI(path)
    play = [{"hosts": "k2_docker_hosts", "gather_facts": False, "tasks": [
        {"name": "m", MODULE: {"containers": [SPARK], "timeout": 2}, "ignore_errors": True}]}]
    playbook = tmp_path / "p.yml"
    playbook.write_text(json.dumps(play))
    try:
        rc, out, stderr = run_playbook(playbook, env={"DOCKER_HOST": f"unix://{path}"}, timeout=60)
    finally:
        hung.close()
    result = next(iter(out["plays"][0]["tasks"][0]["hosts"].values()))
    assert rc == 0 and result["reachable"] is False, result
    assert "Docker engine not answering" in result["error"] and "\n" not in result["error"]
