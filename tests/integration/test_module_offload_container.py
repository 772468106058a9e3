"""offload_container through real ansible-playbook against the lab's Docker engine (the Docker SDK): start, unpause,
restart and network connect of existing containers, check mode first; nothing is ever re-created."""
from __future__ import annotations

import pytest
from ansible_run import run_module

pytestmark = pytest.mark.on_a_twin  # see tests/conftest.py

MODULE = "offload_container"


def test_a_stopped_container_is_started_keeping_why_it_stopped_after_check_mode_changed_nothing(clean_lab):
    lab = clean_lab
    worker = lab.container("prefect-worker")
    worker.stop(timeout=5)
    name, created = worker.name, worker.attrs["Created"]
    planned = run_module(MODULE, {"name": name}, check=True)
    assert not planned.get("failed"), planned.get("msg")
    assert planned["changed"] is True and planned["actions"][0].startswith(f"start {name} (exited, exit code ")
    assert lab.container("prefect-worker").status == "exited", "check mode started the container"
    assert planned["diff"]["after"]["status"] == "running" and planned["diff"]["before"]["status"] == "exited"

    started = run_module(MODULE, {"name": name})
    assert not started.get("failed"), started.get("msg")
    assert started["changed"] is True and started["actions"] == planned["actions"]
    assert started["before"]["status"] == "exited" and started["stop_reason"].startswith("exited, exit code ")
    assert started["after"]["status"] == "running" and started["log_tail"], started
    after = lab.container("prefect-worker")
    assert after.status == "running" and after.attrs["Created"] == created  # started, not re-created

    again = run_module(MODULE, {"name": name})
    assert again["changed"] is False and again["actions"] == []


def test_a_disconnected_container_is_reconnected_with_its_alias(clean_lab):
    lab = clean_lab
    lab.fault("clickhouse-disconnected")
    name, network = lab.cfg.container("clickhouse"), lab.cfg.network
    args = {"name": name, "networks": [{"name": network, "aliases": ["clickhouse"]}]}
    planned = run_module(MODULE, args, check=True)
    assert planned["actions"] == [f"connect {name} to network {network} (aliases: clickhouse)"]
    assert planned["diff"]["after"]["networks"] == sorted([*planned["diff"]["before"]["networks"], network])
    assert network not in lab.container("clickhouse").attrs["NetworkSettings"]["Networks"]

    result = run_module(MODULE, args)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and network in result["after"]["networks"]
    attached = lab.container("clickhouse").attrs["NetworkSettings"]["Networks"][network]
    assert "clickhouse" in attached["Aliases"]
    assert lab.cycle()["state_type"] == "COMPLETED"  # the stack reaches ClickHouse by its alias again


def test_a_paused_container_is_unpaused_and_a_memory_restart_restarts(clean_lab):
    lab = clean_lab
    feed = lab.container("feed")
    feed.pause()
    result = run_module(MODULE, {"name": feed.name})
    assert result["actions"] == [f"unpause {feed.name}"] and lab.container("feed").status == "running"

    started_at = lab.container("feed").attrs["State"]["StartedAt"]
    result = run_module(MODULE, {"name": feed.name, "restart_if_memory_above": 0.0001})
    assert not result.get("failed"), result.get("msg")
    assert result["actions"][0].startswith(f"restart {feed.name} (memory at ")
    assert result["before"]["memory_fraction"] > 0.0001
    assert lab.container("feed").attrs["State"]["StartedAt"] != started_at


def test_an_unsafe_start_is_refused_with_the_log_lines_and_nothing_changes(clean_lab):
    lab = clean_lab
    worker = lab.container("prefect-worker")
    worker.stop(timeout=5)
    result = run_module(MODULE, {"name": worker.name, "refuse_start_if_logs_match": "."})
    assert result.get("failed") and "not started: starting it is not safe" in result["msg"], result
    assert "\n" not in result["msg"] and result["unsafe_lines"]
    assert lab.container("prefect-worker").status == "exited"


@pytest.mark.parametrize("args, message", [
    ({"name": "k2-no-such-container"}, "Container k2-no-such-container does not exist"),
    ({"name": "k2 bad;name"}, "Invalid container, network or alias name"),
    ({"name": "k2-x", "restart_if_memory_above": 1.5}, "restart_if_memory_above must be a fraction"),
    ({"name": "k2-x", "refuse_start_if_logs_match": "("}, "not a valid regular expression"),
])
def test_bad_input_or_an_absent_container_is_one_line(lab, args, message):
    result = run_module(MODULE, args)
    assert result.get("failed") and message in result["msg"] and "\n" not in result["msg"], result
