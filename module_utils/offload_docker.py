# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: the pure logic that reads the Docker engine's answers (inspect, stats, ps and
# logs) and plans what a remediation does to a container. offload_docker_api.py talks to the engine.
from __future__ import annotations

import re
from datetime import datetime, timezone

CONTAINER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class DockerError(Exception):
    """A Docker engine call failed; the message is one line that names the call's object."""


def container_state(name: str, inspect: dict | None, memory: tuple[int | None, int | None] | None = None) -> dict:
    """The container as the runbook reads it (`docker inspect` State, `docker stats`), plus its memory fraction.
    `memory` is (usage, limit) from the Docker API's stats (api_memory); the configured limit wins over the API's,
    which for a container without one is the host's memory."""
    state = normalize_container(name, inspect)
    usage, api_limit = memory or (None, None)
    if usage is not None and state.get("exists"):
        state["memory_usage"] = usage
    limit = state.get("memory_limit") or api_limit
    usage = state.get("memory_usage")
    state["memory_fraction"] = round(usage / limit, 4) if usage and limit else None
    if inspect:
        state["error"] = (inspect.get("State") or {}).get("Error") or None
        state["restart_count"] = inspect.get("RestartCount", 0)
    return state


def normalize_container(name: str, info: dict | None) -> dict:
    """The engine's inspect of the container (None when absent) -> the facts the rules read."""
    if not info:
        return {"name": name, "exists": False, "status": "absent"}
    state = info.get("State") or {}
    nets = ((info.get("NetworkSettings") or {}).get("Networks") or {})
    return {"name": name, "exists": True, "status": state.get("Status"), "exit_code": state.get("ExitCode"),
           "oom_killed": bool(state.get("OOMKilled")), "started_at": state.get("StartedAt"),
           "finished_at": state.get("FinishedAt"), "networks": sorted(nets),
           "memory_limit": (info.get("HostConfig") or {}).get("Memory") or None, "memory_usage": None}


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


RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def rfc3339_epoch(text: str | None) -> float | None:
    """The engine's timestamps (StartedAt: nanoseconds, 'Z' or an offset) -> seconds since the epoch; None for
    the zero time of a container never started, or text that is not such a timestamp."""
    match = RFC3339.match(text or "")
    if not match or match.group(1).startswith("0001-"):
        return None
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    moment = datetime.fromisoformat(match.group(1) + zone).astimezone(timezone.utc)
    return moment.timestamp() + float("0" + (match.group(2) or ".0")[:10])


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


def plan(params: dict, state: dict) -> list[tuple[str, dict, str]]:
    """What to do to the container, as (action, its arguments, description) for DockerEngine.act; pure, so check
    mode shows the same plan. Only start, restart, unpause and network connect: nothing is ever re-created."""
    name, steps = params["name"], []
    status = state.get("status")
    if params["state"] == "info":
        return steps
    if params["state"] == "restarted":
        steps.append(("restart", {}, f"restart {name} ({stop_reason(state) or 'running'})"))
    elif status == "paused":
        steps.append(("unpause", {}, f"unpause {name}"))
    elif status != "running":
        steps.append(("start", {}, f"start {name} ({stop_reason(state)})"))
    elif (params["restart_if_memory_above"] is not None and state.get("memory_fraction") is not None
          and state["memory_fraction"] > params["restart_if_memory_above"]):
        steps.append(("restart", {}, f"restart {name} (memory at {state['memory_fraction']:.0%} of "
                                     f"its limit > {params['restart_if_memory_above']:.0%})"))
    attached = set(state.get("networks") or [])
    for net in params["networks"]:
        if net["name"] not in attached:
            steps.append(("connect", {"network": net["name"], "aliases": list(net["aliases"])},
                          f"connect {name} to network {net['name']} (aliases: {', '.join(net['aliases']) or 'none'})"))
    return steps


def planned_state(state: dict, steps: list[tuple[str, dict, str]]) -> dict:
    """The container as `steps` (plan()) would leave it: what check mode's diff shows as 'after'."""
    after = dict(state)
    if any(action in ("start", "restart", "unpause") for action, _, _ in steps):
        after["status"] = "running"
    joined = [args["network"] for action, args, _ in steps if action == "connect"]
    if joined:
        after["networks"] = sorted(set(state.get("networks") or []) | set(joined))
    return after
