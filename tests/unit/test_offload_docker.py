"""Pure logic of offload_docker: the engine's inspect + memory stats -> container state, log tail, error lines."""
from __future__ import annotations

import pytest

import offload_docker as D

NET = "k2-market-data-platform_k2-net"
GIB = 2**30
MIB = 2**20


def inspect(status="running", exit_code=0, oom=False, error="", networks=(NET,), memory=int(1.5 * GIB),
            restart_count=0, **extra):
    """One element of `docker container inspect k2-clickhouse` (the fields the module reads, plus a few others)."""
    running = status == "running"
    data = {
        "Id": "3f2a9c1be0d4" + "0" * 52,
        "Name": "/k2-clickhouse",
        "RestartCount": restart_count,
        "State": {"Status": status, "Running": running, "Paused": status == "paused", "Restarting": False,
                  "OOMKilled": oom, "Dead": False, "Pid": 4242 if running else 0, "ExitCode": exit_code,
                  "Error": error, "StartedAt": "2026-11-26T07:00:00.123456789Z",
                  "FinishedAt": "0001-01-01T00:00:00Z" if running else "2026-11-26T07:31:02.987654321Z"},
        "HostConfig": {"Memory": memory, "NetworkMode": NET, "RestartPolicy": {"Name": "no"}},
        "NetworkSettings": {"Networks": {n: {"Aliases": ["k2-clickhouse", "clickhouse"], "IPAddress": "172.18.0.3"}
                                         for n in networks}},
    }
    data.update(extra)
    return data


# ---------------------------------------------------------------- container_state

def test_running_container_with_memory_has_memory_fraction_of_its_limit():
    state = D.container_state("k2-clickhouse", inspect(), (1556925644, 8 * GIB))
    assert state == {
        "name": "k2-clickhouse", "exists": True, "status": "running", "exit_code": 0, "oom_killed": False,
        "started_at": "2026-11-26T07:00:00.123456789Z", "finished_at": "0001-01-01T00:00:00Z",
        "networks": [NET], "memory_limit": 1610612736, "memory_usage": 1556925644,
        "memory_fraction": 0.9667, "error": None, "restart_count": 0}


@pytest.mark.parametrize("usage, fraction", [
    (1556925644, 0.9667),
    (768 * MIB, 0.5),
    (int(1.5 * GIB), 1.0),
    (int(12.5 * MIB), 0.0081),
])
def test_memory_fraction_uses_the_containers_limit(usage, fraction):
    assert D.container_state("k2-clickhouse", inspect(), (usage, 8 * GIB))["memory_fraction"] == fraction


def test_memory_fraction_prefers_hostconfig_limit_over_the_apis_limit():
    # HostConfig.Memory = 1 GiB; the API's stats say 2 GiB: the configured limit wins.
    state = D.container_state("k2-clickhouse", inspect(memory=GIB), (512 * MIB, 2 * GIB))
    assert (state["memory_limit"], state["memory_usage"], state["memory_fraction"]) == (GIB, 512 * MIB, 0.5)


def test_without_a_memory_limit_the_fraction_is_of_the_apis_limit():
    # HostConfig.Memory 0 = unlimited: the API's stats report the host's memory as the limit.
    state = D.container_state("k2-prefect-worker", inspect(memory=0), (int(812.3 * MIB), int(7.6 * GIB)))
    assert state["memory_limit"] is None
    assert state["memory_usage"] == int(812.3 * MIB)
    assert state["memory_fraction"] == round(int(812.3 * MIB) / int(7.6 * GIB), 4) == 0.1044


def test_without_stats_there_is_no_memory_fraction():
    state = D.container_state("k2-clickhouse", inspect())
    assert (state["memory_limit"], state["memory_usage"], state["memory_fraction"]) == (1610612736, None, None)


@pytest.mark.parametrize("memory", [(None, None), (None, 8 * GIB), (0, 0), (0, 8 * GIB)])
def test_unusable_memory_gives_no_fraction(memory):
    # A container that is stopping reports no usage (or 0): no usage -> no fraction.
    state = D.container_state("k2-prefect-worker", inspect(memory=0), memory)
    assert state["exists"] is True and state["status"] == "running"
    assert state["memory_fraction"] is None


def test_oom_killed_container():
    state = D.container_state("k2-spark-iceberg", inspect(status="exited", exit_code=137, oom=True,
                                                          restart_count=3))
    assert state["exists"] is True
    assert (state["status"], state["exit_code"], state["oom_killed"]) == ("exited", 137, True)
    assert state["finished_at"] == "2026-11-26T07:31:02.987654321Z"
    assert (state["error"], state["restart_count"], state["memory_fraction"]) == (None, 3, None)


def test_state_error_is_kept():
    error = ("failed to create task for container: failed to create shim task: OCI runtime create failed: "
             "unable to start container process: exec: \"python3\": executable file not found in $PATH")
    state = D.container_state("k2-spark-iceberg", inspect(status="exited", exit_code=127, error=error))
    assert state["error"] == error and state["exit_code"] == 127 and state["oom_killed"] is False


def test_paused_container():
    state = D.container_state("k2-clickhouse", inspect(status="paused"))
    assert (state["status"], state["exit_code"], state["exists"]) == ("paused", 0, True)


def test_networks_are_sorted_names():
    state = D.container_state("k2-clickhouse", inspect(networks=("zeta-net", NET, "bridge")))
    assert state["networks"] == ["bridge", NET, "zeta-net"]


@pytest.mark.parametrize("settings", [{}, {"Networks": None}, {"Networks": {}}])
def test_container_without_networks(settings):
    assert D.container_state("k2-clickhouse", inspect(NetworkSettings=settings))["networks"] == []


def test_missing_restart_count_defaults_to_zero():
    data = inspect()
    del data["RestartCount"]
    assert D.container_state("k2-clickhouse", data)["restart_count"] == 0


@pytest.mark.parametrize("memory", [None, (512 * MIB, GIB)])
def test_absent_container(memory):
    assert D.container_state("k2-clickhouse", None, memory) == {
        "name": "k2-clickhouse", "exists": False, "status": "absent", "memory_fraction": None}


# ---------------------------------------------------------------- log_tail / error_lines

LOG = """2026.11.26 07:30:58.100000 [ 1 ] {} <Information> Application: Starting ClickHouse 26.9.2.1

2026.11.26 07:31:01.200000 [ 77 ] {} <Error> executeQuery: Code: 241. DB::Exception: Memory limit (total) exceeded
   \t
2026.11.26 07:31:02.300000 [ 1 ] {} <Fatal> BaseDaemon: ########## Received signal 9
Killed
"""


def test_log_tail_keeps_the_last_non_blank_lines():
    assert D.log_tail(LOG, 2) == [
        "2026.11.26 07:31:02.300000 [ 1 ] {} <Fatal> BaseDaemon: ########## Received signal 9", "Killed"]


def test_log_tail_with_more_lines_than_the_log():
    assert len(D.log_tail(LOG, 100)) == 4
    assert D.log_tail(LOG, 100)[0].endswith("Starting ClickHouse 26.9.2.1")


@pytest.mark.parametrize("text, lines", [(LOG, 0), ("", 5), (None, 5), ("\n \n\t\n", 5)])
def test_log_tail_empty(text, lines):
    assert D.log_tail(text, lines) == []


def test_log_tail_handles_crlf():
    assert D.log_tail("a\r\nb\r\n\r\nc\r\n", 2) == ["b", "c"]


def test_error_lines_are_the_runbooks_grep_plus_crash_lines():
    lines = [
        "2026-11-26 07:31:00,001 - offload_generic - INFO - Reading from ClickHouse",
        "2026-11-26 07:31:01,002 - offload_generic - ERROR - Failed to update watermark: connection lost",
        "java.lang.OutOfMemoryError: Java heap space",
        "FATAL: the database system is shutting down",
        "Segmentation fault (core dumped)",
        "Traceback (most recent call last):",
        "py4j.protocol.Py4JJavaError: An error occurred while calling o42.save",
        "RuntimeException: boom",
        "Killed",
        "2026-11-26 07:31:05,003 - offload_generic - INFO - Offload job completed successfully",
        "Ready for connections",
    ]
    assert D.error_lines(lines) == [lines[1], lines[2], lines[3], lines[4], lines[6], lines[7], lines[8]]


def test_error_lines_of_a_clean_log():
    assert D.error_lines(["Starting", "Ready for connections", "Offload job completed successfully"]) == []
    assert D.error_lines([]) == []


# ---------------------------------------------------------------- names

@pytest.mark.parametrize("name, ok", [
    ("k2-clickhouse", True), ("k2-market-data-platform_k2-net", True), ("clickhouse", True), ("a.b_c-d", True),
    ("-leading-dash", False), ("", False), ("k2 clickhouse", False), ("k2;rm -rf /", False), ("x" * 129, False),
])
def test_container_name_pattern(name, ok):
    assert bool(D.CONTAINER_NAME.fullmatch(name)) is ok


def test_normalize_container():
    info = {"State": {"Status": "exited", "ExitCode": 137, "OOMKilled": True},
            "NetworkSettings": {"Networks": {"k2-network": {}}}, "HostConfig": {"Memory": 1024}}
    out = D.normalize_container("k2-prefect-worker", info)
    assert out["status"] == "exited" and out["oom_killed"] and out["networks"] == ["k2-network"]
    assert out["memory_usage"] is None and out["memory_limit"] == 1024
    assert D.normalize_container("x", None) == {"name": "x", "exists": False, "status": "absent"}


@pytest.mark.parametrize("text, expected", [
    ("2026-11-26T07:00:00Z", 1795676400.0),
    ("2026-11-26T07:00:00.123456789Z", 1795676400.123456789),
    ("2026-11-26T08:00:00.5+01:00", 1795676400.5),
    ("0001-01-01T00:00:00Z", None),  # the zero time of a container never started
    ("", None), (None, None), ("yesterday", None), ("2026-11-26 07:00:00", None),
])
def test_rfc3339_epoch(text, expected):
    assert D.rfc3339_epoch(text) == (pytest.approx(expected, abs=1e-6) if expected is not None else None)


def test_parse_offload_processes():
    ps = """    1     900 /usr/bin/tini-static -- sleep infinity
   42      75 python3 /home/iceberg/offload/offload_generic.py --source-table bronze_trades_binance --layer bronze
   43       0 ps -eo pid=,etimes=,args=
   44       3 sh -c ps aux | grep offload_generic.py
garbage line"""
    jobs = D.parse_offload_processes(ps)
    assert jobs == [{"pid": 42, "elapsed_seconds": 75, "table": "bronze_trades_binance",
                     "args": "python3 /home/iceberg/offload/offload_generic.py --source-table bronze_trades_binance "
                             "--layer bronze"}]


@pytest.mark.parametrize("stats,expected", [
    ({"memory_stats": {"usage": 900, "limit": 1000, "stats": {"inactive_file": 100}}}, (800, 1000)),  # cgroup v2
    ({"memory_stats": {"usage": 900, "limit": 1000, "stats": {"total_inactive_file": 300}}}, (600, 1000)),  # v1
    ({"memory_stats": {"usage": 900, "limit": 1000}}, (900, 1000)),
    ({"memory_stats": {"usage": 50, "limit": 1000, "stats": {"inactive_file": 80}}}, (50, 1000)),
    ({"memory_stats": {}}, (None, None)),
    (None, (None, None)),
])
def test_api_memory_counts_like_docker_stats(stats, expected):
    assert D.api_memory(stats) == expected


def test_container_state_from_the_api_uses_its_memory_and_limit():
    state = D.container_state("k2-clickhouse", inspect(memory=0), memory=(950, 1000))
    assert state["memory_usage"] == 950 and state["memory_fraction"] == 0.95
    assert D.container_state("k2-clickhouse", None, memory=(950, 1000))["exists"] is False
