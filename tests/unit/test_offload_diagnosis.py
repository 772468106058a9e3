"""offload_diagnosis: the probes run at once, each in its own thread; a probe that hangs, rejects its input or
crashes is its component's finding (blind), never the end of the diagnosis nor a traceback."""
from __future__ import annotations

import threading
import time

import pytest
from module_harness import load_module, run_main

from offload_common import ProbeError

ARGS = {"tables": [{"source": "bronze_trades_binance", "target": "cold.bronze_trades_binance", "layer": "bronze",
                    "timestamp_col": "exchange_timestamp", "sequence_col": "sequence_number"}],
        "watermarks": {"login_password": "pg-secret-never-shown"},
        "iceberg": {"warehouse_path": "/nonexistent/warehouse"},
        "docker": {"containers": {"clickhouse": "k2-clickhouse", "spark": "k2-spark-iceberg",
                                  "prefect_db": "k2-prefect-db", "prefect_server": "k2-prefect-server",
                                  "prefect_worker": "k2-prefect-worker"},
                   "jdbc_driver_path": "/opt/spark/jars/clickhouse-jdbc.jar"},
        "network_name": "k2-net", "probe_timeout": 2}


@pytest.fixture
def diagnosis():
    return load_module("offload_diagnosis")


def probe_names(result: dict) -> dict:
    return {b["probe"]: b["cause"] for b in result["blind"]}


def test_a_hung_probe_is_abandoned_at_the_deadline_and_the_others_still_answer(diagnosis):
    release = threading.Event()

    def hang(reporter):
        release.wait(30)
        return {}

    def slow(reporter):  # answers well inside the deadline, after the fast one: waited for, not cut
        time.sleep(0.3)
        return {"reachable": True}

    probes = [diagnosis.Probe("prefect", hang, {}), diagnosis.Probe("alerts", lambda r: {"reachable": True}, {}),
              diagnosis.Probe("clickhouse", slow, {})]
    diagnosis.run_probes(probes, timeout=2)
    abandoned = probes[0].is_alive()  # still hanging when run_probes returned: abandoned, never joined
    release.set()
    assert abandoned
    assert probes[0].raw == {"failed": True, "finished": 0, "msg": "probe did not finish in time (2 s)"}
    assert probes[0].seconds is None
    for probe in probes[1:]:
        assert probe.raw == {"reachable": True, "finished": 1} and probe.seconds is not None


def test_a_rejected_input_and_a_crash_are_one_line_findings(diagnosis):
    def reject(reporter):
        raise ProbeError("api_url 'prefect:4200' must start with http:// or https://")

    def crash(reporter):
        raise KeyError("state")

    probes = [diagnosis.Probe("prefect", reject, {}), diagnosis.Probe("iceberg", crash, {})]
    diagnosis.run_probes(probes, timeout=5)
    assert probes[0].raw["msg"] == "api_url 'prefect:4200' must start with http:// or https://"
    assert probes[1].raw["msg"] == "iceberg probe failed: KeyError: 'state'"
    assert all(p.raw["failed"] and "Traceback" not in p.raw["msg"] for p in probes)


def test_every_probe_failing_is_a_blind_diagnosis_naming_each_cause(diagnosis, monkeypatch):
    def failing(message):
        def read(reporter):
            reporter.warn("a warning on the way")
            raise ProbeError(message)
        return read

    for name in ("read_watermarks", "read_clickhouse", "read_iceberg", "read_prefect", "read_prometheus",
                 "read_docker"):
        monkeypatch.setattr(diagnosis, name, failing(f"{name} said no"))
    # ClickHouse not answering is Scenario 2 (not blind), unless it refuses the credentials.
    monkeypatch.setattr(diagnosis, "read_clickhouse", failing("Code: 516. default: Authentication failed"))
    result = run_main(diagnosis, monkeypatch, ARGS)
    assert result["changed"] is False and result["status"] == "blind", result["status"]
    causes = probe_names(result)
    assert causes["watermarks"] == "read_watermarks said no" and causes["prefect"] == "read_prefect said no"
    assert causes["alerts"] == "read_prometheus said no" and result["alerting_blind"] is True
    assert causes["clickhouse"] == "Code: 516. default: Authentication failed" and result["scenarios"] == []
    assert "alertmanager" not in causes  # not configured, not probed: not blind
    assert "pg-secret-never-shown" not in str(result)


def test_bad_module_input_is_one_line_and_probes_nothing(diagnosis, monkeypatch):
    called = []
    monkeypatch.setattr(diagnosis, "read_watermarks", lambda reporter: called.append(1) or {})
    bad = {**ARGS, "tables": [{**ARGS["tables"][0], "source": "x; DROP TABLE offload_watermarks"}]}
    result = run_main(diagnosis, monkeypatch, bad)
    assert result["failed"] and "Invalid table or column name(s) 'x; DROP TABLE offload_watermarks'" in result["msg"]
    result = run_main(diagnosis, monkeypatch, {**ARGS, "docker": {**ARGS["docker"], "containers": {"spark": "s"}}})
    assert result["failed"] and result["msg"] == ("docker.containers must name the clickhouse container(s) (the "
                                                  "inventory's k2_containers).")
    result = run_main(diagnosis, monkeypatch, {**ARGS, "probe_timeout": 0})
    assert result["failed"] and result["msg"] == "probe_timeout must be between 1 and 600 seconds, got 0."
    assert called == []


def test_a_password_in_the_stack_s_logs_never_leaves_the_diagnosis(diagnosis, monkeypatch):
    """Evidence quotes the stack's logs: a connection string or a password option in them is masked in every field
    the module returns (the report, the AWX artifact and the remediation all come from it)."""
    def docker_logs(reporter):
        raise ProbeError("ps failed: jdbc:clickhouse://default:ch-secret-never-shown@k2-clickhouse:8123 password=hunter22")

    def failed_watermarks(reporter):
        raise ProbeError("cannot connect: password pg-secret-never-shown rejected")

    monkeypatch.setattr(diagnosis, "read_docker", docker_logs)
    monkeypatch.setattr(diagnosis, "read_watermarks", failed_watermarks)
    result = run_main(diagnosis, monkeypatch, {**ARGS, "clickhouse": {"clickhouse_password": "ch-secret-never-shown"}})
    text = str(result)
    assert "ch-secret-never-shown" not in text and "pg-secret-never-shown" not in text and "hunter22" not in text
    assert "********" in text  # masked, not dropped: the line still says what failed
