#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_triage
short_description: Apply the runbook's decision tree to gathered facts and name the scenario(s)
description:
  - Pure logic, no I/O. Takes the facts gathered by M(offload_watermark), M(offload_clickhouse),
    M(offload_iceberg_info), M(offload_prefect), M(offload_alerts), community.docker's container info and the
    Spark container probes, and returns the runbook's scenario(s) in the decision tree's order, each with the
    evidence lines that led there, the affected tables and the next action.
  - Log lines of failed flow runs are classified as timeout, watermark, connection or process errors.
  - When failures are seen but no rule matches, the result is C(unknown) with the evidence; it never guesses.
  - Prometheus is optional - on a stock K2 the metrics are not exported, so every rule also stands on
    PostgreSQL and Prefect signals alone.
version_added: "1.0.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  raw:
    description:
      - "The probes' raw outputs as the role offload_diagnose gathers them - C(probes) (the async results of
        the info modules), C(docker) (the registered result of M(offload_container_info): containers, ClickHouse's
        memory, C(ps) and the JDBC check in the Spark container), C(jdbc_path), C(network_name),
        C(container_names)."
      - A probe that failed or did not run is read as its component being unreachable.
    type: dict
    required: true
  tables:
    description: Source table names of the offload (the inventory's C(k2_tables[].source)).
    type: list
    elements: str
    required: true
  memory_threshold:
    description: Fraction of its memory limit above which ClickHouse counts as under memory pressure.
    type: float
    default: 0.9
  watermark_tolerance_seconds:
    description: Allowed difference between a watermark and the cold tier's committed maximum.
    type: float
    default: 1.0
  warehouse_mode:
    description: Expected mode of the Iceberg warehouse directory.
    type: str
    default: "0775"
"""

EXAMPLES = r"""
---
- name: Name the scenario
  offload_triage:
    raw: "{{ gathered }}"
    tables: "{{ k2_tables | map(attribute='source') | list }}"
  register: triage
"""

RETURN = r"""
---
status:
  description:
    - C(healthy) only when every probe answered and nothing applies; C(degraded) (a root cause or scenario matched);
      C(unknown) (failures, no matching rule); C(blind) (nothing found, but a probe did not answer).
  returned: always
  type: str
root_causes:
  description:
    - Orchestration components down upstream of the worker (PostgreSQL C(prefect_db), then C(prefect_server)), each
      with its evidence and the downstream symptoms it explains (C(consequences)), which are then not scenarios.
  returned: always
  type: list
  elements: dict
  sample:
    - {component: prefect_db, container: k2-prefect-db, title: "PostgreSQL (k2-prefect-db): ...",
       evidence: ["k2-prefect-db: container exited (exit code 0)"],
       consequences: ["no worker of pool iceberg-offload is online (heartbeat stale)"], next_action: "Start ..."}
blind:
  description: Probes that did not answer and whose failure no down component explains - component, probe, one-line
    cause, and whether it is monitoring (Prometheus, Alertmanager).
  returned: always
  type: list
  elements: dict
  sample: [{component: ClickHouse, probe: clickhouse, cause: "... Authentication failed ...", monitoring: false}]
alerting_blind:
  description: Prometheus or Alertmanager did not answer - the alert cannot fire or notify anyone.
  returned: always
  type: bool
scenarios:
  description: Matched scenarios in the runbook's order (1 worker, 2 ClickHouse, 3 Spark, 4 watermark, 5 timeout).
  returned: always
  type: list
  elements: dict
  sample:
    - {scenario: 2, key: clickhouse_connectivity, title: ClickHouse connectivity failure,
       tables: [bronze_trades_binance], evidence: ["k2-clickhouse: container exited (exit code 0)"],
       next_action: "Bring ClickHouse back ..."}
failing_tables:
  description: Tables seen failing (alert labels, watermark failure_count/status, failed flow runs' logs).
  returned: always
  type: list
  elements: str
causes:
  description:
    - Causes within a scenario that change the remediation, so that playbooks never parse the evidence prose.
    - C(clickhouse_memory) - code 241 or ClickHouse above the memory threshold (Scenario 2 restarts it);
      C(spark_oom) - exit 137 / OutOfMemory / OOMKilled (Scenario 3 restarts Spark); C(volume_spike_tables) -
      timed-out tables above the normal hourly volume (Scenario 5 runs one long manual offload);
      C(orphan_processes) - offload jobs in the Spark container with no RUNNING flow run;
      C(long_running_queries) - ClickHouse queries over the long-query threshold during a timeout.
  returned: always
  type: dict
  sample: {clickhouse_memory: false, spark_oom: false, volume_spike_tables: [bronze_trades_binance],
           orphan_processes: 1, long_running_queries: 0}
error_classes:
  description: Classes of the error lines found in the failed runs' logs.
  returned: always
  type: list
  elements: str
ttl_headroom_seconds:
  description: Per table, time left before ClickHouse's TTL deletes rows not yet offloaded.
  returned: always
  type: dict
min_ttl_headroom_seconds:
  description: The smallest headroom, or null when unknown.
  returned: always
  type: float
prometheus_metrics_exported:
  description: Whether Prometheus answered with offload metrics.
  returned: always
  type: bool
facts:
  description: The normalised facts the decision was made on (for the report).
  returned: always
  type: dict
summary_lines:
  description: A short human summary (scenario, tables, evidence, TTL headroom, next step).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_common import invalid_identifiers, to_json_safe
from ansible.module_utils.offload_rules import facts_from_raw, summary_lines, triage


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "raw": {"type": "dict", "required": True},
            "tables": {"type": "list", "elements": "str", "required": True},
            "memory_threshold": {"type": "float", "default": 0.9},
            "watermark_tolerance_seconds": {"type": "float", "default": 1.0},
            "warehouse_mode": {"type": "str", "default": "0775"},
        },
        supports_check_mode=True,
    )
    p = module.params
    bad = invalid_identifiers(p["tables"])
    if bad:
        module.fail_json(msg=f"Invalid table name(s) {', '.join(repr(b) for b in bad)}: only letters, digits and "
                             "underscores are accepted.")
    if not 0 < p["memory_threshold"] <= 1:
        module.fail_json(msg=f"memory_threshold must be in (0, 1], got {p['memory_threshold']}")
    facts = facts_from_raw(p["raw"])
    result = triage(facts, p["tables"], memory_threshold=p["memory_threshold"],
                    watermark_tolerance_seconds=p["watermark_tolerance_seconds"], warehouse_mode=p["warehouse_mode"])
    module.exit_json(changed=False, facts=to_json_safe(facts), summary_lines=summary_lines(result), **result)


if __name__ == "__main__":
    main()
