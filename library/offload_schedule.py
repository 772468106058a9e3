#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_schedule
short_description: Hold K2's offload schedule while a remediation acts, and resume it after
description:
  - K2 runs its offload deployment every 15 minutes, and nothing in K2 stops two offloads of one table running at
    once. A remediation's watermark repair, manual offload, orphan kill, flow-file edit and restarts must not overlap
    a scheduled run, so the holder of the stack's lock (M(offload_lock)) pauses the deployment with
    O(state=held) and resumes it with O(state=released) on every exit path (C(release_stack_lock.yml)).
  - Pausing a Prefect 3 deployment also deletes the runs its schedule had created and not started yet.
  - The hold is recorded in C(<lock_path>.schedule-hold) before the pause. A run that dies holding it leaves the
    record; M(offload_diagnosis) names the paused schedule a root cause, and the next run that holds the lock adopts
    the hold and resumes the schedule when it ends.
  - A schedule paused without a record was paused by a person: it is left paused (and never resumed by this module).
version_added: "1.2.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Reports what it would pause or resume; writes and changes nothing.
  diff_mode:
    support: full
    details: The deployment's C(paused) before and after.
  idempotent:
    support: full
    details: A second O(state=held) keeps the hold; a second O(state=released) finds nothing to resume.
extends_documentation_fragment:
  - offload.prefect
  - offload.http_api
options:
  state:
    description:
      - C(held) pauses the deployment's schedule for the lock holder (or keeps or adopts a hold, see RV(action)).
      - C(released) resumes it when this holder paused or adopted it; otherwise changes nothing.
    type: str
    choices: [held, released]
    required: true
  lock_path:
    description: The stack's remediation lock file (C(k2_remediation_lock_path)); the hold is recorded beside it.
    type: path
    required: true
  lock_token:
    description: The token of the lock's holder; only the holder may hold or resume the schedule.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Hold the schedule while this run remediates
  offload_schedule:
    state: held
    api_url: "{{ k2_prefect_api_url }}"
    deployment: iceberg-offload-main/iceberg-offload-15min
    lock_path: "{{ k2_remediation_lock_path }}"
    lock_token: "{{ stack_lock.holder.token }}"

- name: Resume it (in an always block)
  offload_schedule:
    state: released
    api_url: "{{ k2_prefect_api_url }}"
    lock_path: "{{ k2_remediation_lock_path }}"
    lock_token: "{{ stack_lock.holder.token }}"
"""

RETURN = r"""
action:
  description:
    - C(pause) paused it; C(keep) this run holds it already; C(adopt) took over the hold of a run that is gone (the
      schedule stays paused until this run resumes it); C(leave) it was paused by a person and stays so.
    - C(resume) resumed it; C(nothing) this run held nothing.
  returned: always
  type: str
  sample: pause
paused:
  description: Whether the schedule is paused after the call.
  returned: always
  type: bool
hold:
  description: The hold record beside the lock after the call (run_id, token, deployment, paused_at), or null.
  returned: always
  type: dict
msg:
  description: One line for the operator.
  returned: always
  type: str
  sample: "paused the schedule of iceberg-offload-main/iceberg-offload-15min for run cli-4242"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_common import ProbeError, to_json_safe
from ansible.module_utils.offload_lock import LockError, StackLock, iso, utcnow
from ansible.module_utils.offload_prefect_api import PrefectAPI, PrefectHTTPError, PrefectUnreachable
from ansible.module_utils.offload_prefect_inspect import Inspector, deployment_argument_spec, validate
from ansible.module_utils.offload_prefect_logic import schedule_paused
from ansible.module_utils.offload_schedule import (
    ADOPT,
    KEEP,
    PAUSE,
    RESUME,
    decide_hold,
    decide_release,
    read_hold,
    remove_hold,
    write_hold,
)

# Prefect 3's endpoints, then Prefect 2's (a K2 stack has run a 2.x server).
PAUSE_PATHS = ("/deployments/{id}/pause_deployment", "/deployments/{id}/set_schedule_inactive")
RESUME_PATHS = ("/deployments/{id}/resume_deployment", "/deployments/{id}/set_schedule_active")


def switch(api: PrefectAPI, deployment_id: str, paths: tuple[str, ...]) -> None:
    for path in paths:
        try:
            api.post(path.format(id=deployment_id), {})
            return
        except PrefectHTTPError as exc:
            if exc.status != 404 or path == paths[-1]:
                raise


def run(module: AnsibleModule, flow: str, name: str) -> dict:
    p = module.params
    holder = StackLock(p["lock_path"]).read()
    if not module.check_mode and (not holder or holder.get("token") != p["lock_token"]):
        module.fail_json(msg=f"the schedule may be held only by the holder of the lock {p['lock_path']}: this run "
                             "does not hold it; nothing was changed.")
    api = PrefectAPI(p["api_url"], p["timeout"], p["validate_certs"], agent="ansible-offload_schedule")
    inspector = Inspector(module, api)
    hold = read_hold(p["lock_path"])
    if p["state"] == "released" and decide_release(hold, p["lock_token"]) != RESUME:
        return {"changed": False, "action": "nothing", "paused": None, "hold": hold,
                "msg": "this run held no schedule: nothing to resume"}
    deployment = inspector.deployment(flow, name)
    if deployment is None:
        module.fail_json(msg=inspector.error or f"Deployment {p['deployment']!r} does not exist; nothing was changed.")
    paused = schedule_paused(deployment)
    if p["state"] == "released":
        if not module.check_mode:
            if paused:
                switch(api, deployment["id"], RESUME_PATHS)
            remove_hold(p["lock_path"])
        return {"changed": paused, "action": RESUME, "paused": False, "hold": None, "diff": diff(paused, False),
                "msg": f"resumed the schedule of {p['deployment']}" if paused
                else f"the schedule of {p['deployment']} was running already; hold record removed"}
    action = decide_hold(paused, hold, p["lock_token"])
    record = {"token": p["lock_token"], "run_id": (holder or {}).get("run_id"), "deployment": p["deployment"],
              "deployment_id": deployment["id"], "paused_at": (hold or {}).get("paused_at") or iso(utcnow())}
    if action == PAUSE:
        if not module.check_mode:
            write_hold(p["lock_path"], record)  # before the pause: never a paused schedule without its record
            try:
                switch(api, deployment["id"], PAUSE_PATHS)
            except (PrefectUnreachable, PrefectHTTPError):
                remove_hold(p["lock_path"])
                raise
        return {"changed": True, "action": PAUSE, "paused": True, "hold": record, "diff": diff(paused, True),
                "msg": f"paused the schedule of {p['deployment']} for run {record['run_id']}"}
    if action == ADOPT:
        if not module.check_mode:
            write_hold(p["lock_path"], record)
            if not paused:
                switch(api, deployment["id"], PAUSE_PATHS)
        return {"changed": True, "action": ADOPT, "paused": True, "hold": record, "diff": diff(paused, True),
                "msg": f"adopted the schedule hold of run {hold.get('run_id') or '?'} (gone): it is resumed when this "
                       "run ends"}
    if action == KEEP:
        return {"changed": False, "action": KEEP, "paused": paused, "hold": hold,
                "msg": f"the schedule of {p['deployment']} is held by this run already"}
    return {"changed": False, "action": "leave", "paused": True, "hold": None,
            "msg": f"the schedule of {p['deployment']} was paused by somebody else (no hold record): left paused, "
                   "and not resumed by this run"}


def diff(before: bool, after: bool) -> dict:
    return {"before": {"paused": before}, "after": {"paused": after}}


def main() -> None:
    argument_spec = deployment_argument_spec()
    argument_spec.update(
        state={"type": "str", "required": True, "choices": ["held", "released"]},
        lock_path={"type": "path", "required": True},
        lock_token={"type": "str", "required": True, "no_log": False},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        flow, name = validate(module.params)
    except ProbeError as exc:
        module.fail_json(msg=str(exc))
    try:
        result = run(module, flow, name)
    except LockError as exc:
        module.fail_json(msg=f"Schedule hold of {module.params['deployment']!r}: {exc}; nothing more was changed.")
    except (PrefectUnreachable, PrefectHTTPError) as exc:
        module.fail_json(msg=f"Cannot {'pause' if module.params['state'] == 'held' else 'resume'} the schedule of "
                             f"{module.params['deployment']!r}: {exc}")
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**to_json_safe(result))


if __name__ == "__main__":
    main()
