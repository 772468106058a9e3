"""Check mode of the write modules, run through their main() with a fake at the client boundary (psycopg2's
connection, the Docker engine, the flow file on disk): check mode changes nothing, and what it reports (changed,
plan, actions, diff) is exactly what the real run reports and does."""
from __future__ import annotations

import copy
import csv
import io
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import offload_watermark_logic
import offload_watermark_repair
import pytest
from module_harness import load_module
from module_harness import run_main as harness_run_main

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
COLD_TS = datetime(2026, 11, 26, 11, 0, tzinfo=timezone.utc)
T = "bronze_trades_binance"


@pytest.fixture(scope="module")
def wm_mod():
    return load_module("offload_watermark")


@pytest.fixture(scope="module")
def container_mod():
    return load_module("offload_container")


@pytest.fixture(scope="module")
def flow_mod():
    return load_module("offload_flow_timeout")


def run_main(mod, monkeypatch, args: dict, check_mode: bool) -> dict:
    """module_harness.run_main, where a fail_json is a test failure (with what the module said)."""
    result = harness_run_main(mod, monkeypatch, args, check_mode=check_mode)
    if result.get("failed"):
        raise AssertionError(f"fail_json: {result}")
    return result


# ---------------------------------------------------------------- offload_watermark: a fake PostgreSQL

STATE_COLUMNS = ["table_name", "last_offload_timestamp", "last_offload_max_sequence", "last_offload_row_count",
                 "status", "last_successful_run", "last_run_duration_seconds", "failure_count",
                 "last_error_message", "created_at", "updated_at"]
HISTORY_COLUMNS = ["id", "table_name", "max_timestamp", "sequence_number", "created_at"]
R = offload_watermark_repair


class FakePG:
    """psycopg2 connection stand-in holding offload_watermarks in memory. Writes go to the transaction's copy, which
    commit() publishes and rollback() drops, as PostgreSQL does; `committed` is what another session would see."""

    def __init__(self, columns: list[str], rows: list[dict]):
        self.columns = columns
        self.committed = copy.deepcopy(rows)
        self.work = copy.deepcopy(rows)
        self.commits = 0
        self.closed = False

    def set_session(self, readonly, autocommit):
        self.readonly = readonly

    def cursor(self):
        return FakeCursor(self)

    def commit(self):
        self.committed = copy.deepcopy(self.work)
        self.commits += 1

    def rollback(self):
        self.work = copy.deepcopy(self.committed)

    def close(self):
        self.closed = True


class FakeCursor:
    def __init__(self, conn: FakePG):
        self.conn, self.description, self.rows, self.rowcount = conn, None, [], -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def mogrify(self, sql, params):
        return f"{sql} -- {sorted((params or {}).items())}".encode()

    def _result(self, rows: list[dict]):
        names = list(rows[0]) if rows else ["x"]
        self.description = [(n,) for n in names]
        self.rows = [tuple(r[n] for n in names) for r in rows]

    def fetchall(self):
        return self.rows

    def execute(self, sql, params):
        conn, p = self.conn, params or {}
        mine = [r for r in conn.work if r["table_name"] == p.get("table")]
        if sql == offload_watermark_logic.SERVER_SQL:
            self._result([{"server_time": NOW, "table_schema": "public"}])
        elif sql == offload_watermark_logic.COLUMNS_SQL:
            self._result([{"column_name": c} for c in conn.columns])
        elif sql == R.LOCK_SQL:
            self._result([{"locked": True}])
        elif sql == R.STATE_ROW_SQL:
            self._result(copy.deepcopy(mine))
        elif sql == R.STATE_MOVE_SQL:
            for row in mine:
                row.update(last_offload_timestamp=datetime.fromisoformat(p["timestamp"]),
                           last_offload_max_sequence=p["sequence"], updated_at=NOW)
            self.rowcount = len(mine)
        elif sql == R.COUNT_SQL:
            self._result([{"table_name": t, "n": n} for t in p["tables"]
                          if (n := sum(r["table_name"] == t for r in conn.work))])
        elif sql == R.PRUNE_SQL:  # what the statement means: per table, all but the newest `keep` rows
            doomed = []
            for t in p["tables"]:
                rows = sorted((r for r in conn.work if r["table_name"] == t),
                              key=lambda r: (r["created_at"], r["id"]), reverse=True)
                doomed += [r["id"] for r in rows[p["keep"]:]]
            conn.work = [r for r in conn.work if r["id"] not in doomed]
            self.rowcount = len(doomed)
        elif sql == "SELECT count(*) AS n FROM offload_watermarks":
            self._result([{"n": len(conn.work)}])
        elif sql == "LOCK TABLE offload_watermarks IN ACCESS EXCLUSIVE MODE":
            pass
        elif sql == "DELETE FROM offload_watermarks":
            self.rowcount, conn.work = len(conn.work), []
        else:
            raise AssertionError(f"unexpected SQL: {sql}")

    def copy_expert(self, sql, buf):
        if sql.startswith("COPY offload_watermarks (") and "FROM STDIN" in sql:
            self.conn.work += list(csv.DictReader(io.StringIO(buf.read())))
        else:
            raise AssertionError(f"unexpected COPY: {sql}")


@pytest.fixture
def pg(monkeypatch, wm_mod):
    """Installs a FakePG as psycopg2.connect's answer; call it with (columns, rows)."""
    made = {}

    def make(columns, rows):
        made["conn"] = FakePG(columns, rows)
        monkeypatch.setattr(wm_mod.psycopg2, "connect", lambda **kw: made["conn"])
        return made["conn"]
    return make


def state_row(**kw):
    row = {"table_name": T, "last_offload_timestamp": COLD_TS - timedelta(minutes=30), "last_offload_max_sequence": 40,
           "last_offload_row_count": 10, "status": "success", "last_successful_run": COLD_TS, "last_run_duration_seconds": 7,
           "failure_count": 0, "last_error_message": None, "created_at": COLD_TS - timedelta(days=1),
           "updated_at": COLD_TS}
    row.update(kw)
    return row


REPAIR_ARGS = {"action": "repair", "tables": [T], "cold": {T: {"exists": True, "max_timestamp": COLD_TS.isoformat(),
                                                                "max_sequence": 42}}}


def test_watermark_repair_in_check_mode_rolls_back_and_reports_the_exact_plan_and_diff(wm_mod, pg, monkeypatch):
    conn = pg(STATE_COLUMNS, [state_row()])
    result = run_main(wm_mod, monkeypatch, REPAIR_ARGS, check_mode=True)
    assert conn.committed == [state_row()] and conn.commits == 0 and conn.closed  # nothing visible changed
    assert result["changed"] is True
    assert [(p["action"], p["timestamp"], p["sequence"], p["mark_failed"]) for p in result["plans"]] == [
        ("move_forward", "2026-11-26T11:00:00+00:00", 42, False)]
    assert result["diff"]["before"][T]["last_offload_timestamp"] == "2026-11-26T10:30:00+00:00"
    assert result["diff"]["before"][T]["last_offload_max_sequence"] == 40
    assert result["diff"]["after"][T]["last_offload_timestamp"] == "2026-11-26T11:00:00+00:00"
    assert result["diff"]["after"][T]["last_offload_max_sequence"] == 42
    assert sum(q.startswith(R.STATE_MOVE_SQL) for q in result["queries"]) == 1  # the real statement ran, then rolled back


def test_watermark_repair_for_real_commits_what_check_mode_reported(wm_mod, pg, monkeypatch):
    pg(STATE_COLUMNS, [state_row()])
    check = run_main(wm_mod, monkeypatch, REPAIR_ARGS, check_mode=True)
    conn = pg(STATE_COLUMNS, [state_row()])
    real = run_main(wm_mod, monkeypatch, REPAIR_ARGS, check_mode=False)
    assert conn.commits == 1
    assert conn.committed == [state_row(last_offload_timestamp=COLD_TS, last_offload_max_sequence=42, updated_at=NOW)]
    assert {k: real[k] for k in ("changed", "plans", "diff", "queries")} == \
        {k: check[k] for k in ("changed", "plans", "diff", "queries")}


def test_watermark_repair_with_nothing_to_do_is_unchanged_and_writes_nothing(wm_mod, pg, monkeypatch):
    conn = pg(STATE_COLUMNS, [state_row(last_offload_timestamp=COLD_TS, last_offload_max_sequence=42)])
    result = run_main(wm_mod, monkeypatch, REPAIR_ARGS, check_mode=False)
    assert result["changed"] is False and [p["action"] for p in result["plans"]] == ["none"]
    assert result["diff"] == {"before": {}, "after": {}} and conn.commits == 0


def history(table, n, start_id=1):
    return [{"id": start_id + i, "table_name": table, "max_timestamp": COLD_TS + timedelta(minutes=i),
             "sequence_number": i, "created_at": COLD_TS + timedelta(minutes=i)} for i in range(n)]


PRUNE_ARGS = {"action": "prune", "tables": [T, "bronze_trades_kraken"], "keep": 3}


@pytest.mark.parametrize("check_mode", [True, False])
def test_watermark_prune_reports_the_same_counts_and_commits_only_for_real(wm_mod, pg, monkeypatch, check_mode):
    rows = history(T, 5) + history("bronze_trades_kraken", 2, start_id=100)
    conn = pg(HISTORY_COLUMNS, rows)
    result = run_main(wm_mod, monkeypatch, PRUNE_ARGS, check_mode=check_mode)
    assert (result["changed"], result["deleted"], result["locked"]) == (True, 2, [])
    assert result["diff"] == {"before": {T: 5, "bronze_trades_kraken": 2}, "after": {T: 3, "bronze_trades_kraken": 2}}
    if check_mode:
        assert conn.committed == rows and conn.commits == 0
    else:  # the newest three of binance (ids 3, 4, 5) stay
        assert [r["id"] for r in conn.committed] == [3, 4, 5, 100, 101] and conn.commits == 1


@pytest.mark.parametrize("check_mode", [True, False])
def test_watermark_restore_replaces_rows_only_for_real(wm_mod, pg, monkeypatch, tmp_path, check_mode):
    backup = tmp_path / "offload_watermarks-20261126T110000000000Z.csv"
    backup.write_text("table_name,last_offload_timestamp,last_offload_max_sequence\n"
                      f"{T},2026-11-26 11:00:00+00,42\n")
    rows = [state_row(), state_row(table_name="bronze_trades_kraken")]
    conn = pg(STATE_COLUMNS, rows)
    result = run_main(wm_mod, monkeypatch, {"action": "restore", "tables": [T], "backup_file": str(backup)},
                      check_mode=check_mode)
    assert (result["changed"], result["rows_before"], result["rows_after"]) == (True, 2, 1)
    assert result["diff"] == {"before": {"rows": 2}, "after": {"rows": 1, "from": str(backup)}}
    if check_mode:
        assert conn.committed == rows and conn.commits == 0
    else:
        assert conn.committed == [{"table_name": T, "last_offload_timestamp": "2026-11-26 11:00:00+00",
                                   "last_offload_max_sequence": "42"}] and conn.commits == 1


def test_watermark_backup_in_check_mode_writes_no_file(wm_mod, pg, monkeypatch, tmp_path):
    pg(STATE_COLUMNS, [state_row()])
    target = tmp_path / "backups"
    result = run_main(wm_mod, monkeypatch, {"action": "backup", "tables": [T], "backup_dir": str(target)},
                      check_mode=True)
    assert result["changed"] is True and result["rows"] is None and result["sha256"] is None
    assert Path(result["backup_file"]).parent == target and result["backup_file"].endswith(".csv")
    assert not target.exists()


# ---------------------------------------------------------------- offload_container: a fake Docker engine

class FakeEngine:
    """DockerEngine stand-in: a container that runs once started; records every action that would change it."""

    def __init__(self, state: dict, logs=()):
        self.current, self.log_lines, self.commands = copy.deepcopy(state), list(logs), []

    def state(self, name, with_memory=False):
        return copy.deepcopy(self.current)

    def logs(self, name, lines, since=None):
        return self.log_lines[-lines:]

    def act(self, name, action, args):
        self.commands.append((action, name, args))
        if action in ("start", "restart", "unpause"):
            self.current.update(status="running", exit_code=0, oom_killed=False,
                                started_at="2026-11-26T12:00:01.000000000Z")
        elif action == "connect":
            self.current["networks"] = sorted(self.current["networks"] + [args["network"]])


NET = "k2-market-data-platform_k2-net"
EXITED = {"name": "k2-clickhouse", "exists": True, "status": "exited", "exit_code": 137, "oom_killed": True,
          "started_at": "2026-11-26T07:00:00.123456789Z", "finished_at": "2026-11-26T07:31:02.987654321Z",
          "networks": [], "memory_limit": 1610612736, "memory_usage": None, "memory_fraction": None, "error": None,
          "restart_count": 0}
CONTAINER_ARGS = {"name": "k2-clickhouse", "networks": [{"name": NET, "aliases": ["clickhouse"]}]}
EXPECTED_ACTIONS = ["start k2-clickhouse (exited, exit code 137, OOMKilled)",
                    f"connect k2-clickhouse to network {NET} (aliases: clickhouse)"]


@pytest.fixture
def docker(monkeypatch, container_mod):
    made = {}

    def make(state, logs=()):
        monkeypatch.setattr(container_mod, "DockerEngine", lambda: made.setdefault("cli", FakeEngine(state, logs)))
        # wait_running polls with sleep(1): no real sleeps in unit tests
        monkeypatch.setattr(container_mod, "time", SimpleNamespace(sleep=lambda s: None, monotonic=time.monotonic))
        return made
    return make


def test_container_check_mode_runs_no_docker_command_and_reports_the_plan(container_mod, docker, monkeypatch):
    made = docker(EXITED, logs=["ready", "Killed process 1 (clickhouse-serv)"])
    result = run_main(container_mod, monkeypatch, CONTAINER_ARGS, check_mode=True)
    assert made["cli"].commands == [] and made["cli"].current == EXITED
    assert result["changed"] is True and result["actions"] == EXPECTED_ACTIONS
    assert result["before"] == EXITED and result["after"] == EXITED
    assert result["stop_reason"] == "exited, exit code 137, OOMKilled"
    assert result["error_lines"] == ["Killed process 1 (clickhouse-serv)"]
    assert result["diff"]["before"] == {"status": "exited", "exit_code": 137, "oom_killed": True, "networks": [],
                                        "memory_fraction": None}
    assert result["diff"]["after"]["status"] == "running"


def test_container_check_mode_diff_shows_the_planned_network(container_mod, docker, monkeypatch):
    docker(EXITED)
    result = run_main(container_mod, monkeypatch, CONTAINER_ARGS, check_mode=True)
    assert result["diff"]["after"]["networks"] == [NET]


def test_container_real_run_runs_exactly_the_planned_commands(container_mod, docker, monkeypatch):
    made = docker(EXITED)
    result = run_main(container_mod, monkeypatch, CONTAINER_ARGS, check_mode=False)
    assert made["cli"].commands == [("start", "k2-clickhouse", {}),
                                    ("connect", "k2-clickhouse", {"network": NET, "aliases": ["clickhouse"]})]
    assert result["changed"] is True and result["actions"] == EXPECTED_ACTIONS
    assert result["diff"]["after"] == {"status": "running", "exit_code": 0, "oom_killed": False, "networks": [NET],
                                       "memory_fraction": None}


def test_container_check_mode_refuses_an_unsafe_start_like_the_real_run(container_mod, docker, monkeypatch):
    made = docker(EXITED, logs=["PANIC: could not locate a valid checkpoint record"])
    with pytest.raises(AssertionError, match="not started: starting it is not safe"):
        run_main(container_mod, monkeypatch, {**CONTAINER_ARGS, "refuse_start_if_logs_match": "PANIC:"}, check_mode=True)
    assert made["cli"].commands == []


def test_container_running_and_attached_is_unchanged_in_check_mode(container_mod, docker, monkeypatch):
    running = {**EXITED, "status": "running", "exit_code": 0, "oom_killed": False, "networks": [NET]}
    made = docker(running)
    result = run_main(container_mod, monkeypatch, CONTAINER_ARGS, check_mode=True)
    assert result["changed"] is False and result["actions"] == [] and made["cli"].commands == []
    assert result["diff"]["before"] == result["diff"]["after"] == {
        "status": "running", "exit_code": 0, "oom_killed": False, "networks": [NET], "memory_fraction": None}


# ---------------------------------------------------------------- offload_flow_timeout: the flow file on disk

FLOW = b'''import subprocess


def offload_table(cfg):
    cmd = ["docker", "exec", "k2-spark-iceberg", "python3", "x.py"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)  # 10-minute timeout
    return result.returncode
'''
LINE_600 = ('    result = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)  '
            '# 10-minute timeout\n')


@pytest.fixture
def flow_file(tmp_path):
    path = tmp_path / "flows" / "iceberg_offload_flow.py"
    path.parent.mkdir()
    path.write_bytes(FLOW)
    return path


def test_flow_timeout_check_mode_writes_nothing_and_shows_the_exact_line(flow_mod, flow_file, monkeypatch):
    result = run_main(flow_mod, monkeypatch, {"path": str(flow_file), "timeout": 1200}, check_mode=True)
    assert flow_file.read_bytes() == FLOW
    assert sorted(p.name for p in flow_file.parent.iterdir()) == ["iceberg_offload_flow.py"]  # no backup, no temp file
    assert result == {"changed": True, "timeout": 1200, "previous_timeout": 600,
                      "diff": {"before_header": str(flow_file), "after_header": str(flow_file),
                               "before": LINE_600, "after": LINE_600.replace("timeout=600", "timeout=1200")}}


def test_flow_timeout_real_run_writes_what_check_mode_showed_and_keeps_a_backup(flow_mod, flow_file, monkeypatch):
    check = run_main(flow_mod, monkeypatch, {"path": str(flow_file), "timeout": 1200}, check_mode=True)
    real = run_main(flow_mod, monkeypatch, {"path": str(flow_file), "timeout": 1200}, check_mode=False)
    assert flow_file.read_bytes() == FLOW.replace(b"timeout=600)", b"timeout=1200)")
    assert Path(real.pop("backup_file")).read_bytes() == FLOW
    assert real == check


def test_flow_timeout_already_set_is_unchanged_without_diff(flow_mod, flow_file, monkeypatch):
    result = run_main(flow_mod, monkeypatch, {"path": str(flow_file), "timeout": 600}, check_mode=False)
    assert result == {"changed": False, "timeout": 600, "previous_timeout": 600}
    assert sorted(p.name for p in flow_file.parent.iterdir()) == ["iceberg_offload_flow.py"]
