#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_alerts
short_description: Read K2's offload alert and metrics from Prometheus
description:
  - Runbook "Iceberg Offload Consecutive Failures", diagnosis step 1, through Prometheus' HTTP API.
  - Reports the active (pending or firing) alerts named O(alert_name) with the tables they name, whether the
    alerting rule is loaded at all, and the current value of a few metrics or PromQL expressions (instant
    queries).
  - On a stock K2 stack the offload metrics are usually not exported and the rule files are not mounted into
    Prometheus, so empty metrics (RV(metrics_empty=true)) and a rule that is not loaded are findings, not
    failures. A Prometheus that cannot be reached is a finding too (RV(reachable=false) with a one-line
    RV(error)). The module fails only on bad input.
version_added: "1.0.0"
author: K2 offload automation
extends_documentation_fragment:
  - offload.info_module
  - offload.http_api
options:
  api_url:
    description:
      - Base URL of Prometheus (without C(/api/v1)); a path prefix such as C(/prometheus) is kept.
      - If not set, the environment variable E(PROMETHEUS_URL) is used.
    type: str
    default: http://127.0.0.1:9090
  alert_name:
    description: The alert to report (label C(alertname)).
    type: str
    default: IcebergOffloadConsecutiveFailures
  metrics:
    description:
      - Metric names or PromQL expressions, each read as an instant query.
      - An expression Prometheus rejects is reported in RV(metric_errors) (and as a warning), not as a failure.
    type: list
    elements: str
    default: ["offload_lag_minutes", "sum(increase(offload_errors_total[15m])) by (table, error_type)"]
notes:
  - Sample values are returned as numbers; C(NaN) and infinities become null, with the string Prometheus sent in
    C(raw).
seealso:
  - module: offload_prefect_info
"""

EXAMPLES = r"""
---
- name: Confirm the alert (runbook step 1)
  offload_alerts:
    api_url: "{{ k2_prometheus_url }}"
  register: alerts

- name: Affected tables
  ansible.builtin.debug:
    msg: "Alert {{ 'firing' if alerts.alerts else 'not active' }} for {{ alerts.alert_tables }}"

- name: Metrics are not exported (K2's usual state), fall back on the watermark table
  ansible.builtin.debug:
    msg: "No offload metrics in Prometheus"
  when: alerts.reachable and alerts.metrics_empty

- name: Other expressions
  offload_alerts:
    alert_name: IcebergOffloadLagCritical
    metrics:
      - offload_lag_minutes > 30
      - up{job="iceberg-scheduler"}
  register: lag
"""

RETURN = r"""
---
reachable:
  description: Whether Prometheus answered.
  returned: always
  type: bool
  sample: true
api_url:
  description: The base URL used.
  returned: always
  type: str
  sample: http://127.0.0.1:9090
error:
  description: One line describing the first problem met (Prometheus unreachable, unexpected answer), else null.
  returned: always
  type: str
  sample: "Prometheus http://127.0.0.1:9090 is unreachable: [Errno 111] Connection refused"
alerts:
  description: The pending or firing alerts named O(alert_name), firing first.
  returned: always
  type: list
  elements: dict
  sample:
    - state: firing
      labels: {alertname: IcebergOffloadConsecutiveFailures, severity: critical, table: bronze_trades_binance}
      annotations: {summary: Iceberg offload failing repeatedly for bronze_trades_binance}
      active_at: "2026-11-26T07:30:56.361111476Z"
      value: 21.04
      raw_value: "2.1036130289532295e+01"
alert_tables:
  description: The C(table) labels of those alerts, sorted.
  returned: always
  type: list
  elements: str
  sample: [bronze_trades_binance]
rule:
  description:
    - The alerting rule O(alert_name) as Prometheus loaded it; null when it is not loaded (K2's stock compose does
      not mount the rules directory) or when the rules could not be read.
  returned: always
  type: dict
  sample: {group: iceberg_offload_critical, query: "sum by (table) (increase(offload_errors_total[15m])) >= 3",
           duration: 4, health: ok, state: firing, last_error: ""}
rule_loaded:
  description: Whether the alerting rule O(alert_name) is loaded (null when unknown).
  returned: always
  type: bool
  sample: true
metrics:
  description: Per expression of O(metrics), its series (labels, value, raw string and sample time).
  returned: always
  type: dict
  sample:
    offload_lag_minutes:
      - {labels: {__name__: offload_lag_minutes, table: bronze_trades_binance}, value: 5.6, raw: "5.60448075",
         timestamp: 1795679029.089}
    "sum(increase(offload_errors_total[15m])) by (table, error_type)": []
metric_errors:
  description: Per expression that Prometheus could not evaluate, one line.
  returned: always
  type: dict
  sample: {"sum(": "/api/v1/query: bad_data: invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"}
metrics_empty:
  description:
    - True when every expression returned no series (on real K2 the metrics are often not exported). Null when
      Prometheus was not reachable or no expression was asked.
  returned: always
  type: bool
  sample: false
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_common import ProbeError, to_json_safe
from ansible.module_utils.offload_prometheus_inspect import inspect_argument_spec, read, validate


def main() -> None:
    module = AnsibleModule(argument_spec=inspect_argument_spec(), supports_check_mode=True)
    try:
        validate(module.params)
    except ProbeError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**to_json_safe(read(module)))


if __name__ == "__main__":
    main()
