#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_maintenance_report
short_description: Decide and report the weekly watermark hygiene from what was read, planned and done
description:
  - Pure logic, no I/O (rules in module_utils/offload_maintenance.py). Takes the registered results of
    M(offload_watermark_info) and M(offload_watermark) - the watermarks read, the prune planned in check mode
    (run and rolled back), the V(backup) taken first and the V(prune) - and returns the maintenance report, its
    status and a summary.
  - History layout (the runbook's append-only table) - the rows each configured table had and kept, the backup
    file. State layout (K2's real table, one row per table) - nothing to prune; the watermark rows stuck
    C(running), with NULL values, ahead of the server's clock or missing are reported with what to do (the project's
    Scenario 4 remediation, which backs up and repairs under the table's lock); nothing is changed automatically.
  - Anomalies that belong to the incident runbook (a failed offload, consecutive failures) or are expected (the 1970
    seed) are listed as information.
version_added: "1.2.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Pure decision; in check mode the report says what the maintenance would do (status V(would_prune)).
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  inspect:
    description: The registered result of M(offload_watermark_info) (its C(layout), C(anomalies), ...).
    type: dict
    required: true
  plan:
    description: The registered result of M(offload_watermark) V(prune) run in check mode (rolled back), or of a
      skipped task.
    type: dict
    default: {}
  backup:
    description: The registered result of M(offload_watermark) V(backup), or of a skipped task.
    type: dict
    default: {}
  prune:
    description: The registered result of M(offload_watermark) V(prune), or of a skipped task.
    type: dict
    default: {}
  keep:
    description: Rows kept per table in the history layout.
    type: int
    required: true
  tables:
    description: The source tables maintained (plain identifiers).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
---
- name: Decide and report
  offload_maintenance_report:
    inspect: "{{ watermarks }}"
    plan: "{{ prune_plan }}"
    backup: "{{ prune_backup }}"
    prune: "{{ prune_result }}"
    keep: 100
    tables: "{{ k2_tables | map(attribute='source') | list }}"
  register: maintenance

- name: Show it
  ansible.builtin.debug:
    msg: "{{ maintenance.summary_lines }}"
"""

RETURN = r"""
---
status:
  description: V(clean), V(pruned), V(would_prune) (check mode), V(attention) (a finding needs a human) or
    V(unusable) (the table is absent or of an unknown layout).
  returned: always
  type: str
  sample: pruned
report:
  description: C(layout), C(tables), C(server_time), C(findings) (C(table), C(code), C(detail), C(advice),
    C(action_needed)), C(prune) (history layout - C(keep), C(planned_deletions), C(deleted), C(would_delete),
    C(rows_before), C(rows_after), C(locked), C(backup)), C(status) and C(reason).
  returned: always
  type: dict
  sample:
    layout: history
    tables: [bronze_trades_binance]
    findings: []
    prune: {keep: 100, planned_deletions: 50, deleted: 50, would_delete: null,
            rows_before: {bronze_trades_binance: 150}, rows_after: {bronze_trades_binance: 100}, locked: [],
            backup: {file: /var/backups/k2-offload-watermarks/offload_watermarks-20261129T180000000000Z.csv,
                     rows: 160, sha256: 3f1c..., written: true}}
    status: pruned
    reason: null
summary_lines:
  description: A short human summary (the verdict, rows deleted per table, the backup, each finding with what to do).
  returned: always
  type: list
  elements: str
  sample: ["WATERMARK MAINTENANCE PRUNED: layout history, 1 table(s)",
           "deleted 50 history row(s), keeping the newest 100 per table", "bronze_trades_binance: 150 -> 100 row(s)"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_common import invalid_identifiers
from ansible.module_utils.offload_maintenance import build_report, summary_lines


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "inspect": {"type": "dict", "required": True},
            "plan": {"type": "dict", "default": {}},
            "backup": {"type": "dict", "default": {}},
            "prune": {"type": "dict", "default": {}},
            "keep": {"type": "int", "required": True},
            "tables": {"type": "list", "elements": "str", "required": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    bad = invalid_identifiers(p["tables"])
    if bad:
        module.fail_json(msg=f"Invalid table name(s) {', '.join(repr(b)[:80] for b in bad)}: only letters, digits and "
                             "underscores are accepted.")
    if p["keep"] < 1:
        module.fail_json(msg=f"keep must be at least 1 (the newest row is the watermark), got {p['keep']}.")
    if p["inspect"].get("failed") or "layout" not in p["inspect"]:
        module.fail_json(msg="inspect is not a result of offload_watermark_info (no layout): "
                             f"{str(p['inspect'].get('msg') or '')[:200]}")
    report = build_report(p["inspect"], p["keep"], p["tables"], p["plan"], p["backup"], p["prune"],
                          check_mode=module.check_mode)
    module.exit_json(changed=False, status=report["status"], report=report, summary_lines=summary_lines(report))


if __name__ == "__main__":
    main()
