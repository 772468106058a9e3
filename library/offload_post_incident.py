#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_post_incident
short_description: Decide whether the offload has recovered after an incident (the runbook's post-incident check)
description:
  - Pure logic, no I/O. playbooks/post_incident.yml follows the next flow runs (M(offload_prefect)
    O(action=observe)), reads the watermarks (M(offload_watermark)), the alert and the lag metric
    (M(offload_alerts)) and the truth check (M(offload_truth_check)); this module turns what they saw into one
    verdict with the evidence of each check.
  - Checks - the next O(expected_runs) flow runs COMPLETED; every table's lag at most O(lag_threshold_minutes)
    (from Prometheus' C(offload_lag_minutes) where exported, else from the watermark, since a stock K2 often
    exports no metrics); the alert resolved, or stale (still firing only because the rule's 15-minute window has
    not passed, while the runs since COMPLETED and no watermark is failing); the truth check clean.
  - A check that could not be made (Prometheus unreachable, no watermark, no truth check) fails; blind is never
    recovered.
version_added: "1.2.0"
author: K2 offload automation
extends_documentation_fragment:
  - offload.pure_logic
options:
  tables:
    description: Source tables whose recovery is verified.
    type: list
    elements: raw
    required: true
  expected_runs:
    description: How many flow runs must have COMPLETED (the runbook says 3).
    type: raw
    default: 3
  lag_threshold_minutes:
    description: Highest acceptable offload lag per table, in minutes.
    type: raw
    default: 20
  observed:
    description: The result of M(offload_prefect) O(action=observe) (RV(offload_prefect#module:observed_runs),
      RV(offload_prefect#module:timed_out)).
    type: dict
  alerts:
    description: The result of M(offload_alerts) with C(offload_lag_minutes) among its metrics.
    type: dict
  watermarks:
    description: RV(offload_watermark#module:watermarks) - per table C(timestamp), C(status), C(lag_minutes).
    type: dict
  truth:
    description: The result of M(offload_truth_check).
    type: dict
seealso:
  - module: offload_prefect
  - module: offload_truth_check
"""

EXAMPLES = r"""
---
- name: Decide
  offload_post_incident:
    tables: [bronze_trades_binance]
    observed: "{{ post_incident_runs }}"
    alerts: "{{ post_incident_alerts }}"
    watermarks: "{{ post_incident_watermarks.watermarks }}"
    truth: "{{ post_incident_truth }}"
  register: post_incident_verdict
"""

RETURN = r"""
passed:
  description: Whether every check passed.
  returned: always
  type: bool
status:
  description: C(passed) or C(failed).
  returned: always
  type: str
checks:
  description: One entry per check - C(check) (C(flow_runs), C(lag), C(alert), C(truth)), C(passed), C(evidence)
    (one line), and C(runs) or C(lags) (per table C(minutes) and C(source)) where they apply.
  returned: always
  type: list
  elements: dict
  sample:
    - {check: flow_runs, passed: true, evidence: 3 flow runs COMPLETED, runs: [able-fox COMPLETED]}
    - check: lag
      passed: true
      evidence: "lag under 20 min: bronze_trades_binance 0.3 min (watermark)"
      lags: {bronze_trades_binance: {minutes: 0.3, source: watermark}}
summary_lines:
  description: The verdict, then one line per check.
  returned: always
  type: list
  elements: str
  sample:
    - "POST-INCIDENT PASSED: flow_runs ok, lag ok, alert ok, truth ok"
    - "ok: lag under 20 min: bronze_trades_binance 0.3 min (watermark)"
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_post_incident import PostIncidentError, check_inputs, verdict


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "tables": {"type": "list", "elements": "raw", "required": True},
            "expected_runs": {"type": "raw", "default": 3},
            "lag_threshold_minutes": {"type": "raw", "default": 20},
            "observed": {"type": "dict"},
            "alerts": {"type": "dict"},
            "watermarks": {"type": "dict"},
            "truth": {"type": "dict"},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        runs, threshold, tables = check_inputs(p["expected_runs"], p["lag_threshold_minutes"], p["tables"])
    except PostIncidentError as exc:
        module.fail_json(msg=str(exc))
    result = verdict(runs, threshold, tables, p["observed"] or {}, p["alerts"], p["watermarks"], p["truth"],
                     datetime.now(timezone.utc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
