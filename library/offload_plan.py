#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_plan
short_description: Turn a diagnosis into the remediation plan (or an escalation) - remediate.yml's decisions
description:
  - Pure logic, no I/O except reading O(report_path). remediate.yml diagnoses, takes the stack's lock
    (M(offload_lock)), asks this module what to do, and dispatches; every decision lives here and is unit-tested.
  - Without O(diagnosis) and O(report_path) it only validates the inputs (forced scenarios, table configuration,
    escalation budget, timeout mitigation) and returns them normalised - remediate.yml calls it so before
    anything else, so bad input is one clear line and nothing runs.
  - With a diagnosis it returns one RV(outcome) - C(in_progress) (the lock is held by another run),
    C(escalate) (a runbook escalation rule applies before any change), C(healthy), C(alerting_blind) (only
    monitoring is down and restarting it was not asked for) or C(remediate) with the ordered steps (orchestration
    components to start, upstream first, then the runbook scenarios) and the tables of each step.
  - With O(failure) it turns a failed step into one escalation line that names the component, the check, what
    was waited for and the last value seen.
version_added: "1.1.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  tables:
    description: K2's TABLE_CONFIG (C(k2_tables)); each entry needs a plain identifier as C(source).
    type: raw
    required: true
  forced_scenarios:
    description: Scenario numbers forced whatever the diagnosis says - a list, a comma-separated string or one number.
    type: raw
  escalation_budget_seconds:
    description: The runbook's "not fixed in 30 min, escalate" budget, 0 to 86400.
    type: raw
    default: 1800
  timeout_mitigation:
    description: Scenario 5 mitigation, C(auto), C(raise) or C(manual).
    type: raw
    default: auto
  restart_monitoring:
    description: Start stopped monitoring containers when alerting is blind (never done silently).
    type: bool
    default: false
  diagnosis:
    description: The diagnosis report (the role offload_diagnose's C(offload_diagnose_report)).
    type: dict
  report_path:
    description: Read the diagnosis from this JSON file instead (C(use_report=true)); it must be JSON, a diagnosis,
      of O(host), and younger than O(report_max_age_seconds).
    type: path
  published:
    description:
      - What diagnose.yml published with C(set_stats) (C(k2_offload_diagnosis), a mapping of inventory host to
        diagnosis), as an AWX workflow passes a previous node's artifacts to the next node as extra vars.
      - The entry of O(host) is used when present (it must be a diagnosis, of O(host), younger than
        O(report_max_age_seconds)); otherwise the diagnosis is read from O(report_path).
    type: raw
  report_max_age_seconds:
    description: Oldest diagnosis report accepted from O(published) or O(report_path).
    type: int
    default: 900
  host:
    description: The inventory host being remediated (a report of another host is refused).
    type: str
  lock:
    description:
      - The result of M(offload_lock) O(state=acquired); not acquired means another run is in progress.
      - Its C(escalation) (the last escalation to people, until a recovery) makes an O(alert_driven) run answer
        C(in_progress) for O(escalation_budget_seconds) after it, changing nothing.
    type: dict
  alert_driven:
    description: The run was started by an alert (M(offload_alert_event)'s C(from_alert)), not by a person.
    type: bool
    default: false
  failure:
    description: A failed step to turn into an escalation line - C(step), C(task), C(result), C(elapsed), C(titles).
    type: dict
"""

EXAMPLES = r"""
---
- name: Validate the inputs before anything runs
  offload_plan:
    tables: "{{ k2_tables }}"
    forced_scenarios: "{{ remediate_scenarios }}"
    escalation_budget_seconds: "{{ remediate_escalation_budget_seconds }}"
    timeout_mitigation: "{{ remediate_timeout_mitigation }}"

- name: Plan the remediation
  offload_plan:
    tables: "{{ k2_tables }}"
    diagnosis: "{{ offload_diagnose_report }}"
    lock: "{{ remediate_lock }}"
  register: remediate_plan
"""

RETURN = r"""
outcome:
  description: C(in_progress), C(escalate), C(healthy), C(alerting_blind), C(remediate); null when only validating.
  returned: always
  type: str
message:
  description: One line for the operator (the escalation itself for C(escalate)).
  returned: always
  type: str
escalation_rule:
  description: The runbook rule behind an escalation - C(data loss suspected), C(root cause is unclear).
  returned: always
  type: str
root_cause_steps:
  description: Orchestration components to start first, upstream first (C(prefect_db), C(prefect_server)).
  returned: always
  type: list
  elements: str
scenarios:
  description: Runbook scenarios to remediate, in the runbook's order.
  returned: always
  type: list
  elements: int
tables:
  description: The affected tables (failing tables, else the first configured one).
  returned: always
  type: list
  elements: str
verify_tables:
  description: Tables whose recovery is verified (watermark advanced, truth check).
  returned: always
  type: list
  elements: str
test_table:
  description: The table Scenarios 2 and 3 prove their fix on with one manual offload - an affected table whose
    watermark Scenario 4 does not repair after them (its offload would fail for that reason), else the first one.
  returned: when RV(outcome=remediate) for scenarios
  type: str
adopt_schedule:
  description: A schedule a dead remediation left paused is adopted and resumed at the end (M(offload_schedule)).
  returned: always
  type: bool
inputs:
  description: The validated inputs (forced scenarios, budget, mitigation, table names, lock staleness).
  returned: always
  type: dict
escalation:
  description: The escalation line for O(failure); RV(escalation_rule) is then its runbook rule.
  returned: when O(failure) is given
  type: str
diagnosis:
  description: The diagnosis taken from O(published) or read from O(report_path).
  returned: when O(published) or O(report_path) is given
  type: dict
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_plan import (
    PlanError,
    check_budget,
    check_mitigation,
    check_tables,
    escalation_for_failure,
    failure_rule,
    load_report,
    parse_forced,
    plan,
    published_report,
)


def _read_report(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise PlanError(f"report {path} cannot be read: {exc.strerror}; run diagnose.yml first "
                        "or drop use_report.") from None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "tables": {"type": "raw", "required": True},
            "forced_scenarios": {"type": "raw"},
            "escalation_budget_seconds": {"type": "raw", "default": 1800},
            "timeout_mitigation": {"type": "raw", "default": "auto"},
            "restart_monitoring": {"type": "bool", "default": False},
            "diagnosis": {"type": "dict"},
            "report_path": {"type": "path"},
            "published": {"type": "raw"},
            "report_max_age_seconds": {"type": "int", "default": 900},
            "host": {"type": "str"},
            "lock": {"type": "dict"},
            "alert_driven": {"type": "bool", "default": False},
            "failure": {"type": "dict"},
        },
        mutually_exclusive=[("diagnosis", "report_path"), ("diagnosis", "published")],
        required_by={"report_path": "host", "published": "host"},
        supports_check_mode=True,
    )
    p = module.params
    result = {"changed": False}
    try:
        configured = check_tables(p["tables"])
        budget = check_budget(p["escalation_budget_seconds"])
        result["inputs"] = {"tables": configured, "forced_scenarios": parse_forced(p["forced_scenarios"]),
                            "escalation_budget_seconds": budget,
                            "timeout_mitigation": check_mitigation(p["timeout_mitigation"])}
        if p["failure"] is not None:
            f = p["failure"]
            result["escalation_rule"] = failure_rule(str(f.get("task") or "?"), f.get("result") or {})
            result["escalation"] = escalation_for_failure(str(f.get("step") or "remediation"), str(f.get("task") or "?"),
                                                          f.get("result") or {}, float(f.get("elapsed") or 0),
                                                          list(f.get("titles") or []))
            module.exit_json(**result)
        diagnosis = p["diagnosis"]
        if p["report_path"] or p["published"] is not None:
            now = datetime.now(timezone.utc)
            diagnosis = published_report(p["published"], p["host"], now, p["report_max_age_seconds"])
            if diagnosis is None and not p["report_path"]:
                raise PlanError(f"no diagnosis was published for host {p['host']!r} (k2_offload_diagnosis); "
                                "run diagnose.yml first or drop use_report.")
            if diagnosis is None:
                diagnosis = load_report(_read_report(p["report_path"]), p["report_path"], p["host"], now,
                                        p["report_max_age_seconds"])
            result["diagnosis"] = diagnosis
        if diagnosis is None:
            result.update(outcome=None, message="inputs are valid")
        else:
            result.update(plan(diagnosis, configured, result["inputs"]["forced_scenarios"], lock=p["lock"],
                               restart_monitoring=p["restart_monitoring"], alert_driven=p["alert_driven"],
                               standdown_seconds=budget))
    except PlanError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
