"""offload_diagnosis through real ansible-playbook against the lab: every probe answers from its component; a
component that accepts connections and never answers is abandoned at probe_timeout and reported blind, while the
other probes' findings stand."""
from __future__ import annotations

import json

import pytest
from ansible_run import run_module
from conftest import SilentHTTPServer

MODULE = "offload_diagnosis"
PROBES = {"watermarks", "clickhouse", "iceberg", "prefect", "alerts", "alertmanager", "docker"}
ARGS = {
    "tables": "{{ k2_tables }}",
    "watermarks": "{{ k2_postgres_connection }}",
    "clickhouse": "{{ k2_clickhouse_connection }}",
    "iceberg": {"warehouse_path": "{{ k2_warehouse_host_path }}", "written_warehouse_path": "{{ k2_warehouse_path }}"},
    "prefect": {"api_url": "{{ k2_prefect_api_url }}", "deployment": "{{ k2_deployment_name }}",
                "work_pool": "{{ k2_work_pool }}"},
    "prometheus": {"api_url": "{{ k2_prometheus_url }}"},
    "alertmanager_url": "{{ k2_alertmanager_url }}",
    "docker": {"containers": "{{ k2_containers }}", "jdbc_driver_path": "{{ k2_jdbc_driver_path }}"},
    "network_name": "{{ k2_network_name }}",
}


def test_every_probe_answers_from_the_lab(lab):
    result = run_module(MODULE, ARGS)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["blind"] == [] and result["alerting_blind"] is False
    assert set(result["probe_seconds"]) == PROBES and all(s is not None for s in result["probe_seconds"].values())
    facts = result["facts"]
    assert {s["status"] for s in facts["containers"].values()} == {"running"}, facts["containers"]
    assert facts["watermarks"]["layout"] == "state" and facts["prefect"]["worker_online"] is True
    assert facts["clickhouse"]["reachable"] is True and facts["spark"]["jdbc_present"] is True
    assert facts["iceberg"]["warehouse"]["exists"] is True
    assert set(facts["iceberg"]["tables"]) == set(facts["clickhouse"]["tables"]) == set(facts["watermarks"]["watermarks"])
    text = json.dumps(result)
    assert lab.cfg.db_password not in text and lab.cfg.clickhouse_password not in text


@pytest.fixture
def silent_server():
    server = SilentHTTPServer()
    yield server
    server.close()


def test_a_hung_component_is_blind_at_probe_timeout_and_the_rest_still_answers(lab, silent_server):
    args = {**ARGS, "prometheus": {"api_url": f"http://127.0.0.1:{silent_server.port}", "timeout": 60},
            "probe_timeout": 4}
    # The cause below says the probe was cut at probe_timeout; the Prometheus timeout (60 s) would outlast this
    # run's own limit, so a probe left to hang fails the run instead of passing slowly.
    result = run_module(MODULE, args, timeout=55)
    assert not result.get("failed"), result.get("msg")
    blind = {b["probe"]: b for b in result["blind"]}
    assert set(blind) == {"alerts"}, result["blind"]
    assert blind["alerts"]["cause"] == "probe did not finish in time (4 s)" and blind["alerts"]["monitoring"] is True
    assert result["alerting_blind"] is True and result["status"] != "healthy"
    assert result["probe_seconds"]["alerts"] is None and result["probe_seconds"]["watermarks"] is not None
