#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_container
short_description: Start, restart or reconnect one K2 container without ever re-creating it
description:
  - Runbook "Iceberg Offload Consecutive Failures", Scenarios 1-3 (C(docker start), C(docker restart),
    C(docker network connect)) for one existing container of the K2 stack.
  - Reads why a stopped container stopped (exit code, C(OOMKilled), error, the last log lines and the error lines
    among them) before it acts, so the evidence is in the result even after the container runs again.
  - Talks to the Docker engine through the Docker SDK for Python (start, restart, unpause, network connect; no
    docker CLI needed). Unlike
    M(community.docker.docker_container) it never re-creates a container on configuration drift, so the options
    the container was created with (volumes, environment, limits) are never lost.
  - Waits until the container runs and stays running; a container that exits again at once is a failure with its
    last log lines.
version_added: "1.0.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Reports the actions it would take (RV(actions)) and changes nothing.
  diff_mode:
    support: full
    details: Before/after of status, exit code, networks and memory fraction.
  idempotent:
    support: partial
    details: C(state=started) with O(networks) and O(restart_if_memory_above) acts only when needed;
      C(state=restarted) restarts every time, by design.
options:
  name:
    description: Name of the existing container (K2 C(k2-clickhouse), C(k2-prefect-worker), C(k2-spark-iceberg)).
    type: str
    required: true
  state:
    description:
      - C(info) only reads. C(started) starts (or unpauses) the container if it does not run.
      - C(restarted) restarts it (starts it if stopped); not idempotent by design.
    type: str
    choices: [info, started, restarted]
    default: started
  restart_if_memory_above:
    description:
      - With O(state=started), restart a running container whose memory use is above this fraction of its limit
        (the runbook's "If >90% memory, restart ClickHouse"). Unset = never.
    type: float
  networks:
    description: Networks the container must be attached to, with its aliases there (Scenario 2, network partition).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Network name (K2 C(k2-market-data-platform_k2-net); the runbook says C(k2-network)).
        type: str
        required: true
      aliases:
        description: DNS aliases of the container on that network (K2's compose service name, e.g. C(clickhouse)).
        type: list
        elements: str
        default: []
  log_lines:
    description: How many of the container's last log lines to capture before acting on a stopped container.
    type: int
    default: 100
  wait_timeout:
    description: Seconds to wait until the container is running after a start or restart.
    type: int
    default: 60
  refuse_start_if_logs_match:
    description:
      - A regular expression. When the stopped container's last O(log_lines) lines match it, the module fails
        with those lines and does not start it - starting is not safe (for PostgreSQL, data-directory errors,
        a start would fail again or make things worse). Unset = always start.
    type: str
requirements:
  - docker (the Docker SDK for Python) >= 7.0 on the Docker host, and permission to use the Docker daemon.
notes:
  - A container that does not exist is a failure; re-creating the stack (C(docker compose up)) is a human decision.
  - The engine is found like the docker CLI finds it (E(DOCKER_HOST), E(DOCKER_TLS_VERIFY), E(DOCKER_CERT_PATH));
    each call is bounded (60 s), so a hung Docker API is a failure that names the call, not a run that never ends.
seealso:
  - module: community.docker.docker_container
"""

EXAMPLES = r"""
- name: Start the Prefect worker if it stopped, keeping why it stopped
  offload_container:
    name: k2-prefect-worker
    state: started
  register: worker

- name: ClickHouse running, attached to the stack's network, restarted if above 90 % of its memory
  offload_container:
    name: k2-clickhouse
    state: started
    restart_if_memory_above: 0.9
    networks:
      - name: k2-market-data-platform_k2-net
        aliases: [clickhouse]

- name: Restart the Spark container after an OOM kill (not idempotent by design)
  offload_container:
    name: k2-spark-iceberg
    state: restarted
"""

RETURN = r"""
before:
  description: The container before any action (status, running, exit_code, oom_killed, error, networks,
    memory_usage, memory_limit, memory_fraction, restart_count, started_at, finished_at).
  returned: always
  type: dict
after:
  description: The container after the actions (same keys as RV(before)); equal to RV(before) in check mode.
  returned: always
  type: dict
actions:
  description: What was done (or, in check mode, would be done), in order.
  returned: always
  type: list
  elements: str
  sample: ["start k2-prefect-worker (exited, exit code 137, OOMKilled)"]
stop_reason:
  description: Why the container was not running, one line; null when it was running.
  returned: always
  type: str
log_tail:
  description: The last O(log_lines) log lines, read before acting when the container was not running or was
    restarted.
  returned: always
  type: list
  elements: str
error_lines:
  description: The lines of RV(log_tail) that name an error, a fatal signal or a kill.
  returned: always
  type: list
  elements: str
"""

import re
import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.offload_docker import CONTAINER_NAME, DockerError, error_lines, plan, planned_state, stop_reason
from ansible.module_utils.offload_docker_api import DOCKER_SDK_IMPORT_ERROR, HAS_DOCKER_SDK, DockerEngine


def wait_running(docker: DockerEngine, name: str, timeout: int) -> dict:
    """Running, and still running (same start) a moment later: a crash loop is not a recovery."""
    deadline = time.monotonic() + timeout
    while True:
        state = docker.state(name)
        if state.get("status") == "running":
            time.sleep(1)
            again = docker.state(name)
            if again.get("status") == "running" and again.get("started_at") == state.get("started_at"):
                return again
        if time.monotonic() > deadline:
            lines = docker.logs(name, 5)
            raise DockerError(f"container {name} is not running {timeout} s after the start ({stop_reason(state)}); "
                              f"last log line: {lines[-1] if lines else 'none'}")
        time.sleep(1)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "default": "started", "choices": ["info", "started", "restarted"]},
            "restart_if_memory_above": {"type": "float"},
            "networks": {"type": "list", "elements": "dict", "default": [], "options": {
                "name": {"type": "str", "required": True},
                "aliases": {"type": "list", "elements": "str", "default": []}}},
            "log_lines": {"type": "int", "default": 100},
            "wait_timeout": {"type": "int", "default": 60},
            "refuse_start_if_logs_match": {"type": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    names = [params["name"]] + [n["name"] for n in params["networks"]] + [a for n in params["networks"]
                                                                           for a in n["aliases"]]
    bad = [n for n in names if not CONTAINER_NAME.fullmatch(n or "")]
    if bad:
        module.fail_json(msg=f"Invalid container, network or alias name(s) {', '.join(repr(b) for b in bad)}: "
                             "letters, digits, '_', '.', '-' only.")
    threshold = params["restart_if_memory_above"]
    if threshold is not None and not 0 < threshold <= 1:
        module.fail_json(msg=f"restart_if_memory_above must be a fraction in (0, 1], got {threshold}.")
    if params["log_lines"] < 0 or params["wait_timeout"] <= 0:
        module.fail_json(msg="log_lines must be >= 0 and wait_timeout > 0.")
    try:
        unsafe = re.compile(params["refuse_start_if_logs_match"]) if params["refuse_start_if_logs_match"] else None
    except re.error as exc:
        module.fail_json(msg=f"refuse_start_if_logs_match is not a valid regular expression: {exc}.")

    if not HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib("docker"), exception=str(DOCKER_SDK_IMPORT_ERROR))
    try:
        docker = DockerEngine()
        before = docker.state(params["name"], with_memory=threshold is not None)
        if not before.get("exists"):
            module.fail_json(msg=f"Container {params['name']} does not exist: re-creating the stack "
                                 "(docker compose up) is a human decision; escalate.")
        steps = plan(params, before)
        needs_logs = before.get("status") != "running" or any(verb == "restart" for verb, _, _ in steps)
        tail = (docker.logs(params["name"], params["log_lines"], since=before.get("started_at"))
                if needs_logs and params["log_lines"] else [])
        blocking = [line for line in tail if unsafe and unsafe.search(line)] if before.get("status") != "running" else []
        if blocking and any(verb in ("start", "restart") for verb, _, _ in steps):
            module.fail_json(msg=f"{params['name']} not started: starting it is not safe, its last log lines show "
                                 f"{blocking[-1].strip()[:300]!r} ({stop_reason(before)}); escalate with the evidence.",
                             stop_reason=stop_reason(before), log_tail=tail, error_lines=error_lines(tail),
                             unsafe_lines=blocking[-10:], before=before, actions=[])
        after = before
        if steps and not module.check_mode:
            for action, args, _ in steps:
                docker.act(params["name"], action, args)
            after = wait_running(docker, params["name"], params["wait_timeout"])
            if threshold is not None:
                after = docker.state(params["name"], with_memory=True)
    except DockerError as exc:
        module.fail_json(msg=str(exc))

    keys = ("status", "exit_code", "oom_killed", "networks", "memory_fraction")
    module.exit_json(
        changed=bool(steps), actions=[desc for _, _, desc in steps], before=before, after=after,
        stop_reason=stop_reason(before), log_tail=tail, error_lines=error_lines(tail),
        diff={"before": {k: before.get(k) for k in keys},
              "after": {k: (planned_state(before, steps) if module.check_mode else after).get(k) for k in keys}})


if __name__ == "__main__":
    main()
