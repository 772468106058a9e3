"""library/offload_capacity_info.py through its main(), with fakes at the client boundaries (clickhouse-connect's
client, the Prefect API, the Docker API): bad input is one line; the three sources are read as documented (a query
per table with the window bound, task runs paged, logs read in batches); a source that does not answer is a finding,
never a failure; no secret in the result."""
from __future__ import annotations

import importlib.util
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import offload_capacity
import offload_clickhouse_logic
import offload_prefect_api
import pytest

import offload_docker_api

NOW = datetime(2026, 11, 29, 18, 0, tzinfo=timezone.utc)
PASSWORD = "pw-never-shown-42"
TABLES = [{"source": "bronze_trades_binance", "timestamp_col": "exchange_timestamp", "layer": "bronze",
           "target": "cold.bronze_trades_binance", "sequence_col": "sequence_number", "columns": "*"},
          {"source": "silver_trades", "timestamp_col": "timestamp", "layer": "silver"}]


class Exit(Exception):
    pass


@pytest.fixture(scope="module")
def mod():
    path = Path(__file__).resolve().parents[2] / "library" / "offload_capacity_info.py"
    spec = importlib.util.spec_from_file_location("offload_capacity_info_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Result:
    def __init__(self, rows):
        self.rows = rows

    def named_results(self):
        return iter(self.rows)


class FakeClickHouse:
    def __init__(self):
        self.sent = []

    def query(self, sql, parameters=None, settings=None):
        self.sent.append((sql, parameters, settings))
        if sql == offload_clickhouse_logic.SQL_SERVER:
            return Result([{"version": "26.9", "now_ms": offload_capacity.to_ms(NOW), "timezone": "UTC"}])
        if "`silver_trades`" in sql:
            raise RuntimeError(f"Code: 60. DB::Exception: Table k2.silver_trades does not exist ({PASSWORD}). "
                               "(UNKNOWN_TABLE) (version 26.9)")
        return Result([{"hours_ago": 0, "rows": 72_000}, {"hours_ago": 1, "rows": 71_900}])


class FakePrefect:
    """Answers like Prefect 3: 250 offload task runs (two pages), each with K2's two success lines."""
    instances: list = []

    def __init__(self, base, timeout, validate_certs, agent=""):
        self.base, self.posts, self.server_now = base.rstrip("/"), [], NOW
        FakePrefect.instances.append(self)

    def now(self):
        return NOW

    def get(self, path):
        assert path == "/health"
        return True

    def post(self, path, body):
        self.posts.append((path, body))
        if path == "/task_runs/filter":
            runs = [{"id": f"r{i}", "state_type": "COMPLETED", "run_count": 1} for i in range(250)]
            return runs[body["offset"]:body["offset"] + body["limit"]]
        assert path == "/logs/filter"
        logs = []
        for run in body["logs"]["task_run_id"]["any_"]:
            at = (NOW - timedelta(minutes=int(run[1:]) % 60 + 1)).isoformat()
            logs += [{"task_run_id": run, "timestamp": at, "message": "✓ Offload completed: bronze_trades_binance"},
                     {"task_run_id": run, "timestamp": at, "message": "  Duration: 11.0s"}]
        return logs[body["offset"]:body["offset"] + body["limit"]]


class DeadPrefect(FakePrefect):
    def get(self, path):
        raise offload_prefect_api.PrefectUnreachable(f"GET {self.base}{path} got no answer: [Errno 111] "
                                                     "Connection refused")


def run(mod, monkeypatch, args, prefect=FakePrefect, docker_error=None, check_mode=False):
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args

    client = FakeClickHouse()
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", lambda self, **kw: (_ for _ in ()).throw(Exit(kw, False)))
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", lambda self, **kw: (_ for _ in ()).throw(Exit(kw, True)))
    monkeypatch.setattr(mod, "connect", lambda params: client)
    monkeypatch.setattr(mod, "PrefectAPI", prefect)

    def docker_connect(timeout):
        raise offload_docker_api.DockerUnavailable(docker_error or "Docker engine not answering: test")

    monkeypatch.setattr(mod, "docker_connect", docker_connect)
    monkeypatch.setattr(mod, "HAS_DOCKER_SDK", True)
    FakePrefect.instances.clear()
    with patch_module_args({"tables": TABLES, "clickhouse_password": PASSWORD, "normal_rows_per_hour": 300_000,
                            "task_timeout_seconds": 30, "_ansible_check_mode": check_mode, **args}):
        with pytest.raises(Exit) as done:
            mod.main()
    result, failed = done.value.args
    return {**result, "failed": failed}, client


@pytest.mark.parametrize("args,message", [
    ({"days": 0}, "days must be between 1 and 90, got 0."),
    ({"days": 1, "sustained_hours": 25}, "sustained_hours must be between 1 and the window's 24 hours, got 25."),
    ({"memory_threshold": 80}, "memory_threshold must be in (0, 1], got 80.0."),
    ({"trend_min_points": 1}, "trend_min_points must be at least 2 (a line needs two points), got 1."),
    ({"tables": [{"source": "t; DROP", "timestamp_col": "ts"}]}, "Invalid database, table or column name(s) 't; DROP'"),
    ({"spark_container": "bad name"}, "Invalid container name(s) 'bad name'."),
    ({"prefect_api_url": "127.0.0.1:4200"}, "prefect_api_url '127.0.0.1:4200' must start with http:// or https://"),
])
def test_bad_input_fails_with_one_line_naming_it(mod, monkeypatch, args, message):
    result, client = run(mod, monkeypatch, args)
    assert result["failed"] and result["msg"].startswith(message) and "\n" not in result["msg"]
    assert client.sent == []  # nothing was read


def test_sources_are_read_as_documented(mod, monkeypatch):
    result, client = run(mod, monkeypatch, {"days": 2})
    assert not result["failed"] and result["changed"] is False
    report = result["report"]
    # ClickHouse: one aggregate per table over the window, the values bound (never in the SQL text).
    hourly = [(sql, params) for sql, params, _ in client.sent if "GROUP BY hours_ago" in sql]
    assert len(hourly) == 2
    t0 = offload_capacity.to_ms(NOW)
    assert all(params == {"t0_ms": t0, "since_ms": t0 - 48 * 3_600_000} for _, params in hourly)
    assert all(settings == {"max_execution_time": 30} for _, _, settings in client.sent)
    assert report["tables"]["bronze_trades_binance"]["volume"]["last_hour"] == 72_000
    assert len(report["tables"]["bronze_trades_binance"]["rows_per_hour"]) == 48
    silver = [b for b in report["blind"] if b.startswith("ClickHouse rows of silver_trades: Code: 60.")]
    assert len(silver) == 1 and "********" in silver[0]  # the error names the table, the password masked
    # Prefect: task runs paged (200 + 50) from the window's start, logs in batches of at most 40 task runs.
    api = FakePrefect.instances[0]
    pages = [body for path, body in api.posts if path == "/task_runs/filter"]
    assert [b["offset"] for b in pages] == [0, 200]
    assert pages[0]["task_runs"] == {"name": {"like_": "offload-table"},
                                     "start_time": {"after_": "2026-11-27T18:00:00Z"}}
    batches = [body["logs"]["task_run_id"]["any_"] for path, body in api.posts if path == "/logs/filter"]
    assert len(batches) == 7 and max(len(b) for b in batches) == 40
    assert sorted(i for b in batches for i in b) == sorted(f"r{i}" for i in range(250))
    duration = report["tables"]["bronze_trades_binance"]["duration"]
    assert duration["completed"] == 250 and duration["median_seconds"] == 11.0
    assert report["sources"]["prefect"]["task_runs"] == 250 and not report["sources"]["prefect"]["task_runs_truncated"]
    # Docker not answering: memory is blind, the report incomplete, the module did not fail.
    assert report["memory"]["spark"]["reason"] == "not read: Docker engine not answering: test"
    assert result["status"] == "incomplete" and result["recommendations"] == []
    assert result["chart_html"].startswith("<!DOCTYPE html>")
    assert PASSWORD not in json.dumps(result)


def test_max_task_runs_truncates_and_says_so(mod, monkeypatch):
    result, _ = run(mod, monkeypatch, {"max_task_runs": 100})
    assert result["report"]["sources"]["prefect"]["task_runs"] == 100
    assert result["report"]["sources"]["prefect"]["task_runs_truncated"] is True


def test_prefect_not_answering_is_a_finding(mod, monkeypatch):
    result, _ = run(mod, monkeypatch, {}, prefect=DeadPrefect)
    assert not result["failed"]
    assert result["report"]["sources"]["prefect"]["error"] == (
        "Prefect API http://127.0.0.1:4200/api is unreachable: GET http://127.0.0.1:4200/api/health got no answer: "
        "[Errno 111] Connection refused")
    assert result["report"]["tables"]["bronze_trades_binance"]["duration"] is None


def test_check_mode_reads_the_same(mod, monkeypatch):
    normal, _ = run(mod, monkeypatch, {"chart": False})
    check, _ = run(mod, monkeypatch, {"chart": False}, check_mode=True)
    for result in (normal, check):
        result["report"].pop("generated_at")
    assert check["report"] == normal["report"] and check["chart_html"] is None and check["changed"] is False
