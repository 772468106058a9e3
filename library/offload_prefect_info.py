#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_prefect_info
short_description: Read K2's Iceberg offload orchestration in Prefect 3 - deployment, flow runs, workers
description:
  - Runbook "Iceberg Offload Consecutive Failures", diagnosis steps 2 and 3, through Prefect's REST API (no
    Prefect client library).
  - Reports the deployment and whether its schedule is paused, the recent flow runs of the deployment (newest
    first) with the number of FAILED/CRASHED runs in a row, the runs in flight, the work pool and its workers'
    heartbeats.
  - For the recent FAILED/CRASHED runs it reads the runs' logs, including the logs of their layer subflows
    (K2's C(offload-bronze-layer) and so on, where the task C(offload-table) logs), keeps the relevant lines and
    parses K2's lines C(✗ Offload failed) (followed by C(Exit code) and C(Stderr)) and C(✗ Offload timeout)
    into the tables that failed.
  - A Prefect server that cannot be reached is a finding (RV(reachable=false) with a one-line RV(error)), not a
    failure. The module fails only on bad input. Flow runs are created and followed by M(offload_prefect).
version_added: "1.1.0"
author: K2 offload automation
extends_documentation_fragment:
  - offload.prefect
  - offload.http_api
  - offload.info_module
  - offload.lock_heartbeat
options:
  recent_runs:
    description:
      - How many of the deployment's most recent flow runs to read (1 to 200). Runs scheduled in the future are
        not counted.
    type: int
    default: 10
  include_logs:
    description:
      - Read the logs of the recent FAILED/CRASHED runs and of their subflows, keep at most 50 relevant lines per
        run (level WARNING or above, or lines about an offload, an error, an exception or a timeout) and parse
        the failed tables from them.
      - Without logs, RV(flow_runs[].failed_tables) falls back to the tables named in the runs' state messages.
    type: bool
    default: true
  wait_for_idle_seconds:
    description:
      - Read again every 5 s until no flow run of the deployment is in flight, for at most this many seconds;
        0 reads once. The refusals of the remediation roles wait like this first, because a run of the schedule
        that was still failing when the remediation started usually ends within a minute.
      - The wait stops at once when the API or the deployment cannot be read (RV(idle=false) with the reason).
    type: int
    default: 0
notes:
  - K2's flow runs one subflow per layer; the C(✗ Offload failed) lines are logged by the task runs of those
    subflows, so their logs are read with the parent run's.
  - RV(consecutive_failures) skips runs still in flight (scheduled, late, pending, running) at the head of the
    list and stops at the first run in another final state (C(COMPLETED), C(CANCELLED)).
  - Heartbeat ages are measured against the Prefect server's clock (its HTTP C(Date) header) when available.
seealso:
  - module: offload_prefect
  - module: offload_alerts
"""

EXAMPLES = r"""
---
- name: Inspect the offload orchestration (runbook step 2 and 3)
  offload_prefect_info:
    api_url: "{{ k2_prefect_api_url }}"
  register: prefect

- name: Worker is down (runbook scenario 1)
  ansible.builtin.debug:
    msg: "No online worker on {{ prefect.work_pool.name }}"
  when: prefect.reachable and not prefect.worker_online

- name: Tables failing in the recent runs
  ansible.builtin.debug:
    msg: "{{ prefect.consecutive_failures }} failed runs in a row; tables {{ prefect.failed_tables }}"

- name: Only the run states, no logs
  offload_prefect_info:
    recent_runs: 5
    include_logs: false
  register: prefect_states
"""

RETURN = r"""
---
lock_heartbeat:
  description: With O(lock_path) and O(lock_token), the heartbeats renewed during O(wait_for_idle_seconds) and why the lock was
    lost (null while held).
  returned: when O(wait_for_idle_seconds) is above 0; null without O(lock_path) and O(lock_token), or in check
    mode
  type: dict
  sample: {beats: 31, lost: null}
reachable:
  description: Whether the Prefect API answered its health check.
  returned: always
  type: bool
  sample: true
api_url:
  description: The API base URL used.
  returned: always
  type: str
  sample: http://127.0.0.1:4200/api
error:
  description: One line describing the first problem met (server unreachable, unexpected answer), else null.
  returned: always
  type: str
  sample: "Prefect API http://127.0.0.1:4200/api is unreachable: [Errno 111] Connection refused"
deployment:
  description: The deployment. RV(deployment.paused) is true when its schedule cannot create runs.
  returned: always
  type: dict
  sample:
    exists: true
    id: f471e6de-7c8a-452b-a699-b9015c9d7cba
    name: iceberg-offload-15min
    paused: true
    schedules: [{cron: "*/15 * * * *", interval: null, rrule: null, timezone: UTC, active: true}]
    work_pool_name: iceberg-offload
    status: READY
    last_polled: "2026-11-26T07:43:04.166220Z"
flow_runs:
  description:
    - The deployment's most recent flow runs, newest (by expected start time) first.
    - C(log_lines) and C(offload_errors) are null for runs that are not FAILED/CRASHED or when
      O(include_logs=false); C(log_truncated) tells that the run had more log lines than one page (200).
    - C(offload_errors) has one entry per failed task attempt, with the exit code, the tail of the job's stderr
      and C(error_line), the stderr line that says what went wrong.
    - C(log_lines) are the messages (plain strings, oldest first) of the run's and its subflows' relevant log
      lines; a long message keeps its head and tail.
  returned: always
  type: list
  elements: dict
  sample:
    - id: 1b99703f-97ac-4a48-86ea-76fb46a73da8
      name: inventive-mantis
      state_type: FAILED
      state_name: Failed
      expected_start_time: "2026-11-26T07:42:27.100000Z"
      start_time: "2026-11-26T07:42:31.449877Z"
      end_time: "2026-11-26T07:42:35.866183Z"
      message: "Flow run encountered an exception: RuntimeError: Offload failed for bronze_trades_binance: ..."
      parameters: {tables: [bronze_trades_binance]}
      failed_tables: [bronze_trades_binance]
      offload_errors:
        - table: bronze_trades_binance
          kind: failed
          exit_code: 1
          stderr: "...Error response from daemon: Container 988d83babf9e is not running"
          error_line: "Error response from daemon: Container 988d83babf9e is not running"
      log_lines:
        - "✗ Offload failed: bronze_trades_binance"
        - "  Exit code: 1"
        - "  Stderr: Error response from daemon: Container 988d83babf9e is not running"
      log_truncated: false
idle:
  description:
    - Whether the deployment is known to have no flow run in flight - the API answered, the deployment exists
      and the runs in flight were listed and are none. What cannot be read is not idle.
  returned: always
  type: bool
  sample: false
not_idle_because:
  description: Why RV(idle) is false, in one line; null when idle.
  returned: always
  type: str
  sample: "flow run(s) 0f6c6b2e-3c1a-4a53-9b0e-2d4f4b1f2f10 of iceberg-offload-main/iceberg-offload-15min are
    in flight after 600 s"
waited_seconds:
  description: With O(wait_for_idle_seconds), how long the module waited.
  returned: when O(wait_for_idle_seconds) is above 0
  type: float
  sample: 42.5
running_runs:
  description: IDs of the deployment's flow runs in flight, that is RUNNING or PENDING, or SCHEDULED and due to start (a
    run just created, a Late run, a run waiting to retry); several at once risk duplicates.
  returned: always
  type: list
  elements: str
  sample: [0683852d-2e5d-41fe-83de-16b4b4922f73]
counts:
  description: Number of recent runs per state type.
  returned: always
  type: dict
  sample: {COMPLETED: 6, FAILED: 3, CRASHED: 0, CANCELLED: 0, CANCELLING: 0, RUNNING: 1, PENDING: 0, PAUSED: 0,
           SCHEDULED: 0}
consecutive_failures:
  description: FAILED/CRASHED runs in a row, from the newest finished run.
  returned: always
  type: int
  sample: 3
failed_tables:
  description: Tables named as failed or timed out in the recent FAILED/CRASHED runs, newest run first.
  returned: always
  type: list
  elements: str
  sample: [bronze_trades_binance]
work_pool:
  description: The work pool.
  returned: always
  type: dict
  sample: {exists: true, name: iceberg-offload, type: process, paused: false, status: READY, concurrency_limit: null}
workers:
  description: The work pool's workers, freshest heartbeat first.
  returned: always
  type: list
  elements: dict
  sample:
    - name: ProcessWorker baa79297-2e37-47cf-8faa-224facf9fd77
      status: ONLINE
      last_heartbeat_time: "2026-11-26T07:43:50.615234Z"
      heartbeat_age_seconds: 12.4
      heartbeat_interval_seconds: 30
      online: true
worker_online:
  description: Whether any worker of the pool is online (ONLINE and a fresh heartbeat).
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_common import ProbeError, to_json_safe
from ansible.module_utils.offload_lock import Heartbeat, heartbeat_argument_spec
from ansible.module_utils.offload_prefect_inspect import inspect, inspect_argument_spec, validate, wait_for_idle


def main() -> None:
    module = AnsibleModule(argument_spec={**inspect_argument_spec(),
                                          "wait_for_idle_seconds": {"type": "int", "default": 0},
                                          **heartbeat_argument_spec()},
                           supports_check_mode=True)
    wait = module.params["wait_for_idle_seconds"]
    try:
        flow, name = validate(module.params)
        if not 0 <= wait <= 86400:
            raise ProbeError(f"wait_for_idle_seconds must be between 0 and 86400, got {wait}.")
    except ProbeError as exc:
        module.fail_json(msg=str(exc))
    if not wait:
        module.exit_json(**to_json_safe(inspect(module, flow, name)))
    beat = Heartbeat(module.params["lock_path"], module.params["lock_token"], module.check_mode)
    module.exit_json(**to_json_safe(wait_for_idle(module, flow, name, wait, beat=beat)), lock_heartbeat=beat.summary())


if __name__ == "__main__":
    main()
