#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_run_job
short_description: Run one K2 offload job by hand inside the Spark container, safely
description:
  - The runbook's "Trigger manual offload test" (Scenario 2, step 5) and Scenario 5's "manual offload with a longer
    timeout" - C(docker exec k2-spark-iceberg python3 offload_generic.py --source-table ...) for one table.
  - Refuses while another offload of the same table runs in the container (K2 has no lock; two jobs of one table
    double its rows).
  - Always passes the table's configured C(--columns) - the job's default C(*) breaks silver on K2.
  - Applies O(timeout) and, when it expires, stops the job inside the container (TERM, then KILL) - a killed
    C(docker exec) client does not stop the process it started.
  - Success is exit code 0 AND one of O(success_patterns) (or O(no_data_patterns)) AND none of
    O(failure_patterns) - K2's job exits 0 after "Failed to update watermark", which silently causes duplicates on
    the next run.
  - The flow-run guard (a RUNNING flow run of the deployment) is the caller's, with M(offload_prefect_info); the role
    C(offload_manual_offload) does both.
version_added: "1.0.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Checks the guard and returns the command it would run (RV(command)), or the PIDs it would stop;
      runs and stops nothing.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: V(run) offloads the rows that arrived since the last watermark every time; V(stop) acts only on
      processes that exist.
extends_documentation_fragment:
  - offload.lock_heartbeat
options:
  action:
    description:
      - V(run) runs the table's offload once. V(stop) stops the table's offload processes still running in the
        container (orphans of a timed-out task; the caller checks first that no flow run is RUNNING).
      - V(wait) waits, at most O(timeout) seconds, until no offload of the table runs in the container (a job a dead
        worker left behind finishes by itself and records its watermark); it fails, naming the job, if one still
        runs. Read-only.
    type: str
    choices: [run, stop, wait]
    default: run
  container:
    description: The Spark container.
    type: str
    default: k2-spark-iceberg
  script:
    description: Path of the offload script inside the container.
    type: str
    default: /home/iceberg/offload/offload_generic.py
  python:
    description: Python interpreter inside the container.
    type: str
    default: python3
  table:
    description: The table's TABLE_CONFIG entry (one element of the inventory's C(k2_tables)).
    type: dict
    required: true
    suboptions:
      source: {description: ClickHouse source table (the watermark key)., type: str, required: true}
      target: {description: "Iceberg table, C(namespace.name).", type: str, required: true}
      layer: {description: Medallion layer., type: str, required: true, choices: [bronze, silver, gold]}
      timestamp_col: {description: Cursor timestamp column., type: str, required: true}
      sequence_col: {description: Cursor sequence column., type: str, required: true}
      columns: {description: "Comma-separated column list passed as C(--columns).", type: str, default: "*"}
  timeout:
    description: Seconds before the job is stopped inside the container (K2's task timeout is 600); with
      O(action=wait), how long to wait for the table's running job to finish.
    type: int
    default: 600
  success_patterns:
    description: Lines that mean success; one must appear (K2 prints the first, the runbook expects the second).
    type: list
    elements: str
    default: [Offload job completed successfully, Offload completed successfully]
  failure_patterns:
    description: Lines that mean failure even with exit code 0.
    type: list
    elements: str
    default: [Failed to update watermark]
  no_data_patterns:
    description:
      - Lines that mean "nothing new to offload" (exit 0 without a success line); such a run succeeds with
        RV(rows_offloaded=0). K2 leaves the watermark row C(running) after such a run.
    type: list
    elements: str
    default: [No new data to offload, No new rows to offload]
  output_lines:
    description: How many of the job's last output lines to return.
    type: int
    default: 40
requirements:
  - docker (the Docker SDK for Python) >= 7.0 on the Docker host (no docker CLI needed).
"""

EXAMPLES = r"""
- name: Stop the orphaned job of a timed-out task (no flow run is RUNNING)
  offload_run_job:
    action: stop
    table: "{{ k2_tables | selectattr('source', 'equalto', 'bronze_trades_binance') | first }}"

- name: Single-table manual offload test (runbook Scenario 2, step 5)
  offload_run_job:
    table: "{{ k2_tables | selectattr('source', 'equalto', 'bronze_trades_binance') | first }}"
    timeout: 600
  register: manual_offload
"""

RETURN = r"""
lock_heartbeat:
  description: With O(lock_path) and O(lock_token), the heartbeats renewed during the wait and why the lock was
    lost (null while held).
  returned: with O(action=run) and O(action=wait) once the job ran or the wait ended; null without O(lock_path)
    and O(lock_token), or in check mode
  type: dict
  sample: {beats: 31, lost: null}
waited:
  description: With O(action=wait), whether a job of the table was running when the wait began.
  returned: with O(action=wait)
  type: bool
command:
  description: The job as the equivalent C(docker exec) command line; it runs (or in check mode would run) through
    the Docker API.
  returned: always
  type: list
  elements: str
exit_code:
  description: Exit code of the job; null if it was stopped on timeout or did not run.
  returned: always
  type: int
succeeded:
  description: Exit 0, a success line and no failure line.
  returned: always
  type: bool
reason:
  description: One line saying why the run is (not) a success.
  returned: always
  type: str
timed_out:
  description: Whether O(timeout) expired.
  returned: always
  type: bool
stopped_pids:
  description: PIDs (in the container) of the job's processes stopped after the timeout (V(stop) - the orphans
    stopped).
  returned: always
  type: list
  elements: int
rows_offloaded:
  description: Rows the job reports ("Rows offloaded"); null if it did not say.
  returned: always
  type: int
duration_seconds:
  description: Wall time of the run.
  returned: always
  type: float
output_tail:
  description: The last O(output_lines) lines of the job's output.
  returned: always
  type: list
  elements: str
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.offload_common import check_tables, tables_argument_spec
from ansible.module_utils.offload_docker import CONTAINER_NAME, DockerError, parse_offload_processes
from ansible.module_utils.offload_docker_api import DOCKER_SDK_IMPORT_ERROR, HAS_DOCKER_SDK, DockerEngine
from ansible.module_utils.offload_lock import Heartbeat, heartbeat_argument_spec
from ansible.module_utils.offload_run_job_logic import job_argv, judge, rows_offloaded

PS_ARGV = ["ps", "-eo", "pid=,etimes=,args="]


def jobs_of_table(docker: DockerEngine, container: str, script: str, table: str) -> list[dict]:
    rc, out = docker.exec(container, PS_ARGV)
    if rc != 0:
        raise DockerError(f"cannot list processes in container {container}: "
                          f"{(out or str(rc)).strip().splitlines()[-1]}")
    return [j for j in parse_offload_processes(out, script.rsplit("/", 1)[-1]) if j["table"] == table]


def stop_jobs(docker: DockerEngine, container: str, script: str, table: str) -> list[int]:
    """TERM the table's jobs in the container, KILL what is left after 5 s; returns the PIDs found."""
    pids = [j["pid"] for j in jobs_of_table(docker, container, script, table)]
    if pids:
        docker.exec(container, ["kill", "-TERM", *map(str, pids)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and jobs_of_table(docker, container, script, table):
            time.sleep(0.5)
        left = [j["pid"] for j in jobs_of_table(docker, container, script, table)]
        if left:
            docker.exec(container, ["kill", "-KILL", *map(str, left)])
    return pids


def stop_orphans(module: AnsibleModule, docker: DockerEngine, p: dict, source: str) -> None:
    try:
        jobs = jobs_of_table(docker, p["container"], p["script"], source)
        if module.check_mode or not jobs:
            module.exit_json(changed=bool(jobs), stopped_pids=[j["pid"] for j in jobs], jobs=jobs)
        stopped = stop_jobs(docker, p["container"], p["script"], source)
    except DockerError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, stopped_pids=stopped, jobs=jobs)


def wait_idle(module: AnsibleModule, docker: DockerEngine, p: dict, source: str, beat: Heartbeat) -> None:
    deadline = time.monotonic() + p["timeout"]
    try:
        jobs = jobs_of_table(docker, p["container"], p["script"], source)
        waited = bool(jobs)
        while jobs and time.monotonic() < deadline:
            beat()
            time.sleep(2)
            jobs = jobs_of_table(docker, p["container"], p["script"], source)
    except DockerError as exc:
        module.fail_json(msg=str(exc))
    if jobs:
        module.fail_json(msg=f"An offload of {source} is still running in {p['container']} after {p['timeout']} s "
                             f"(pid {jobs[0]['pid']}, running {jobs[0]['elapsed_seconds']} s): a second run now would "
                             "double its rows.", jobs=jobs, lock_heartbeat=beat.summary())
    module.exit_json(changed=False, waited=waited, jobs=[], lock_heartbeat=beat.summary())


def main() -> None:
    table_options = tables_argument_spec()["tables"]["options"]
    module = AnsibleModule(
        argument_spec={
            "action": {"type": "str", "default": "run", "choices": ["run", "stop", "wait"]},
            "container": {"type": "str", "default": "k2-spark-iceberg"},
            "script": {"type": "str", "default": "/home/iceberg/offload/offload_generic.py"},
            "python": {"type": "str", "default": "python3"},
            "table": {"type": "dict", "required": True, "options": table_options},
            "timeout": {"type": "int", "default": 600},
            "success_patterns": {"type": "list", "elements": "str",
                                 "default": ["Offload job completed successfully", "Offload completed successfully"]},
            "failure_patterns": {"type": "list", "elements": "str", "default": ["Failed to update watermark"]},
            "no_data_patterns": {"type": "list", "elements": "str",
                                 "default": ["No new data to offload", "No new rows to offload"]},
            "output_lines": {"type": "int", "default": 40},
            **heartbeat_argument_spec(),
        },
        supports_check_mode=True,
    )
    p = module.params
    check_tables(module, [p["table"]])
    if not CONTAINER_NAME.fullmatch(p["container"]):
        module.fail_json(msg=f"Invalid container name {p['container']!r}.")
    if p["timeout"] <= 0:
        module.fail_json(msg=f"timeout must be positive, got {p['timeout']}.")
    if not [s for s in p["success_patterns"] if s.strip()]:
        module.fail_json(msg="success_patterns must name at least one success line.")
    if not HAS_DOCKER_SDK:
        module.fail_json(msg=missing_required_lib("docker"), exception=str(DOCKER_SDK_IMPORT_ERROR))
    source = p["table"]["source"]
    argv = job_argv(p["python"], p["script"], p["table"])
    result = {"changed": False, "command": ["docker", "exec", p["container"], *argv], "exit_code": None,
              "succeeded": False, "timed_out": False, "stopped_pids": [], "rows_offloaded": None,
              "duration_seconds": 0.0, "output_tail": []}
    beat = Heartbeat(p["lock_path"], p["lock_token"], module.check_mode)
    try:
        docker = DockerEngine()
        if p["action"] == "stop":
            stop_orphans(module, docker, p, source)
        if p["action"] == "wait":
            wait_idle(module, docker, p, source, beat)
        busy = jobs_of_table(docker, p["container"], p["script"], source)
    except DockerError as exc:
        module.fail_json(msg=str(exc), **result)
    if busy:
        module.fail_json(msg=f"Refusing to offload {source}: an offload of it is already running in {p['container']} "
                             f"(pid {busy[0]['pid']}, {busy[0]['elapsed_seconds']} s); two concurrent runs double "
                             "its rows.", **result)
    if module.check_mode:
        module.exit_json(**{**result, "changed": True, "reason": f"would run the offload of {source} (check mode)"})

    started = time.monotonic()
    try:
        exit_code, output = docker.run_job(p["container"], argv, p["timeout"], tick=beat)
    except DockerError as exc:
        module.fail_json(msg=f"Manual offload of {source} did not run: {exc}", **result)
    if exit_code is None:
        result["timed_out"] = True
        try:
            result["stopped_pids"] = stop_jobs(docker, p["container"], p["script"], source)
        except DockerError as exc:
            module.warn(f"could not stop the timed-out job of {source}: {exc}")
    lines = (output or "").splitlines()
    result.update(changed=True, exit_code=exit_code,
                  duration_seconds=round(time.monotonic() - started, 2),
                  output_tail=lines[-p["output_lines"]:] if p["output_lines"] else [],
                  rows_offloaded=rows_offloaded(lines), lock_heartbeat=beat.summary())
    result["succeeded"], result["reason"] = judge(result["exit_code"], lines, p["success_patterns"],
                                                  p["failure_patterns"], p["no_data_patterns"],
                                                  p["timeout"] if result["timed_out"] else None)
    if not result["succeeded"]:
        module.fail_json(msg=f"Manual offload of {source} failed: {result['reason']}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
