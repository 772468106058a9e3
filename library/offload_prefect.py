#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_prefect
short_description: Run and follow K2's Iceberg offload flow runs in Prefect 3 (verify, reap zombies, observe)
description:
  - Acts on the offload deployment through Prefect's REST API (no Prefect client library); M(offload_prefect_info)
    reads it.
  - O(action=trigger) creates one flow run of the deployment (the runbook's
    C(prefect deployment run ...) of "Verify recovery"), but only when no run of it is in flight, and waits for
    the run's final state; a run already in flight is waited for instead of starting a second one (two runs at
    once double rows on K2).
  - O(action=observe) is the runbook's post-incident "monitor the next 3 flow runs". It follows the deployment's
    next O(runs) flow runs to their final state, one after another. A deployment whose schedule creates runs is
    waited on; a paused one gets them created, each only after the previous one ended (never two at once). It
    stops at the first run that did not complete (the evidence) and within O(wait_timeout) for all of them.
  - While it waits, a run whose pool has no online worker (no heartbeat for O(heartbeat_stale_seconds), and still
    none 10 s later) fails at once with what was seen (the worker died under it), instead of after O(wait_timeout).
version_added: "1.0.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: C(trigger) reports the run it would create and creates none;
      C(reap) reports the runs it would crash; C(observe) waits on scheduled runs but creates none.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: C(trigger) and C(observe) create a run only when none is in flight.
extends_documentation_fragment:
  - offload.prefect
  - offload.http_api
  - offload.lock_heartbeat
options:
  action:
    description:
      - C(trigger) creates (or joins) a flow run and waits for it.
      - C(reap) sets the deployment's zombie runs CRASHED (see O(crash_runs_started_before)) and returns the runs
        still in flight (RV(live_runs)).
      - C(observe) follows the next O(runs) flow runs to their final state (post-incident verification).
    type: str
    choices: [trigger, reap, observe]
    required: true
  parameters:
    description: Flow run parameters for O(action=trigger) (K2's main flow takes none).
    type: dict
    default: {}
  wait_timeout:
    description:
      - With O(action=trigger), seconds to wait for the run's final state; 0 returns at once.
      - With O(action=observe), seconds to wait for all O(runs) runs (K2 schedules one every 15 min).
    type: int
    default: 600
  runs:
    description: With O(action=observe), how many runs to follow (the runbook's post-incident check watches 3).
    type: int
    default: 3
  crash_runs_started_before:
    description:
      - With O(action=reap), the worker container's last start (ISO 8601). Runs in flight that started before it
        are zombies - the process running them died with the old worker, they can never finish - and are set
        CRASHED (forced), so that a verification creates a fresh run instead of joining one that never ends
        (RV(crashed_runs)).
    type: str
notes:
  - Heartbeat ages are measured against the Prefect server's clock (its HTTP C(Date) header) when available.
seealso:
  - module: offload_prefect_info
"""

EXAMPLES = r"""
---
- name: Run the offload once (or join the run in flight) and wait for its final state
  offload_prefect:
    action: trigger
    api_url: "{{ k2_prefect_api_url }}"
    wait_timeout: 900
  register: verification

- name: Post-incident - follow the next 3 flow runs
  offload_prefect:
    action: observe
    runs: 3
    wait_timeout: 3600
"""

RETURN = r"""
---
lock_heartbeat:
  description: With O(lock_path) and O(lock_token), the heartbeats renewed during the wait and why the lock was
    lost (null while held).
  returned: with O(action=trigger) and O(action=observe); null without O(lock_path) and O(lock_token), or in
    check mode
  type: dict
  sample: {beats: 31, lost: null}
crashed_runs:
  description: Zombie runs set CRASHED (or, in check mode, that would be) because of O(crash_runs_started_before).
  returned: with O(action=reap)
  type: list
  elements: dict
live_runs:
  description: The deployment's runs still in flight after the reaping (their worker is alive).
  returned: with O(action=reap)
  type: list
  elements: dict
flow_run:
  description: With O(action=trigger), the run created (or the one in flight that was joined), in its last state
    seen; C(final) tells whether that state is final.
  returned: when O(action=trigger)
  type: dict
  sample: {id: 1b99703f-97ac-4a48-86ea-76fb46a73da8, name: inventive-mantis, state_type: COMPLETED, final: true}
triggered:
  description: Whether a new run was created (false when one in flight was joined, or in check mode).
  returned: when O(action=trigger)
  type: bool
observed_runs:
  description:
    - With O(action=observe), the runs followed, oldest first, each in its last state (C(final) false for a run
      still in flight when O(wait_timeout) ran out). Fewer than O(runs) when one did not complete or time ran out.
  returned: when O(action=observe)
  type: list
  elements: dict
created_runs:
  description: With O(action=observe), how many of RV(observed_runs) this module created (paused schedule).
  returned: when O(action=observe)
  type: int
schedule_active:
  description: With O(action=observe), whether the deployment's schedule creates runs (then none is created).
  returned: when O(action=observe)
  type: bool
timed_out:
  description: With O(action=observe), whether O(wait_timeout) ran out before O(runs) runs ended.
  returned: when O(action=observe)
  type: bool
"""

import time
from datetime import timedelta

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_common import ProbeError, to_json_safe
from ansible.module_utils.offload_lock import Heartbeat, heartbeat_argument_spec
from ansible.module_utils.offload_prefect_api import PrefectAPI, PrefectHTTPError, PrefectUnreachable
from ansible.module_utils.offload_prefect_inspect import MAX_RUNS, Inspector, deployment_argument_spec, iso, validate
from ansible.module_utils.offload_prefect_logic import (
    FINAL_STATES,
    runs_older_than,
    schedule_paused,
    state_type,
    summarize_run,
    worker_lost,
)

# Seconds the pool must stay without an online worker (heartbeat already older than heartbeat_stale_seconds)
# before a waited-for run counts as orphaned: one late heartbeat is not a dead worker.
WORKER_LOST_GRACE_SECONDS = 10


def crash_zombies(module: AnsibleModule, api: PrefectAPI, runs: list[dict]) -> list[dict]:
    """Mark runs whose worker died CRASHED (forced: Prefect cannot know their process is gone), and their subflows
    still in flight (K2's layer subflows), which would otherwise show RUNNING for ever."""
    crashed = []
    subflows = api.post("/flow_runs/filter", {"flow_runs": {
        "parent_flow_run_id": {"any_": [run["id"] for run in runs]},
        "state": {"type": {"any_": ["RUNNING", "PENDING"]}}}, "limit": MAX_RUNS}) if runs else []
    for run in runs + [r for r in subflows or [] if isinstance(r, dict)]:
        if not module.check_mode:
            api.post(f"/flow_runs/{run['id']}/set_state",
                     {"state": {"type": "CRASHED", "name": "Crashed",
                                "message": f"its worker restarted at {module.params['crash_runs_started_before']}: "
                                           "the process running it is gone (marked by offload automation)"},
                      "force": True})
        crashed.append({"id": run["id"], "name": run.get("name"), "state_type": state_type(run)})
    return crashed


def wait_final(module: AnsibleModule, api: PrefectAPI, inspector: Inspector, run: dict, beat: Heartbeat,
               deadline: float | None = None) -> dict:
    """Poll the run to its final state (until `deadline`, monotonic; default now + wait_timeout); a run whose
    worker stays offline past the heartbeat staleness fails fast (the worker died under it: waiting the whole
    timeout would only delay the escalation)."""
    params = module.params
    deadline = time.monotonic() + params["wait_timeout"] if deadline is None else deadline
    no_worker_since, next_worker_check = None, 0.0
    while state_type(run) not in FINAL_STATES and time.monotonic() < deadline:
        beat()
        time.sleep(1)
        run = api.get(f"/flow_runs/{run['id']}")
        if time.monotonic() >= next_worker_check:
            next_worker_check = time.monotonic() + 5
            _, workers = inspector.work_pool()
            online = any(w["online"] for w in workers)
            no_worker_since = None if online else (no_worker_since or time.monotonic())
            waited = time.monotonic() - no_worker_since if no_worker_since else None
            if state_type(run) not in FINAL_STATES and worker_lost(waited, WORKER_LOST_GRACE_SECONDS):
                module.fail_json(msg=f"flow run {run.get('name')} is still {state_type(run)} but no worker of pool "
                                     f"{params['work_pool']!r} has heartbeated for over "
                                     f"{params['heartbeat_stale_seconds']} s: the worker died during the run (its "
                                     "offload job may still run in the Spark container).",
                                 flow_run=summarize_run(run))
    return run


def connect(module: AnsibleModule, flow: str, name: str) -> tuple[PrefectAPI, Inspector, dict]:
    """The API, an inspector and the deployment, which must exist (raises PrefectUnreachable/PrefectHTTPError)."""
    api = PrefectAPI(module.params["api_url"], module.params["timeout"], module.params["validate_certs"])
    inspector = Inspector(module, api)
    deployment = inspector.deployment(flow, name)
    if deployment is None:
        module.fail_json(msg=inspector.error or f"Deployment {module.params['deployment']!r} does not exist.")
    return api, inspector, deployment


def reap(module: AnsibleModule, flow: str, name: str) -> dict:
    """Set the deployment's zombie runs CRASHED; return them and the runs still legitimately in flight."""
    params = module.params
    try:
        api, inspector, deployment = connect(module, flow, name)
        in_flight = [api.get(f"/flow_runs/{run_id}") for run_id in inspector.runs_in_flight(deployment["id"])]
        crashed = crash_zombies(module, api, runs_older_than(in_flight, params["crash_runs_started_before"]))
    except (PrefectUnreachable, PrefectHTTPError) as exc:
        module.fail_json(msg=f"Cannot reap the zombie runs of {params['deployment']!r}: {exc}")
    gone = {c["id"] for c in crashed}
    return {"changed": bool(crashed), "crashed_runs": crashed,
            "live_runs": [summarize_run(r) for r in in_flight if r["id"] not in gone]}


def trigger(module: AnsibleModule, flow: str, name: str, beat: Heartbeat) -> dict:
    """Create one run of the deployment unless one is in flight, then wait for the run's final state."""
    params = module.params
    try:
        api, inspector, deployment = connect(module, flow, name)
        in_flight = inspector.runs_in_flight(deployment["id"])
        if in_flight:
            run, triggered = api.get(f"/flow_runs/{in_flight[0]}"), False
        elif module.check_mode:
            return {"changed": True, "triggered": False, "flow_run": None,
                    "msg": f"would create a flow run of {params['deployment']} (check mode)"}
        else:
            run = api.post(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": params["parameters"]})
            triggered = True
        run = wait_final(module, api, inspector, run, beat)
    except (PrefectUnreachable, PrefectHTTPError) as exc:
        module.fail_json(msg=f"Cannot trigger a run of {params['deployment']!r}: {exc}")
    summary = summarize_run(run)
    summary["final"] = summary["state_type"] in FINAL_STATES
    return {"changed": triggered, "triggered": triggered, "flow_run": summary}


def next_scheduled_run(api: PrefectAPI, deployment_id: str, after: str | None) -> dict | None:
    """The deployment's earliest run expected to start after `after` (ISO time; None: any) and due by now."""
    start = {"before_": iso(api.now() + timedelta(seconds=5))}
    if after:
        start["after_"] = after
    body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}, "expected_start_time": start},
            "sort": "EXPECTED_START_TIME_ASC", "limit": MAX_RUNS}
    runs = [r for r in api.post("/flow_runs/filter", body) or [] if isinstance(r, dict)]
    return next((r for r in runs if r.get("expected_start_time") != after), None)


def observe(module: AnsibleModule, flow: str, name: str, beat: Heartbeat) -> dict:
    """Follow the deployment's next `runs` flow runs to their final state, one at a time (see the docs)."""
    params = module.params
    deadline = time.monotonic() + params["wait_timeout"]
    observed, created, timed_out = [], 0, False
    try:
        api, inspector, deployment = connect(module, flow, name)
        active_schedule = not schedule_paused(deployment)
        last_start = None
        while len(observed) < params["runs"]:
            in_flight = inspector.runs_in_flight(deployment["id"])
            if in_flight:
                run = api.get(f"/flow_runs/{in_flight[-1]}")  # the oldest in flight: runs end in order
            elif not active_schedule and module.check_mode:
                break  # would create the remaining runs; in check mode nothing is created
            elif not active_schedule:
                run = api.post(f"/deployments/{deployment['id']}/create_flow_run", {"parameters": params["parameters"]})
                created += 1
            else:
                run = next_scheduled_run(api, deployment["id"], last_start or iso(api.now() - timedelta(seconds=5)))
                if run is None:
                    if time.monotonic() >= deadline:
                        timed_out = True
                        break
                    beat()
                    time.sleep(5)
                    continue
            run = wait_final(module, api, inspector, run, beat, deadline)
            summary = summarize_run(run)
            summary["final"] = summary["state_type"] in FINAL_STATES
            observed.append(summary)
            last_start = run.get("expected_start_time") or last_start
            if not summary["final"]:
                timed_out = True
                break
            if summary["state_type"] != "COMPLETED":
                break
    except (PrefectUnreachable, PrefectHTTPError) as exc:
        module.fail_json(msg=f"Cannot follow the runs of {params['deployment']!r}: {exc}", observed_runs=observed)
    return {"changed": created > 0, "observed_runs": observed, "created_runs": created,
            "schedule_active": active_schedule, "timed_out": timed_out}


def main() -> None:
    argument_spec = deployment_argument_spec()
    argument_spec.update(
        action={"type": "str", "required": True, "choices": ["trigger", "reap", "observe"]},
        parameters={"type": "dict", "default": {}},
        wait_timeout={"type": "int", "default": 600},
        runs={"type": "int", "default": 3},
        crash_runs_started_before={"type": "str"},
        **heartbeat_argument_spec(),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[("action", "reap", ["crash_runs_started_before"])])
    params = module.params

    try:
        flow, name = validate(params)
    except ProbeError as exc:
        module.fail_json(msg=str(exc))
    if params["wait_timeout"] < 0:
        module.fail_json(msg=f"wait_timeout must be >= 0, got {params['wait_timeout']}.")
    if not 1 <= params["runs"] <= 20:
        module.fail_json(msg=f"runs must be between 1 and 20, got {params['runs']}.")
    if params["action"] == "reap":
        module.exit_json(**to_json_safe(reap(module, flow, name)))
    beat = Heartbeat(params["lock_path"], params["lock_token"], module.check_mode)
    action = {"trigger": trigger, "observe": observe}[params["action"]]
    module.exit_json(**to_json_safe(action(module, flow, name, beat)), lock_heartbeat=beat.summary())


if __name__ == "__main__":
    main()
