"""The conformance lane's lab configuration (lab/config.py, stack.py, labctl.py): what K2_SOURCE switches, read from
a K2 checkout, with no Docker engine."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

LAB = Path(__file__).resolve().parents[2] / "lab"
sys.path[:0] = [str(LAB), str(LAB / "services" / "flows"), str(LAB.parent / "module_utils")]

import labctl  # noqa: E402
import stack  # noqa: E402
from config import SPARK35_VENV, LabConfig  # noqa: E402

K2_SILVER = """-- K2's v2 silver
CREATE TABLE IF NOT EXISTS k2.silver_trades (
    message_id UUID, side Enum8('BUY' = 1, 'SELL' = 2)
) ENGINE = MergeTree() ORDER BY message_id;
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.bronze_trades_mv_v2 TO k2.silver_trades AS SELECT 1;
"""


@pytest.fixture
def k2_checkout(tmp_path, monkeypatch):
    """A minimal K2 checkout: the files the lane reads."""
    for path, text in (("docker/offload/offload_generic.py", "# K2's job\n"),
                       ("docker/postgres/ddl/offload-watermarks.sql", "-- K2's watermark DDL\n"),
                       ("docker/clickhouse/schema/05-silver-v2-migration.sql", K2_SILVER)):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    monkeypatch.setenv("K2_SOURCE", str(tmp_path))
    monkeypatch.delenv("K2_LAB_PREFIX", raising=False)
    monkeypatch.delenv("K2_LAB_LAYERS", raising=False)
    monkeypatch.delenv("K2_LAB_TASK_TIMEOUT_SECONDS", raising=False)
    return tmp_path


def test_without_k2_source_the_lab_is_the_twin(monkeypatch):
    monkeypatch.delenv("K2_SOURCE", raising=False)
    cfg = LabConfig()
    assert cfg.k2_checkout is None and cfg.layers == ("bronze",) and cfg.task_timeout_seconds == 30
    silver = next(s for s in labctl.clickhouse_ddl(cfg) if labctl.SILVER_TABLE in s)
    assert "message_id String" in silver


def test_k2_source_must_be_a_k2_checkout_and_the_main_lab(tmp_path, k2_checkout, monkeypatch):
    monkeypatch.setenv("K2_SOURCE", str(tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match="is not a k2-market-data-platform checkout"):
        LabConfig()
    monkeypatch.setenv("K2_SOURCE", str(k2_checkout))
    monkeypatch.setenv("K2_LAB_PREFIX", "k2b-")
    with pytest.raises(ValueError, match="runs on the main lab only"):
        LabConfig()


def test_the_lane_offloads_bronze_and_silver_with_k2s_timeout_and_k2s_silver_types(k2_checkout):
    cfg = LabConfig()
    assert cfg.k2_checkout == k2_checkout and cfg.layers == ("bronze", "silver") and cfg.task_timeout_seconds == 600
    ddl = labctl.clickhouse_ddl(cfg)
    silver = [s for s in ddl if labctl.SILVER_TABLE in s]
    assert len(silver) == 1 and "message_id UUID" in silver[0] and "MATERIALIZED VIEW" not in silver[0]
    assert len(ddl) == len(labctl.clickhouse_ddl(LabConfig(k2_source="")))  # only the silver table is K2's


def test_the_lane_mounts_k2s_files_where_k2_has_them_and_runs_them_on_spark_35(k2_checkout, monkeypatch):
    monkeypatch.setattr(stack, "_java_home", lambda: "/usr/lib/jvm/java-17")
    cfg = LabConfig()
    specs = {s["name"]: s for s in stack.service_specs(cfg)}
    db, spark = specs["k2-prefect-db"], specs["k2-spark-iceberg"]
    assert db["binds"][str(k2_checkout / "docker/postgres/ddl/offload-watermarks.sql")] == stack.K2_WATERMARK_DDL
    assert db["env"]["WATERMARK_DDL"] == stack.K2_WATERMARK_DDL
    mounted_at = {dest: src for src, dest in spark["binds"].items()}
    assert mounted_at["/home/iceberg/offload"] == str(k2_checkout / "docker/offload")  # the twin's job is not there
    assert mounted_at["/home/iceberg/ddl"] == str(k2_checkout / "docker/iceberg/ddl")
    assert spark["env"]["PATH"].startswith(f"{SPARK35_VENV}/bin:") and "PYSPARK_SUBMIT_ARGS" not in spark["env"]
    assert spark["env"]["PYTHONPATH"] == "/lab/services/conformance:/lab/services/offload"
    assert not any(k2_checkout.as_posix() in src for src in spark.get("rw_binds", {}))  # nothing of K2's is writable


def test_one_lab_runs_one_lane(k2_checkout, tmp_path, monkeypatch):
    monkeypatch.setenv("K2_LAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(labctl, "SPARK35_VENV", tmp_path)
    (tmp_path / ".requirements.sha").write_text("built")
    monkeypatch.delenv("K2_SOURCE")
    labctl._check_lane(LabConfig())  # the twin, first
    monkeypatch.setenv("K2_SOURCE", str(k2_checkout))
    with pytest.raises(stack.LabError, match="the lab runs the twin's own code, not K2's own code from .*: `make "
                                             "lab-down` first"):
        labctl._check_lane(LabConfig())
