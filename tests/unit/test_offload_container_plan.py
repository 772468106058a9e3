"""Pure logic of library/offload_container.py (module_utils/offload_docker.py): why a container stopped, and the
steps it will take through the Docker engine."""
from __future__ import annotations

import copy

import pytest

import offload_docker

NET = "k2-market-data-platform_k2-net"


@pytest.fixture(scope="module")
def mod():
    return offload_docker


def state(status="running", exit_code=0, oom=False, error=None, networks=(NET,), memory_fraction=None,
          name="k2-clickhouse"):
    """What offload_docker.container_state returns for an existing container."""
    return {"name": name, "exists": True, "status": status, "exit_code": exit_code, "oom_killed": oom,
            "started_at": "2026-11-26T07:00:00.123456789Z", "finished_at": "2026-11-26T07:31:02.987654321Z",
            "networks": sorted(networks), "memory_limit": 1610612736, "memory_usage": None,
            "memory_fraction": memory_fraction, "error": error, "restart_count": 0}


def params(name="k2-clickhouse", state="started", memory=None, networks=()):
    return {"name": name, "state": state, "restart_if_memory_above": memory, "networks": list(networks),
            "log_lines": 100, "wait_timeout": 60}


# ---------------------------------------------------------------- stop_reason

@pytest.mark.parametrize("kwargs, reason", [
    ({"status": "running"}, None),
    ({"status": "running", "exit_code": 137, "oom": True}, None),  # a previous kill, but it runs now
    ({"status": "exited", "exit_code": 137, "oom": True}, "exited, exit code 137, OOMKilled"),
    ({"status": "exited", "exit_code": 137}, "exited, exit code 137"),
    ({"status": "exited", "exit_code": 0}, "exited, exit code 0"),
    ({"status": "exited", "exit_code": 1, "error": "connection refused"},
     "exited, exit code 1, error: connection refused"),
    ({"status": "exited", "exit_code": 137, "oom": True, "error": "x"}, "exited, exit code 137, OOMKilled, error: x"),
    ({"status": "paused"}, "paused"),
    ({"status": "created"}, "created"),
    ({"status": "dead", "exit_code": 255}, "dead, exit code 255"),
    ({"status": "restarting", "exit_code": 1}, "restarting, exit code 1"),
    ({"status": None}, "unknown"),
])
def test_stop_reason(mod, kwargs, reason):
    assert mod.stop_reason(state(**kwargs)) == reason


def test_stop_reason_of_real_inspect_output(mod):
    inspect = {"State": {"Status": "exited", "Running": False, "OOMKilled": True, "ExitCode": 137, "Error": ""},
               "HostConfig": {"Memory": 2 * 2**30}, "NetworkSettings": {"Networks": {NET: {}}}, "RestartCount": 0}
    assert mod.stop_reason(offload_docker.container_state("k2-spark-iceberg", inspect)) == \
        "exited, exit code 137, OOMKilled"


# ---------------------------------------------------------------- plan: start / unpause / restart

def test_running_container_needs_nothing(mod):
    assert mod.plan(params(networks=[{"name": NET, "aliases": ["clickhouse"]}]), state()) == []


def test_exited_container_is_started_with_its_stop_reason(mod):
    steps = mod.plan(params(name="k2-prefect-worker"),
                     state("exited", 137, oom=True, name="k2-prefect-worker"))
    assert steps == [("start", {},
                      "start k2-prefect-worker (exited, exit code 137, OOMKilled)")]


@pytest.mark.parametrize("status, exit_code, reason", [
    ("created", 0, "created"),
    ("dead", 0, "dead"),  # not "exited": exit code 0 is not worth naming
    ("dead", 255, "dead, exit code 255"),
    ("restarting", 1, "restarting, exit code 1"),
])
def test_other_stopped_states_are_started(mod, status, exit_code, reason):
    assert mod.plan(params(), state(status, exit_code)) == [
        ("start", {}, f"start k2-clickhouse ({reason})")]


def test_paused_container_is_unpaused_not_started(mod):
    assert mod.plan(params(), state("paused")) == [("unpause", {}, "unpause k2-clickhouse")]


@pytest.mark.parametrize("kwargs, why", [
    ({"status": "running"}, "running"),
    ({"status": "exited", "exit_code": 137, "oom": True}, "exited, exit code 137, OOMKilled"),
    ({"status": "paused"}, "paused"),
])
def test_restarted_always_restarts(mod, kwargs, why):
    steps = mod.plan(params(name="k2-spark-iceberg", state="restarted"), state(name="k2-spark-iceberg", **kwargs))
    assert steps == [("restart", {}, f"restart k2-spark-iceberg ({why})")]


def test_restarted_is_not_idempotent_by_design(mod):
    # a running, healthy container is restarted every time it is asked to be (the plan used to be compared
    # with itself, which any output satisfied)
    p, s = params(state="restarted"), state()
    expected = [("restart", {}, "restart k2-clickhouse (running)")]
    assert mod.plan(p, s) == expected
    assert mod.plan(p, s) == expected


def test_info_never_acts(mod):
    p = params(state="info", memory=0.5, networks=[{"name": NET, "aliases": ["clickhouse"]}])
    assert mod.plan(p, state("exited", 137, oom=True, networks=(), memory_fraction=0.99)) == []
    assert mod.plan(p, state("paused", networks=())) == []


# ---------------------------------------------------------------- plan: memory

def test_memory_above_threshold_restarts(mod):
    assert mod.plan(params(memory=0.9), state(memory_fraction=0.9667)) == [
        ("restart", {}, "restart k2-clickhouse (memory at 97% of its limit > 90%)")]


@pytest.mark.parametrize("memory, fraction", [
    (0.9, 0.5),     # below
    (0.9, 0.9),     # at the threshold: not above
    (0.9, None),    # no stats (unknown usage)
    (None, 0.99),   # no threshold: never
    (None, None),
])
def test_memory_not_above_threshold_does_nothing(mod, memory, fraction):
    assert mod.plan(params(memory=memory), state(memory_fraction=fraction)) == []


def test_memory_threshold_does_not_add_a_second_restart(mod):
    steps = mod.plan(params(state="restarted", memory=0.9), state(memory_fraction=0.99))
    assert [verb for verb, _, _ in steps] == ["restart"]
    assert steps[0][2] == "restart k2-clickhouse (running)"


def test_memory_threshold_on_a_stopped_container_starts_it(mod):
    steps = mod.plan(params(memory=0.9), state("exited", 137, oom=True, memory_fraction=0.99))
    assert [(verb, args) for verb, args, _ in steps] == [("start", {})]


def test_memory_threshold_on_a_paused_container_unpauses_it(mod):
    steps = mod.plan(params(memory=0.9), state("paused", memory_fraction=0.99))
    assert [verb for verb, _, _ in steps] == ["unpause"]


# ---------------------------------------------------------------- plan: networks

def test_missing_network_is_connected_with_its_alias(mod):
    steps = mod.plan(params(networks=[{"name": NET, "aliases": ["clickhouse"]}]), state(networks=("bridge",)))
    assert steps == [("connect", {"network": NET, "aliases": ["clickhouse"]},
                      f"connect k2-clickhouse to network {NET} (aliases: clickhouse)")]


def test_several_aliases_and_no_alias(mod):
    steps = mod.plan(params(networks=[{"name": NET, "aliases": ["clickhouse", "ch"]},
                                      {"name": "monitoring", "aliases": []}]), state(networks=()))
    assert steps == [
        ("connect", {"network": NET, "aliases": ["clickhouse", "ch"]},
         f"connect k2-clickhouse to network {NET} (aliases: clickhouse, ch)"),
        ("connect", {"network": "monitoring", "aliases": []},
         "connect k2-clickhouse to network monitoring (aliases: none)")]


def test_only_missing_networks_are_connected(mod):
    steps = mod.plan(params(networks=[{"name": NET, "aliases": ["clickhouse"]}, {"name": "monitoring", "aliases": []}]),
                     state(networks=(NET,)))
    assert [args for _, args, _ in steps] == [{"network": "monitoring", "aliases": []}]


def test_already_attached_network_needs_nothing(mod):
    assert mod.plan(params(networks=[{"name": NET, "aliases": ["clickhouse"]}]), state(networks=(NET, "bridge"))) == []


@pytest.mark.parametrize("networks", [None, []])
def test_container_without_networks_key_is_connected(mod, networks):
    s = state()
    s["networks"] = networks
    steps = mod.plan(params(networks=[{"name": NET, "aliases": ["clickhouse"]}]), s)
    assert [verb for verb, _, _ in steps] == ["connect"]


def test_start_comes_before_connect(mod):
    steps = mod.plan(params(name="k2-prefect-worker", networks=[{"name": NET, "aliases": ["prefect-worker"]}]),
                     state("exited", 1, networks=(), name="k2-prefect-worker"))
    assert [(verb, args) for verb, args, _ in steps] == [
        ("start", {}), ("connect", {"network": NET, "aliases": ["prefect-worker"]})]


def test_memory_restart_comes_before_connect(mod):
    steps = mod.plan(params(memory=0.9, networks=[{"name": NET, "aliases": ["clickhouse"]}]),
                     state(networks=(), memory_fraction=0.95))
    assert [verb for verb, _, _ in steps] == ["restart", "connect"]


def test_plan_does_not_modify_its_inputs(mod):
    p = params(memory=0.9, networks=[{"name": NET, "aliases": ["clickhouse"]}])
    s = state("exited", 137, oom=True, networks=())
    p0, s0 = copy.deepcopy(p), copy.deepcopy(s)
    mod.plan(p, s)
    assert (p, s) == (p0, s0)
