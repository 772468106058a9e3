# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: the Docker CLI on the Docker host, and the pure logic that reads its
# output. The CLI (not community.docker's docker_container) because a remediation must start, restart or
# reconnect a container without ever re-creating it: `docker start/restart/network connect` cannot recreate.
from __future__ import annotations

import json
import re

CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class DockerError(Exception):
    """A docker command failed; the message is one line that names the command's object."""


def container_state(name: str, inspect: dict | None, stats_line: str = "",
                    memory: tuple[int | None, int | None] | None = None) -> dict:
    """The container as the runbook reads it (`docker inspect` State, `docker stats`), plus its memory fraction.
    `memory` is (usage, limit) from the Docker API (api_memory), instead of the CLI's `stats_line`."""
    stats = {}
    if stats_line.strip():
        try:
            stats = json.loads(stats_line)
        except ValueError:
            stats = {}
    state = normalize_container(name, inspect, stats)
    api_usage, api_limit = memory or (None, None)
    if api_usage is not None and state.get("exists"):
        state["memory_usage"] = api_usage
    limit = (state.get("memory_limit") or api_limit
             or parse_size(str(stats.get("MemUsage", "")).partition("/")[2]))
    usage = state.get("memory_usage")
    state["memory_fraction"] = round(usage / limit, 4) if usage and limit else None
    if inspect:
        state["error"] = (inspect.get("State") or {}).get("Error") or None
        state["restart_count"] = inspect.get("RestartCount", 0)
    return state


def normalize_container(name: str, info: dict | None, stats: dict | None = None) -> dict:
    """docker_container_info's `container` (None when absent) + optional `docker stats` JSON -> the facts
    the rules read."""
    if not info:
        return {"name": name, "exists": False, "status": "absent"}
    state = info.get("State") or {}
    nets = ((info.get("NetworkSettings") or {}).get("Networks") or {})
    out = {"name": name, "exists": True, "status": state.get("Status"), "exit_code": state.get("ExitCode"),
           "oom_killed": bool(state.get("OOMKilled")), "started_at": state.get("StartedAt"),
           "finished_at": state.get("FinishedAt"), "networks": sorted(nets),
           "memory_limit": (info.get("HostConfig") or {}).get("Memory") or None, "memory_usage": None}
    if stats:
        out["memory_usage"] = parse_size(str(stats.get("MemUsage", "")).split("/")[0])
    return out


def api_memory(stats: dict | None) -> tuple[int | None, int | None]:
    """The Docker API's stats -> (usage, limit) in bytes, usage as `docker stats` shows it: page cache that the
    kernel can drop (inactive_file on cgroup v2, total_inactive_file on v1) is not memory pressure."""
    mem = (stats or {}).get("memory_stats") or {}
    usage = mem.get("usage")
    if usage is None:
        return None, mem.get("limit")
    detail = mem.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", 0)) or 0
    return max(0, usage - cache) if cache < usage else usage, mem.get("limit")


SIZE_UNITS = {"b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "kb": 10**3, "mb": 10**6,
              "gb": 10**9, "tb": 10**12}
SIZE = re.compile(r"^\s*([0-9.]+)\s*([a-zA-Z]+)\s*$")


def parse_size(text: str) -> int | None:
    """'812.3MiB' -> bytes (docker stats notation); None when unparseable."""
    match = SIZE.match(text or "")
    if not match or match.group(2).lower() not in SIZE_UNITS:
        return None
    try:
        return int(float(match.group(1)) * SIZE_UNITS[match.group(2).lower()])
    except ValueError:
        return None


PS_LINE = re.compile(r"^\s*(\d+)\s+(\d+)\s+(.*)$")
SOURCE_ARG = re.compile(r"--source-table[= ]+([A-Za-z0-9_]+)")


def parse_offload_processes(ps_output: str, script: str = "offload_generic.py") -> list[dict]:
    """`ps -eo pid=,etimes=,args=` inside the Spark container -> the offload jobs in flight."""
    jobs = []
    for line in (ps_output or "").splitlines():
        match = PS_LINE.match(line)
        if not match or script not in match.group(3) or match.group(3).startswith(("ps ", "sh -c")):
            continue
        table = SOURCE_ARG.search(match.group(3))
        jobs.append({"pid": int(match.group(1)), "elapsed_seconds": int(match.group(2)),
                     "table": table.group(1) if table else None, "args": match.group(3)[:300]})
    return jobs


def log_tail(text: str, lines: int) -> list[str]:
    return [line for line in (text or "").splitlines() if line.strip()][-lines:] if lines else []


def error_lines(lines: list[str]) -> list[str]:
    """The runbook's `docker logs ... | grep -i error` (plus fatal/segfault lines of a crash)."""
    return [line for line in lines if re.search(r"error|fatal|segmentation fault|exception|killed", line, re.I)]


# Upper bound of one docker command (not of `docker exec` jobs, which the caller bounds itself): a Docker API that
# hangs must turn into a clear failure, not a remediation that never ends.
DOCKER_COMMAND_TIMEOUT = 60


class DockerCLI:
    """`docker` run through AnsibleModule.run_command (no shell), each call bounded by coreutils `timeout`."""

    def __init__(self, module, binary: str = "docker", timeout: int = DOCKER_COMMAND_TIMEOUT) -> None:
        self.module = module
        self.binary = module.get_bin_path(binary, required=False) or binary
        self.timeout = timeout
        self.timeout_bin = module.get_bin_path("timeout", required=False)

    def run(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        bound = [self.timeout_bin, "--kill-after=5", str(self.timeout)] if self.timeout_bin else []
        rc, out, err = self.module.run_command([*bound, self.binary, *args])
        if bound and rc == 124:
            raise DockerError(f"`docker {' '.join(args[:3])}` did not answer within {self.timeout} s: the Docker API "
                              "is slow or hung")
        if check and rc != 0:
            detail = (err or out or f"exit code {rc}").strip().splitlines()
            raise DockerError(f"`docker {' '.join(args[:3])}` failed: {detail[-1] if detail else rc}")
        return rc, out, err

    def inspect(self, name: str) -> dict | None:
        rc, out, err = self.run("container", "inspect", name, check=False)
        if rc != 0:
            if "No such" in (err or "") or "no such" in (err or ""):
                return None
            raise DockerError(f"cannot inspect container {name}: {(err or out).strip().splitlines()[-1:] or rc}")
        data = json.loads(out)
        return data[0] if data else None

    def state(self, name: str, with_memory: bool = False) -> dict:
        inspect = self.inspect(name)
        stats = ""
        if with_memory and inspect and (inspect.get("State") or {}).get("Running"):
            rc, out, _ = self.run("stats", "--no-stream", "--format", "{{json .}}", name, check=False)
            stats = out.strip().splitlines()[0] if rc == 0 and out.strip() else ""
        return container_state(name, inspect, stats)

    def logs(self, name: str, lines: int, since: str | None = None) -> list[str]:
        """The last `lines` log lines; with `since` (the container's StartedAt) only its last run's: Docker keeps
        the logs of every earlier run, and an old error must not be read as the reason of this stop."""
        args = ["logs", "--tail", str(lines)] + (["--since", since] if since else []) + [name]
        rc, out, err = self.run(*args, check=False)
        return log_tail((out or "") + (err or ""), lines) if rc == 0 else []

    def exec(self, container: str, argv: list[str], check: bool = False) -> tuple[int, str, str]:
        return self.run("exec", container, *argv, check=check)


def stop_reason(state: dict) -> str | None:
    """Why a container is not running (status, exit code, OOM kill, the engine's error), None when it runs."""
    if state.get("status") == "running":
        return None
    parts = [state.get("status") or "unknown"]
    if state.get("exit_code") not in (None, 0) or state.get("status") == "exited":
        parts.append(f"exit code {state.get('exit_code')}")
    if state.get("oom_killed"):
        parts.append("OOMKilled")
    if state.get("error"):
        parts.append(f"error: {state['error']}")
    return ", ".join(parts)


def plan(params: dict, state: dict) -> list[tuple[str, list[str], str]]:
    """The docker commands to run, as (verb, args, description); pure, so check mode shows the same plan."""
    name, steps = params["name"], []
    status = state.get("status")
    if params["state"] == "info":
        return steps
    if params["state"] == "restarted":
        steps.append(("restart", ["restart", name], f"restart {name} ({stop_reason(state) or 'running'})"))
    elif status == "paused":
        steps.append(("unpause", ["unpause", name], f"unpause {name}"))
    elif status != "running":
        steps.append(("start", ["start", name], f"start {name} ({stop_reason(state)})"))
    elif (params["restart_if_memory_above"] is not None and state.get("memory_fraction") is not None
          and state["memory_fraction"] > params["restart_if_memory_above"]):
        steps.append(("restart", ["restart", name], f"restart {name} (memory at {state['memory_fraction']:.0%} of "
                                                    f"its limit > {params['restart_if_memory_above']:.0%})"))
    attached = set(state.get("networks") or [])
    for net in params["networks"]:
        if net["name"] not in attached:
            args = ["network", "connect"] + [a for alias in net["aliases"] for a in ("--alias", alias)]
            steps.append(("connect", args + [net["name"], name],
                          f"connect {name} to network {net['name']} (aliases: {', '.join(net['aliases']) or 'none'})"))
    return steps
