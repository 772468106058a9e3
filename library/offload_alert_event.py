#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Run through its action plugin (action_plugins/offload_alert_event.py), which hands this module the k2_alert_*
# variables' values as data, before any template engine sees them.
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_alert_event
short_description: Check the alert that started a remediation, as data that is never a template
description:
  - The alert-driven loop hands each run the alert's fields as the variables C(k2_alert_name), C(k2_alert_table),
    C(k2_alert_job), C(k2_alert_starts_at) and C(k2_alert_fingerprint) (extensions/eda/rulebooks). Whoever can post to
    the webhook chooses them, and ansible-playbook treats extra vars as trusted templates, so a playbook that wrote
    C({{ k2_alert_starts_at }}) would run a sender's C({{ lookup('pipe', ...) }}) on the control node.
  - This module's action plugin reads those variables' values from the run's variables without rendering them and
    checks each against the form Alertmanager gives it - a Prometheus alert name, a table of O(tables), a scrape job
    label, an RFC 3339 time, a 16-hex-digit fingerprint. An absent or empty variable is absent; any other value that
    does not fit stops the run with one line naming the variable, before the stack is touched.
  - A C(k2_alert_*) variable that is not one of the five (a typo) is refused the same way.
  - The checked fields come back as a task result, which Ansible never renders as a template either; playbooks use
    RV(alert) and never the variables themselves.
version_added: "1.2.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Only reads; the same answer in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Never changes anything.
  action:
    support: full
    details: Its action plugin reads the variables raw and runs this module with them (delegate it to C(localhost)).
options:
  tables:
    description: The stack's offloaded tables (the C(source) of each C(k2_tables) entry); C(k2_alert_table) must name one.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
---
- name: Check the alert that started this run (its fields are data, never templates)
  offload_alert_event:
    tables: "{{ k2_tables | map(attribute='source') | list }}"
  delegate_to: localhost
  register: alert_event

- name: Use the checked start time, never k2_alert_starts_at itself
  ansible.builtin.debug:
    msg: "alert started at {{ alert_event.alert.started_at | default('unknown', true) }}"
"""

RETURN = r"""
alert:
  description: The alert's checked fields; C(null) where the run did not get one.
  returned: success
  type: dict
  contains:
    name:
      description: The alert name (C(k2_alert_name)).
      type: str
    table:
      description: The table the alert names (C(k2_alert_table)), one of O(tables).
      type: str
    job:
      description: The scrape job the alert names (C(k2_alert_job)).
      type: str
    started_at:
      description: When the alert started (C(k2_alert_starts_at)), as Alertmanager wrote it.
      type: str
    fingerprint:
      description: Alertmanager's fingerprint of the alert (C(k2_alert_fingerprint)).
      type: str
    from_alert:
      description: Whether any alert field was given (the run was started by an alert).
      type: bool
  sample: {name: IcebergOffloadConsecutiveFailures, table: bronze_trades_binance, job: null,
           started_at: "2026-12-07T10:00:00.123456789Z", fingerprint: 8b1f1c2d3e4f5a6b, from_alert: true}
msg:
  description: One line - what the run was started by, or which variable was refused and why.
  returned: always
  type: str
  sample: >-
    k2_alert_starts_at must be an RFC 3339 time such as 2026-12-07T10:00:00Z, got "{{ lookup('pipe', 'id') }}":
    the alert is refused and this run changes nothing.
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_alert_event import AlertEventError, alert_event


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "tables": {"type": "list", "elements": "str", "required": True},
            # Set by the action plugin only: the k2_alert_* variables' raw values (as ansible.builtin.copy's action
            # plugin sets its internal _original_basename).
            "_variables": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    try:
        alert = alert_event(module.params["_variables"], module.params["tables"])
    except AlertEventError as exc:
        module.fail_json(msg=str(exc))
    described = ", ".join(f"{k} {v}" for k, v in alert.items() if k != "from_alert" and v)
    module.exit_json(changed=False, alert=alert,
                     msg=f"started by the alert: {described}" if alert["from_alert"] else "not started by an alert")


if __name__ == "__main__":
    main()
