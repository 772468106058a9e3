#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_container_info
short_description: Read the K2 containers' state, memory, offload processes and files through the Docker API
description:
  - The container side of the runbook's diagnosis (steps 2 and 4) in one module run, through the Docker SDK for
    Python, every call concurrent - C(docker inspect) of each container, the one-shot memory use of some
    (C(docker stats)), C(ps) inside some (the offload jobs in flight) and file checks (the JDBC driver).
  - Returns the containers' state without their environment, so the result carries no secret.
  - A Docker engine that does not answer is a finding, not a failure - RV(reachable=false) with a one-line
    RV(error) - so that the diagnosis can report Docker as blind instead of stopping. A container that does
    not exist is RV(containers.exists=false); one the API could not read is missing from RV(containers) and
    named in RV(errors), because its state is unknown.
  - Never changes anything.
version_added: "1.1.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Read-only; runs the same in check mode (C(ps) and C(test -f) inside a container change nothing).
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Never changes anything (RV(changed) is always false).
options:
  containers:
    description: Containers to inspect.
    type: list
    elements: str
    required: true
  memory_of:
    description: Containers among O(containers) whose memory use to read (a one-shot stats call each).
    type: list
    elements: str
    default: []
  processes_in:
    description: Running containers in which to list processes (C(ps -eo pid=,etimes=,args=)).
    type: list
    elements: str
    default: []
  file_checks:
    description: Files whose presence to check inside a running container (C(test -f)).
    type: list
    elements: dict
    default: []
    suboptions:
      container:
        description: The container.
        type: str
        required: true
      path:
        description: Absolute path of the file inside the container.
        type: str
        required: true
  offload_script:
    description: The offload job's script (K2 C(offload_generic.py)); RV(offload_jobs) lists its processes.
    type: str
    default: offload_generic.py
  timeout:
    description: Upper bound in seconds of each Docker API call; a slower engine is reported unreachable.
    type: int
    default: 10
notes:
  - The engine is found like the docker CLI finds it (E(DOCKER_HOST), E(DOCKER_TLS_VERIFY), E(DOCKER_CERT_PATH)).
requirements:
  - docker (the Docker SDK for Python) >= 7.0
"""

EXAMPLES = r"""
---
- name: Read the stack's containers, ClickHouse's memory, the jobs in Spark and its JDBC driver
  offload_container_info:
    containers: [k2-prefect-worker, k2-clickhouse, k2-spark-iceberg]
    memory_of: [k2-clickhouse]
    processes_in: [k2-spark-iceberg]
    file_checks:
      - container: k2-spark-iceberg
        path: /opt/spark/jars/clickhouse-jdbc-0.4.6-all.jar
  register: k2_containers
"""

RETURN = r"""
reachable:
  description: Whether the Docker engine answered.
  returned: always
  type: bool
error:
  description: Why the engine, or some containers, could not be read; null when everything was read.
  returned: always
  type: str
containers:
  description: Per container read, its state as the runbook reads it.
  returned: always
  type: dict
  sample:
    k2-clickhouse: {name: k2-clickhouse, exists: true, status: running, exit_code: 0, oom_killed: false,
                    started_at: "2026-11-29T10:00:00Z", finished_at: "0001-01-01T00:00:00Z",
                    networks: [k2-network], memory_limit: 1610612736, memory_usage: 278921216,
                    memory_fraction: 0.1732, error: null, restart_count: 0}
errors:
  description: Containers the API could not read, with the reason.
  returned: always
  type: dict
processes:
  description: Per container of O(processes_in), C(rc) (null when the exec could not run), C(output), C(error).
  returned: always
  type: dict
offload_jobs:
  description:
    - Per container of O(processes_in) whose C(ps) answered, the offload jobs running in it (processes of
      O(offload_script)) with C(pid), C(elapsed_seconds), C(table) (its C(--source-table), null when absent) and
      C(args). A container whose C(ps) failed is absent - its jobs are unknown, which is not "none".
  returned: always
  type: dict
  sample: {k2-spark-iceberg: [{pid: 4242, elapsed_seconds: 95, table: bronze_trades_binance,
                               args: "python3 /home/iceberg/offload/offload_generic.py --source-table ..."}]}
files:
  description: Per O(file_checks) entry, C(container), C(path), C(present) (null when unknown) and C(error).
  returned: always
  type: list
  elements: dict
  sample:
    - {container: k2-spark-iceberg, path: /opt/spark/jars/clickhouse-jdbc-0.4.6-all.jar, present: false, error: null}
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.offload_docker import CONTAINER_NAME, parse_offload_processes
from ansible.module_utils.offload_docker_api import DOCKER_SDK_IMPORT_ERROR, HAS_DOCKER_SDK, DockerUnavailable, connect, gather


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "containers": {"type": "list", "elements": "str", "required": True},
            "memory_of": {"type": "list", "elements": "str", "default": []},
            "processes_in": {"type": "list", "elements": "str", "default": []},
            "file_checks": {"type": "list", "elements": "dict", "default": [],
                            "options": {"container": {"type": "str", "required": True},
                                        "path": {"type": "str", "required": True}}},
            "offload_script": {"type": "str", "default": "offload_generic.py"},
            "timeout": {"type": "int", "default": 10},
        },
        supports_check_mode=True,
    )
    params = module.params
    names = params["containers"] + params["memory_of"] + params["processes_in"] + \
        [c["container"] for c in params["file_checks"]]
    bad = sorted({n for n in names if not CONTAINER_NAME.match(n or "")})
    if bad:
        module.fail_json(msg=f"Invalid container name(s) {', '.join(repr(b) for b in bad)}.")
    outside = sorted(set(params["memory_of"]) - set(params["containers"]))
    if outside:
        module.fail_json(msg=f"memory_of names container(s) not in containers: {', '.join(outside)}.")
    relative = [c["path"] for c in params["file_checks"] if not c["path"].startswith("/")]
    if relative:
        module.fail_json(msg=f"file_checks paths must be absolute: {', '.join(relative)}.")
    if not 0 < params["timeout"] <= 600:
        module.fail_json(msg=f"timeout must be between 1 and 600 seconds, got {params['timeout']}.")
    if not HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib("docker"), exception=str(DOCKER_SDK_IMPORT_ERROR))
    try:
        api = connect(params["timeout"])
    except DockerUnavailable as exc:
        module.exit_json(changed=False, reachable=False, error=str(exc), containers={}, errors={}, processes={},
                         offload_jobs={}, files=[])
    try:
        result = gather(api, params["containers"], params["memory_of"], params["processes_in"], params["file_checks"])
    finally:
        api.close()
    jobs = {name: parse_offload_processes(ps["output"], params["offload_script"])
            for name, ps in result["processes"].items() if ps["rc"] == 0}
    module.exit_json(changed=False, offload_jobs=jobs, **result)


if __name__ == "__main__":
    main()
