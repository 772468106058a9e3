"""The conformance lane (docs/fidelity.md): the product on K2's own code, not on the twin's rewrite of it. K2's
offload_generic.py and watermark_pg.py run unmodified on Spark 3.5 with the Java Iceberg runtime and K2's Hadoop
catalog; K2's watermark DDL, Iceberg DDL and silver ClickHouse types are read from the checkout. Only the JDBC read
of ClickHouse is a stand-in. Skipped, with its reason, without a K2 checkout (conftest.k2_lab)."""
from __future__ import annotations

import json
import shutil
import subprocess

import lab_clients
import pytest
from ansible_run import ROOT, run_playbook
from conftest import K2_CHECKOUT, TABLE, diagnose, last_diagnosis, remediate
from test_lab_faults import assert_diagnosed, assert_escalated_to_people, assert_health_check_needs_a_human, assert_recovered

import offload_rules

# The layers the lane offloads (bronze and silver: gold's comparison is not decided yet, docs/fidelity.md).
OFFLOADED = ("bronze_trades_binance", "bronze_trades_kraken", "bronze_trades_coinbase", "silver_trades")
K2_WATERMARK_COLUMNS = ("table_name", "last_offload_timestamp", "last_offload_max_sequence", "last_offload_row_count",
                        "status", "last_successful_run", "last_run_duration_seconds", "failure_count",
                        "last_error_message", "created_at", "updated_at")


def _assert_every_table_clean(lab, tables=OFFLOADED):
    """The product's truth check and the independent oracle agree: every row once, bronze and silver."""
    for table in tables:
        truth = lab.assert_no_row_lost_or_doubled(table)
        assert truth["cold_rows"] > 0, truth


def test_a_healthy_cycle_of_k2s_own_job_offloads_bronze_and_silver_and_the_product_says_so(k2_lab):
    lab = k2_lab
    run = lab.cycle(tables=OFFLOADED, timeout=900)
    assert run["state_type"] == "COMPLETED", run["state"]
    for table in OFFLOADED:  # what K2's own update_watermark writes after a commit
        wm = lab.wm(table)
        assert wm["status"] == "success" and wm["failure_count"] == 0 and wm["last_offload_row_count"] > 0, wm
    _assert_every_table_clean(lab)
    # K2's Hadoop catalog wrote the tables (no SQL catalog), and the watermark table is K2's DDL as it is.
    assert not (lab.cfg.warehouse_dir / "catalog.db").exists()
    assert (lab.cfg.warehouse_dir / "cold/silver_trades/metadata/version-hint.text").is_file()
    with lab_clients.pg(lab.cfg) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM offload_watermarks LIMIT 0")
        assert tuple(d[0] for d in cur.description) == K2_WATERMARK_COLUMNS
    report = diagnose()
    assert report["status"] == "healthy", json.dumps(report["scenarios"])[:2000]


@pytest.fixture
def k2(k2_lab):
    """Each fault test of the lane ends on a cleared lab."""
    yield k2_lab
    k2_lab.clear()


def _failing_run(lab):
    run = lab.cycle(timeout=600)
    assert run["state_type"] == "FAILED", run["state"]
    return lab.wm()


@pytest.mark.parametrize("name, error_class", [("clickhouse-stopped", "connection"), ("worker-stopped", None)])
def test_k2s_own_failure_is_diagnosed_and_remediated_with_no_row_lost_or_doubled(k2, name, error_class):
    lab = k2
    fault = lab.fault(name)
    if error_class:
        wm = _failing_run(lab)  # what K2's job leaves in PostgreSQL: str() of the exception, without its log prefix
        assert wm["status"] == "failed", wm
        assert set(offload_rules.classify_lines([wm["last_error_message"]])) == {error_class}, wm
    assert_diagnosed(lab, fault)
    rc, report, output, _ = remediate()
    assert_recovered(lab, fault, rc, report, output)  # the twin's assertions (test_lab_faults.py), on K2's code
    _assert_every_table_clean(lab, (TABLE,))
    assert_health_check_needs_a_human(last_diagnosis(), fault)


def test_a_jdbc_driver_k2s_jvm_cannot_load_is_scenario_3_and_escalated_untouched(k2):
    lab = k2
    lab.fault("jdbc-missing")
    wm = _failing_run(lab)
    # The JVM's own error, through K2's job: the read fails before ClickHouse is asked.
    assert "ClassNotFoundException: com.clickhouse.jdbc.ClickHouseDriver" in wm["last_error_message"], wm
    report = diagnose()
    assert [s["scenario"] for s in report["scenarios"]] == [3], report["scenarios"]
    rc, report, output, _ = remediate()
    assert rc != 0 and "ESCALATE" in output and "Rebuild the Spark image" in output, output[-3000:]
    assert report["status"] == "escalated", report
    spark = lab.container("spark-iceberg")
    assert spark.exec_run(["test", "-f", lab.cfg.jdbc_jar]).exit_code != 0  # nothing pretended to fix it
    assert_escalated_to_people(lab, report, "code or infrastructure change needed")


def test_the_lane_runs_k2s_files_from_the_checkout_unmodified(k2_lab):
    """K2's job is the checkout's own file, mounted read-only: the lab neither copies nor edits it."""
    spark = k2_lab.container("spark-iceberg")
    mounts = {m["Destination"]: m for m in spark.attrs["Mounts"]}
    assert mounts["/home/iceberg/offload"]["Source"] == str(K2_CHECKOUT / "docker/offload")
    assert not mounts["/home/iceberg/offload"]["RW"]
    ran = spark.exec_run(["python3", "-c", "import pyspark; print(pyspark.__version__)"]).output.decode().strip()
    assert ran.startswith("3.5."), ran


def test_the_example_production_inventory_copied_as_the_readme_says_diagnoses_k2_healthy(k2_lab, tmp_path):
    """README, 'Running against a real K2 host': copy inventory/example-production, set the host, put the secrets in
    an ansible-vault-encrypted vault.yml, override what differs. What differs here is only what the lab publishes
    differently from a stock compose stack. No warehouse path, no Alertmanager: a stock K2 has them from its
    compose (the Spark container's mount) or not at all."""
    assert k2_lab.cycle(timeout=600)["state_type"] == "COMPLETED"  # the newest run healthy, whatever ran before
    env_dir = tmp_path / "k2-env"
    shutil.copytree(ROOT / "inventory/example-production", env_dir)  # group_vars/all, a link, copied as files
    (env_dir / "hosts.yml").write_text(
        "all:\n  children:\n    k2_docker_hosts:\n      hosts:\n        k2-stock:\n"
        "          ansible_connection: local\n          ansible_python_interpreter: '{{ ansible_playbook_python }}'\n")
    host_vars = env_dir / "group_vars/k2_docker_hosts"
    (host_vars / "stack.yml").write_text(f"k2_postgres_port: {k2_lab.cfg.port_postgres}\n"
                                         f"k2_network_name: {k2_lab.cfg.network}\n")
    password = tmp_path / "vault-password"
    password.write_text("conformance\n")
    vault = host_vars / "vault.yml"
    vault.write_text(f"vault_k2_postgres_password: {k2_lab.cfg.db_password}\n"
                     f"vault_k2_clickhouse_password: {k2_lab.cfg.clickhouse_password}\n")
    subprocess.run([str(ROOT / ".venv/bin/ansible-vault"), "encrypt", "--vault-password-file", str(password),
                    str(vault)], check=True, capture_output=True, cwd=ROOT)
    report_path = tmp_path / "report.json"
    rc, out, stderr = run_playbook("playbooks/diagnose.yml", "-i", str(env_dir / "hosts.yml"), "--vault-password-file",
                                   str(password), "-e", f"report_path={report_path}")
    assert rc == 0, (stderr[-1500:], json.dumps(out)[-1500:])
    report = json.loads(report_path.read_text())
    assert report["status"] == "healthy" and report["blind"] == [], report["scenarios"]
    iceberg = report["facts"]["iceberg"]  # the warehouse found from the Spark container's mount
    assert iceberg["warehouse"]["exists"] and iceberg["tables"][TABLE]["max_timestamp"], iceberg
    assert report["monitoring_not_deployed"] == ["Alertmanager (k2_alertmanager_url is empty)"]
    assert "MONITORING NOT DEPLOYED" in json.dumps(out)
