#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_lock
short_description: One remediation at a time per K2 stack - a lock that lives on the stack's Docker host
description:
  - Two remediations acting at once doubled rows in the cold tier (both triggered a flow run of the same
    deployment). Every remediation takes this lock before its first change and releases it after its report is
    written; a second one sees O(state=acquired) answer RV(outcome=busy) and must change nothing.
  - The lock is a JSON file on the Docker host the playbook targets, not on the control node, so the CLI, AWX
    jobs and the alert-driven loop all see the same lock, and it works while PostgreSQL is down (the database
    is one of the components a remediation may have to start).
  - Each decision is made under C(flock) on C(<path>.guard), which the kernel releases if its holder dies, so two
    callers never both acquire, and never both break the same stale lock.
  - The holder records who, on which control node, since when, which run (AWX job id or CLI pid) and its pid.
  - The holder shows it is alive with a heartbeat in the lock, renewed at every step (O(state=stepped)) and, while
    it waits, by the modules that wait long (their C(lock_path) and C(lock_token) options, every 30 s).
  - A stale lock is broken and the break appended to C(<path>.breaks.jsonl). Stale means no sign of life (acquire,
    step, heartbeat) for O(stale_after_seconds), or, when the holder ran on this very host, its process no
    longer runs (pid and start time checked, so a recycled pid never counts as the holder). The new run's
    escalation budget plays no part, so a holder doing a 30-minute manual offload keeps its lock.
  - Never waits. A busy lock is an answer ("already being handled"), not a reason to queue.
version_added: "1.1.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Reports whether the lock would be acquired, broken or found busy; writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every O(state=acquired) creates a new holder token; O(state=released) with the same token is
      idempotent (the second call answers RV(outcome=not_held)).
options:
  path:
    description: The lock file on the Docker host. Its directory is created (mode 0700) when missing.
    type: path
    required: true
  state:
    description:
      - C(acquired) takes the lock, or answers C(busy) with the current holder.
      - C(released) removes it if O(token) holds it; somebody else's lock is left alone.
      - C(info) reads it (free / held, and whether it is stale).
      - C(stepped) records the step the holder of O(token) is at (O(step)), for operators and the alert-driven
        loop to see what a held lock is doing; it renews the heartbeat too.
    type: str
    choices: [acquired, released, stepped, info]
    default: info
  owner:
    description:
      - Who takes the lock (O(state=acquired)). Free-form keys are kept; these are read.
    type: dict
    default: {}
    suboptions:
      who:
        description: User or service account (C(user@host), C(awx), C(eda)).
        type: str
      control_node:
        description: Host name of the control node (or AWX job pod) that runs the playbook.
        type: str
      run_id:
        description: The run's identity (C(awx-job-1234), C(cli-<pid>)).
        type: str
      pid:
        description: PID of the ansible-playbook process; checked for liveness only on the same host.
        type: int
  token:
    description: The token RV(holder.token) returned when the lock was acquired (O(state=released) and O(state=stepped)).
    type: str
  step:
    description: The step the holder is at (O(state=stepped)).
    type: str
  stale_after_seconds:
    description:
      - A holder with no sign of life (acquire, step, heartbeat) for this long is taken for dead and its lock is
        stale. Longer than any wait of a step that does not beat (the readiness waits, at most 300 s).
    type: int
    default: 600
  ended:
    description:
      - With O(state=released), how the holder's run ended. C(escalated) leaves O(escalation) in
        C(<path>.escalation) (with the time and the run), so that the next runs see people have the stack
        (RV(escalation)); C(recovered) removes that record, and so does C(healthy) from a person's run (see
        O(alert_driven)); anything else leaves it as it is.
    type: str
  escalation:
    description: With O(ended=escalated), what was escalated (e.g. C(rule), C(message)).
    type: dict
  alert_driven:
    description:
      - With O(state=released), the run was started by an alert. A person's run that O(ended=healthy) removes the
        escalation record (they fixed the stack); an alert's run that found it healthy does not (a stale alert).
    type: bool
    default: false
"""

EXAMPLES = r"""
---
- name: Take the stack's remediation lock
  offload_lock:
    path: /var/lib/k2-offload/remediation.lock
    state: acquired
    owner: {who: "{{ lookup('env', 'USER') }}", control_node: "{{ lookup('pipe', 'hostname') }}", run_id: cli-42}
    stale_after_seconds: 600
  register: lock

- name: Release it (in an always block)
  offload_lock:
    path: /var/lib/k2-offload/remediation.lock
    state: released
    token: "{{ lock.holder.token }}"
  when: lock.acquired | default(false)
"""

RETURN = r"""
outcome:
  description:
    - C(acquired), C(acquired_after_break) (a stale lock was broken and recorded first), C(busy) (another
      remediation holds it), C(released), C(not_held) (nothing to release, or another holder's lock), C(free) or
      C(held) (O(state=info)).
  returned: always
  type: str
  sample: busy
acquired:
  description: Whether this call holds the lock now (O(state=acquired)).
  returned: when O(state=acquired)
  type: bool
holder:
  description: The holder - this run's after an acquire, the other run's when busy.
  returned: always
  type: dict
  sample: {who: "oncall@ops-1", control_node: ops-1, run_id: awx-job-1234, since: "2026-11-29T03:12:09Z",
           heartbeat: "2026-11-29T03:40:39Z", step: "Scenario 5 - Timeouts", token: 5f0c..., pid: 4242}
broken:
  description: The stale lock that was broken, why, and by whom (also appended to C(<path>.breaks.jsonl)).
  returned: when O(state=acquired)
  type: dict
escalation:
  description: The last escalation to people a released run left (O(ended=escalated)) and no recovery has removed
    since, or null (O(state=acquired)).
  returned: when O(state=acquired)
  type: dict
  sample: {rule: root cause is unclear, message: "ESCALATE (root cause is unclear): ...", at: "2026-11-29T03:40:39Z",
           run_id: cli-4242}
stale_reason:
  description: Why the current lock is stale, or null (O(state=info)).
  returned: when O(state=info)
  type: str
msg:
  description: One line for the operator.
  returned: always
  type: str
  sample: "another remediation in progress since 2026-11-29T03:12:09Z, by oncall@ops-1 on ops-1 (run cli-4242)"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_lock import OUTCOME_BUSY, LockError, StackLock, describe

MIN_STALE_SECONDS = 60  # below this, a live holder between two heartbeats (every 30 s) could be taken for dead
MAX_STALE_SECONDS = 7 * 86400


def message(result: dict, path: str) -> str:
    holder = result.get("holder") or {}
    outcome = result["outcome"]
    if outcome == OUTCOME_BUSY:
        return f"another remediation in progress {describe(holder)}" + (f", at: {holder['step']}"
                                                                         if holder.get("step") else "")
    if result.get("broken"):
        return (f"broke the stale lock {describe(result['broken']['stale_holder'])}: {result['broken']['reason']};"
                f" acquired {path}")
    if outcome == "held":
        return f"lock {path} held {describe(holder)}" + (f"; stale: {result['stale_reason']}"
                                                          if result.get("stale_reason") else "")
    return f"lock {path}: {outcome}"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "default": "info", "choices": ["acquired", "released", "stepped", "info"]},
            "owner": {"type": "dict", "default": {}, "options": {
                "who": {"type": "str"}, "control_node": {"type": "str"}, "run_id": {"type": "str"},
                "pid": {"type": "int"}}},
            "token": {"type": "str", "no_log": False},
            "step": {"type": "str"},
            "stale_after_seconds": {"type": "int", "default": 600},
            "ended": {"type": "str"},
            "escalation": {"type": "dict"},
            "alert_driven": {"type": "bool", "default": False},
        },
        required_if=[("state", "released", ["token"]), ("state", "stepped", ["token", "step"])],
        supports_check_mode=True,
    )
    p = module.params
    if not p["path"] or p["path"].endswith("/"):
        module.fail_json(msg=f"path must name the lock file, got {p['path']!r}.")
    if not MIN_STALE_SECONDS <= p["stale_after_seconds"] <= MAX_STALE_SECONDS:
        module.fail_json(msg=f"stale_after_seconds must be between {MIN_STALE_SECONDS} and {MAX_STALE_SECONDS}, "
                             f"got {p['stale_after_seconds']}.")
    lock = StackLock(p["path"])
    try:
        if p["state"] == "acquired":
            owner = {k: v for k, v in (p["owner"] or {}).items() if v is not None}
            result = lock.acquire(owner, p["stale_after_seconds"], check_mode=module.check_mode)
        elif p["state"] == "released":
            result = lock.release(p["token"], check_mode=module.check_mode, ended=p["ended"],
                                  escalation=p["escalation"], alert_driven=p["alert_driven"])
        elif p["state"] == "stepped":
            result = lock.note_step(p["token"], p["step"], check_mode=module.check_mode)
        else:
            result = lock.info(p["stale_after_seconds"])
    except LockError as exc:
        module.fail_json(msg=f"Remediation lock {p['path']}: {exc}.")
    module.exit_json(msg=message(result, p["path"]), **result)


if __name__ == "__main__":
    main()
