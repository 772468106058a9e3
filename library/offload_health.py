#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_health
short_description: Decide the daily health of the K2 offload from a diagnosis (the runbook's daily health check)
description:
  - Pure logic, no I/O. playbooks/health_check.yml runs the diagnosis (role offload_diagnose - the same probes, no
    second implementation) and reads the warehouse's disk usage; this module turns them into one status.
  - Checks - the diagnosis itself (a scenario, a root cause or a blind probe needs a human); the five containers
    running; the last O(recent_runs) flow runs; watermark anomalies; lag per offloaded table and TTL headroom; the
    warehouse's disk usage; whether the offload metrics are exported (stock K2 exports none - a warning).
  - Each check is C(ok), C(warning) or C(failed); a check that could not be made fails. RV(status) is
    C(needs_human) when any check failed, else C(warning) or C(healthy).
version_added: "1.2.0"
author: K2 offload automation
extends_documentation_fragment:
  - offload.pure_logic
options:
  diagnosis:
    description: The diagnosis report with its C(facts) (the role offload_diagnose's C(offload_diagnose_report)).
    type: dict
    required: true
  warehouse_df:
    description: The output of C(df -P -B1 <warehouse>) in the Spark container; empty when it could not run.
    type: str
    default: ""
  recent_runs:
    description: How many of the newest flow runs to look at.
    type: raw
    default: 10
  lag_threshold_minutes:
    description: Lag above which an offloaded table is a warning.
    type: raw
    default: 20
  ttl_headroom_hours:
    description: TTL headroom below which a table needs a human (rows that never reached Iceberg would be deleted).
    type: raw
    default: 24
  disk_warning:
    description: Used fraction of the warehouse filesystem from which it is a warning.
    type: raw
    default: 0.8
  disk_critical:
    description: Used fraction of the warehouse filesystem from which a human is needed.
    type: raw
    default: 0.9
seealso:
  - module: offload_diagnosis
"""

EXAMPLES = r"""
---
- name: Decide the stack's health
  offload_health:
    diagnosis: "{{ offload_diagnose_report }}"
    warehouse_df: "{{ health_check_df.stdout | default('') }}"
  register: health_check_verdict
"""

RETURN = r"""
status:
  description: C(healthy), C(warning) or C(needs_human).
  returned: always
  type: str
needs_human:
  description: Whether any check failed (health_check.yml then exits non-zero, so a scheduler notices).
  returned: always
  type: bool
checks:
  description: One entry per check - C(check) (C(diagnosis), C(containers), C(flow_runs), C(watermarks), C(lag),
    C(warehouse_disk), C(metrics)), C(level), C(evidence) (one line), and details where they apply.
  returned: always
  type: list
  elements: dict
  sample:
    - {check: containers, level: failed, evidence: "not running: k2-prefect-worker exited"}
summary_lines:
  description: The status, then one line per check that is not ok.
  returned: always
  type: list
  elements: str
  sample:
    - "HEALTH NEEDS_HUMAN: diagnosis failed, containers failed, flow_runs ok, watermarks ok, lag ok,
      warehouse_disk ok, metrics ok"
    - "failed: diagnosis - scenario 1: run playbooks/remediate.yml"
    - "failed: containers - not running: k2-prefect-worker exited"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_health import HealthError, assess, check_thresholds, parse_df


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "diagnosis": {"type": "dict", "required": True},
            "warehouse_df": {"type": "str", "default": ""},
            "recent_runs": {"type": "raw", "default": 10},
            "lag_threshold_minutes": {"type": "raw", "default": 20},
            "ttl_headroom_hours": {"type": "raw", "default": 24},
            "disk_warning": {"type": "raw", "default": 0.8},
            "disk_critical": {"type": "raw", "default": 0.9},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        thresholds = check_thresholds(p["recent_runs"], p["lag_threshold_minutes"], p["ttl_headroom_hours"],
                                      p["disk_warning"], p["disk_critical"])
    except HealthError as exc:
        module.fail_json(msg=str(exc))
    if p["diagnosis"].get("kind") != "k2-offload-diagnosis":
        module.fail_json(msg=f"diagnosis is not a diagnosis report (kind {p['diagnosis'].get('kind')!r}).")
    module.exit_json(changed=False, **assess(p["diagnosis"], parse_df(p["warehouse_df"]), thresholds))


if __name__ == "__main__":
    main()
