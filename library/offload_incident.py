#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_incident
short_description: Record the incident - one JSON line in the incident log, a Markdown report, a post-mortem skeleton
description:
  - The runbook's Post-Incident section ("update incident log with root cause; if new failure mode, update this
    runbook; post-mortem if extended outage >1 hour") from what remediate.yml has at its end.
  - Builds one incident record (schema version 1) from remediate.yml's report (O(remediation)) and the diagnosis it
    acted on (O(diagnosis)) - alert start, detection, diagnosis (root causes, scenarios, evidence), the actions with
    the time of their step, verification, outcome, MTTR (from the alert's start when known, else from detection; the
    record says which), the data-loss assessment (TTL headroom per table, truth check hot vs cold), the run's
    identity (CLI or AWX job) and the flag C(new failure mode - update the runbook) with its evidence when the
    diagnosis names no known scenario or root cause.
  - Appends the record as one JSON line to O(log_path) (mode 0600, directory created with mode 0700), under
    C(flock) on the log with one C(O_APPEND) write, so two runs appending at once never interleave; a record whose
    C(incident_id) is already in the log is not appended again.
  - Writes the Markdown report C(incident-<incident_id>.md) in O(report_dir) (what on-call pastes into the team's
    incident log) and, when the outage exceeded O(postmortem_after_seconds), C(postmortem-<incident_id>.md) - the
    timeline, the root cause analysis and the action items, the facts filled in.
  - Every value of O(secrets) is masked in the record and the reports, and so are C(password=...)-style
    assignments and URL userinfo quoted in evidence lines.
version_added: "1.2.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Nothing is written; the record, the Markdown and the paths that would be written are returned.
  diff_mode:
    support: partial
    details: The diff shows the line appended to the incident log, not the Markdown files.
  idempotent:
    support: full
    details: The same record (same C(incident_id) - host, detection time, run id) is appended once; the Markdown
      files are rewritten only when their content differs.
options:
  remediation:
    description: remediate.yml's report (C(remediate_report), kind C(k2-offload-remediation)).
    type: dict
    required: true
  diagnosis:
    description: The diagnosis report remediate.yml acted on (C(remediate_diagnosis), with its C(facts)) - evidence,
      TTL headroom, the alert as Prometheus saw it.
    type: dict
    default: {}
  log_path:
    description: The incident log, one JSON record per line (e.g. C(reports/incidents.jsonl)).
    type: path
    required: true
  report_dir:
    description: Where the Markdown report and the post-mortem skeleton go; default the directory of O(log_path).
    type: path
  remediation_report_path:
    description: Where remediate.yml wrote its JSON report (recorded in the record and the Markdown).
    type: str
  alert_name:
    description: The alert whose start is looked up in the diagnosis' Prometheus facts.
    type: str
    default: IcebergOffloadConsecutiveFailures
  alert_started_at:
    description:
      - When the alert started, ISO-8601 (Alertmanager's C(startsAt), as M(offload_alert_event) checked it).
        Without it, the start of a firing alert is read from the diagnosis (Prometheus C(activeAt) + the rule's
        C(for)); else it is unknown (null) and MTTR is measured from detection.
    type: str
  detected_at:
    description: When the incident was detected, ISO-8601; default the earlier of the run's start and the diagnosis'
      start.
    type: str
  step_times:
    description:
      - When each step of remediate.yml started - C(step) (the step name remediate.yml records, e.g. C(Scenario 2,
        ClickHouse (k2-clickhouse)), C(orchestration (prefect_db)), C(verification (...))) and C(at) (ISO-8601).
        Without them the actions are listed in order without a time of their own.
    type: list
    elements: dict
    default: []
  postmortem_after_seconds:
    description: Outage above which the post-mortem skeleton is written (runbook - extended outage >1 hour).
    type: int
    default: 3600
  secrets:
    description: Values that must not appear in the record or the reports (passwords, tokens).
    type: list
    elements: str
    default: []
seealso:
  - module: offload_notify
  - module: offload_plan
"""

EXAMPLES = r"""
---
- name: Record the incident (runbook Post-Incident)
  offload_incident:
    remediation: "{{ remediate_report }}"
    diagnosis: "{{ remediate_diagnosis }}"
    log_path: "{{ playbook_dir }}/../reports/incidents.jsonl"
    remediation_report_path: "{{ remediation_report_path }}"
    alert_started_at: "{{ alert_event.alert.started_at }}"  # checked by offload_alert_event, never k2_alert_starts_at
    step_times: "{{ remediate_step_times | default([]) }}"
    secrets:
      - "{{ k2_postgres_password | default('') }}"
      - "{{ k2_clickhouse_password | default('') }}"
  delegate_to: localhost
  register: remediate_incident

- name: Say where it is
  ansible.builtin.debug:
    msg: "incident {{ remediate_incident.record.incident_id }}: {{ remediate_incident.report_path }}"
"""

RETURN = r"""
---
record:
  description: The incident record appended (or that would be, in check mode), secrets masked.
  returned: always
  type: dict
  sample:
    schema_version: 1
    kind: k2-offload-incident
    incident_id: k2-lab-20261129T100529Z-cli-12889
    host: k2-lab
    run: {run_id: cli-12889, kind: cli, pid: 12889, check_mode: false, who: oncall@ops-1, control_node: ops-1}
    outcome: {status: recovered, resolved: true, message: "scenario(s) 2 for table(s) ...", escalation: null,
              escalation_rule: null}
    alert: {name: IcebergOffloadConsecutiveFailures, started_at: "2026-11-29T10:01:04Z",
            source: "Prometheus activeAt + the rule's for", active_since: "2026-11-29T10:01:00Z", tables: {}}
    times: {alert_started_at: "2026-11-29T10:01:04Z", detected_at: "2026-11-29T10:05:29Z",
            diagnosed_at: "2026-11-29T10:05:41Z", remediation_started_at: "2026-11-29T10:05:29Z",
            finished_at: "2026-11-29T10:06:26Z", resolved_at: "2026-11-29T10:06:26Z"}
    mttr: {seconds: 322.0, from: alert_start, from_time: "2026-11-29T10:01:04Z", to_time: "2026-11-29T10:06:26Z",
           human: 5 min 22 s, reason: null}
    data_loss: {verdict: none_found, findings: ["truth check clean: 0 missing, 0 duplicated"],
                ttl_headroom_seconds: {bronze_trades_binance: 604500.0}, min_ttl_headroom_seconds: 604500.0,
                truth: []}
    new_failure_mode: {flag: false, note: null, evidence: []}
    postmortem: {due: false, threshold_seconds: 3600, reason: "outage 5 min 22 s, under 1 h 00 min"}
    timeline: [{at: "2026-11-29T10:01:04Z", event: "IcebergOffloadConsecutiveFailures fired (...)"}]
log_path:
  description: The incident log.
  returned: always
  type: str
report_path:
  description: The Markdown incident report.
  returned: always
  type: str
postmortem_path:
  description: The post-mortem skeleton, or null when not due.
  returned: always
  type: str
appended:
  description: Whether the record was (in check mode, would be) appended; false when its incident_id was there.
  returned: always
  type: bool
markdown:
  description: The Markdown incident report.
  returned: always
  type: str
msg:
  description: One line for the operator - the incident recorded (its outcome, MTTR, a new failure mode, a
    post-mortem due) or already in the log.
  returned: always
  type: str
  sample: "recorded incident k2-lab-20261129T031207Z-cli-4242 (recovered, MTTR 4 min 12 s)"
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_incident import (
    IncidentError,
    append_record,
    build_record,
    ensure_dir,
    render_postmortem,
    render_report,
    write_text,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "remediation": {"type": "dict", "required": True},
            "diagnosis": {"type": "dict", "default": {}},
            "log_path": {"type": "path", "required": True},
            "report_dir": {"type": "path"},
            "remediation_report_path": {"type": "str"},
            "alert_name": {"type": "str", "default": "IcebergOffloadConsecutiveFailures"},
            "alert_started_at": {"type": "str"},
            "detected_at": {"type": "str"},
            "step_times": {"type": "list", "elements": "dict", "default": []},
            "postmortem_after_seconds": {"type": "int", "default": 3600},
            "secrets": {"type": "list", "elements": "str", "default": [], "no_log": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    if not p["log_path"] or p["log_path"].endswith("/") or os.path.isdir(p["log_path"]):
        module.fail_json(msg=f"log_path must name the incident log file, got {p['log_path']!r}.")
    if p["postmortem_after_seconds"] < 0:
        module.fail_json(msg=f"postmortem_after_seconds must not be negative, got {p['postmortem_after_seconds']}.")
    report_dir = p["report_dir"] or os.path.dirname(os.path.abspath(p["log_path"]))
    try:
        record = build_record(p["remediation"], p["diagnosis"], alert_name=p["alert_name"],
                              alert_started_at=p["alert_started_at"], detected_at=p["detected_at"],
                              step_times=p["step_times"], postmortem_after_seconds=p["postmortem_after_seconds"],
                              secrets=p["secrets"])
        ident = record["incident_id"]
        report_path = os.path.join(report_dir, f"incident-{ident}.md")
        postmortem_path = os.path.join(report_dir, f"postmortem-{ident}.md") if record["postmortem"]["due"] else None
        record["reports"] = {"incident_log": p["log_path"], "remediation_report": p["remediation_report_path"],
                             "incident_report": report_path, "postmortem": postmortem_path}
        markdown = render_report(record)
        if not module.check_mode:
            ensure_dir(os.path.dirname(os.path.abspath(p["log_path"])))
            ensure_dir(report_dir)
        appended = append_record(p["log_path"], record, check_mode=module.check_mode)
        wrote = write_text(report_path, markdown, check_mode=module.check_mode)
        if postmortem_path:
            wrote = write_text(postmortem_path, render_postmortem(record), check_mode=module.check_mode) or wrote
    except IncidentError as exc:
        module.fail_json(msg=f"Incident record: {exc}")
    result = {"changed": appended or wrote, "record": record, "log_path": p["log_path"], "report_path": report_path,
              "postmortem_path": postmortem_path, "appended": appended, "markdown": markdown,
              "msg": (f"{'would record' if module.check_mode else 'recorded'} incident {ident} "
                      f"({record['outcome']['status']}, MTTR {record['mttr']['human'] or 'n/a'}"
                      f"{', NEW FAILURE MODE: update the runbook' if record['new_failure_mode']['flag'] else ''}"
                      f"{', post-mortem due' if postmortem_path else ''})" if appended else
                      f"incident {ident} is already in {p['log_path']}")}
    if appended and module._diff:
        result["diff"] = {"before_header": p["log_path"], "after_header": p["log_path"], "before": "",
                          "after": json.dumps(record, sort_keys=True) + "\n"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
