#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_diagnosis
short_description: Diagnose the Iceberg offload - every probe at once, then the runbook's decision tree
description:
  - The runbook's diagnosis, steps 1-4, in one module run. Probes the watermark table (PostgreSQL), ClickHouse,
    the cold tier (Iceberg metadata), Prefect (deployment, flow runs with the failed runs' logs, workers),
    Prometheus (alert, rule, metrics), Alertmanager and the Docker engine (container states, ClickHouse's memory,
    offload processes and the JDBC driver in the Spark container) concurrently ("Run these checks in parallel"),
    each in its own thread, then applies the runbook's decision tree and names the scenario(s).
  - Each probe is the read path of the module of its component (M(offload_watermark_info), M(offload_clickhouse),
    M(offload_iceberg_info), M(offload_prefect_info), M(offload_alerts), M(offload_container_info)), with the same
    options and the same findings; running them in one process saves a module start per probe.
  - A probe that fails, rejects its input or does not answer within O(probe_timeout) is a finding - its component
    is reported unreachable (C(blind) unless a down container explains it) - never the end of the diagnosis.
  - The only write is the warehouse probe. It creates and removes one empty file in O(docker.warehouse_path), as
    the Spark container's user, because only a write says whether Spark can write there. It runs in check mode
    too, leaves nothing behind, and RV(changed) stays false.
  - When failures are seen but no rule matches, the status is C(unknown) with the evidence; it never guesses.
    Prometheus is optional - on a stock K2 the metrics are not exported, so every rule also stands on PostgreSQL
    and Prefect signals alone.
version_added: "1.1.0"
author: K2 offload automation
extends_documentation_fragment:
  - offload.tables
  - offload.info_module
options:
  watermarks:
    description: The watermark probe - the connection to the watermark database and M(offload_watermark_info)'s
      inspection thresholds.
    type: dict
    default: {}
    suboptions:
      login_host: {description: PostgreSQL host. Falls back to E(PGHOST)., type: str, default: 127.0.0.1}
      login_port: {description: PostgreSQL port. Falls back to E(PGPORT)., type: int, default: 5432}
      login_user: {description: PostgreSQL user. Falls back to E(PGUSER)., type: str, default: prefect}
      login_password: {description: Password of O(watermarks.login_user). Falls back to E(PGPASSWORD). Never
          returned., type: str}
      login_db: {description: Database holding C(offload_watermarks). Falls back to E(PGDATABASE)., type: str,
                 default: prefect}
      connect_timeout: {description: Seconds to wait for the database connection., type: int, default: 5}
      stale_running_minutes: {description: A row C(running) for longer is stuck., type: int, default: 30}
      history_row_limit: {description: History layout - more rows per table is bloat., type: int, default: 100}
      future_tolerance_seconds: {description: A watermark further ahead of the database clock is in the future.,
                                 type: int, default: 60}
  clickhouse:
    description: The ClickHouse probe - the connection and M(offload_clickhouse)'s inspection options.
    type: dict
    default: {}
    suboptions:
      clickhouse_host: {description: ClickHouse host (HTTP interface). Falls back to E(CLICKHOUSE_HOST)., type: str,
                        default: 127.0.0.1}
      clickhouse_port: {description: ClickHouse HTTP port. Falls back to E(CLICKHOUSE_PORT)., type: int, default: 8123}
      clickhouse_user: {description: ClickHouse user. Falls back to E(CLICKHOUSE_USER)., type: str, default: default}
      clickhouse_password: {description: Password of O(clickhouse.clickhouse_user). Falls back to
          E(CLICKHOUSE_PASSWORD). Never returned., type: str, default: ""}
      clickhouse_database: {description: Database of the offloaded tables., type: str, default: k2}
      connect_timeout: {description: Seconds to wait for the TCP connection., type: int, default: 5}
      query_timeout: {description: Server-side limit of each query (C(max_execution_time))., type: int, default: 30}
      volume_normal_rows_per_hour: {description: Rows per hour above which a table's volume is C(elevated).,
                                    type: int, default: 5000000}
      volume_spike_rows_per_hour: {description: Rows per hour above which it is a C(spike)., type: int,
                                   default: 10000000}
      long_query_seconds: {description: Queries running longer are reported., type: float, default: 60}
  iceberg:
    description: The cold-tier probe (M(offload_iceberg_info)).
    type: dict
    required: true
    suboptions:
      warehouse_path: {description: The Iceberg warehouse as the host the module runs on sees it., type: path,
                       required: true}
      written_warehouse_path: {description: The warehouse path written into Iceberg metadata (inside Spark).,
                               type: str, default: /home/iceberg/warehouse}
  prefect:
    description: The Prefect probe - M(offload_prefect_info)'s options.
    type: dict
    default: {}
    suboptions:
      api_url: {description: Prefect's API URL, ending in C(/api). Falls back to E(PREFECT_API_URL)., type: str,
                default: "http://127.0.0.1:4200/api"}
      timeout: {description: Seconds to wait for each HTTP request., type: int, default: 10}
      validate_certs: {description: Verify the server's TLS certificate., type: bool, default: true}
      deployment: {description: The offload deployment, C(flow/name)., type: str,
                   default: iceberg-offload-main/iceberg-offload-15min}
      work_pool: {description: The work pool of the offload's worker., type: str, default: iceberg-offload}
      recent_runs: {description: How many recent flow runs are read., type: int, default: 10}
      heartbeat_stale_seconds: {description: A worker whose heartbeat is older is offline., type: int, default: 90}
      include_logs: {description: Read the logs of failed runs (the evidence of most scenarios)., type: bool,
                     default: true}
  prometheus:
    description: The Prometheus probe - M(offload_alerts)' options.
    type: dict
    default: {}
    suboptions:
      api_url: {description: Prometheus' base URL. Falls back to E(PROMETHEUS_URL)., type: str,
                default: "http://127.0.0.1:9090"}
      timeout: {description: Seconds to wait for each HTTP request., type: int, default: 10}
      validate_certs: {description: Verify the server's TLS certificate., type: bool, default: true}
      alert_name: {description: The alert to look for., type: str, default: IcebergOffloadConsecutiveFailures}
      metrics:
        description: PromQL expressions read as evidence.
        type: list
        elements: str
        default: ["offload_lag_minutes", "sum(increase(offload_errors_total[15m])) by (table, error_type)"]
  alertmanager_url:
    description: Alertmanager's base URL; its C(/-/healthy) is probed. Empty - not probed.
    type: str
    default: ""
  docker:
    description: The Docker probe (M(offload_container_info)) through the engine of the host the module runs on.
    type: dict
    required: true
    suboptions:
      containers:
        description: The stack's containers by role (C(prefect_db), C(prefect_server), C(prefect_worker),
          C(clickhouse), C(spark), ...), the inventory's C(k2_containers).
        type: dict
        required: true
      jdbc_driver_path: {description: The ClickHouse JDBC driver in the Spark container., type: str, required: true}
      warehouse_path:
        description:
          - The warehouse in the Spark container. Whether Spark can write there is probed by creating and removing
            one empty file as the container's user (mode and owner would not say it).
        type: str
        default: /home/iceberg/warehouse
      timeout: {description: Seconds to wait for each Docker API call., type: int, default: 10}
  network_name:
    description: The stack's Docker network ClickHouse must be attached to.
    type: str
    required: true
  probe_timeout:
    description: Seconds to wait for all probes; a probe still running then is reported as not answering.
    type: int
    default: 60
  memory_threshold:
    description: Fraction of its memory limit above which ClickHouse counts as under memory pressure.
    type: float
    default: 0.9
  watermark_tolerance_seconds:
    description: Allowed difference between a watermark and the cold tier's committed maximum.
    type: float
    default: 1.0
  lock:
    description:
      - The stack's remediation lock (M(offload_lock)) on the host the module runs on. With its path, a schedule a
        remediation paused and that died before resuming it (the hold beside the lock, M(offload_schedule)) is a root
        cause; a pause by a live remediation or by a person is an observation. Empty path - not read.
    type: dict
    default: {}
    suboptions:
      path: {description: The lock file (C(k2_remediation_lock_path))., type: str, default: ""}
      stale_after_seconds:
        description: No sign of life for longer - the holder is gone (C(k2_lock_stale_after_seconds)).
        type: int
        default: 600
requirements:
  - psycopg2, clickhouse-connect, pyiceberg and the Docker SDK for Python on the host the module runs on; a
    missing one makes its probe blind, not the module fail.
seealso:
  - module: offload_health
  - module: offload_plan
"""

EXAMPLES = r"""
---
- name: Diagnose (runbook steps 1-4)
  offload_diagnosis:
    tables: "{{ k2_tables }}"
    watermarks: "{{ k2_postgres_connection }}"
    clickhouse: "{{ k2_clickhouse_connection }}"
    iceberg:
      warehouse_path: "{{ k2_warehouse_host_path }}"
      written_warehouse_path: "{{ k2_warehouse_path }}"
    prefect:
      api_url: "{{ k2_prefect_api_url }}"
    prometheus:
      api_url: "{{ k2_prometheus_url }}"
    alertmanager_url: "{{ k2_alertmanager_url }}"
    docker:
      containers: "{{ k2_containers }}"
      jdbc_driver_path: "{{ k2_jdbc_driver_path }}"
    network_name: "{{ k2_network_name }}"
  register: diagnosis
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
stale_alert_tables:
  description: Tables whose alert still fires although their newest run completed (the alert's window).
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
probe_seconds:
  description: Per probe, seconds until it answered (null - it did not within O(probe_timeout)).
  returned: always
  type: dict
  sample: {watermarks: 0.08, clickhouse: 0.31, iceberg: 0.42, prefect: 0.9, alerts: 0.05, alertmanager: 0.01,
           docker: 0.6}
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

import threading
import time
from urllib.error import HTTPError, URLError

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_clickhouse_inspect import inspect_argument_spec as clickhouse_spec
from ansible.module_utils.offload_clickhouse_inspect import read_clickhouse
from ansible.module_utils.offload_common import (
    ProbeError,
    ProbeReporter,
    check_tables,
    first_line,
    postgres_argument_spec,
    tables_argument_spec,
    to_json_safe,
)
from ansible.module_utils.offload_docker_api import HAS_DOCKER_SDK, DockerUnavailable, connect, gather
from ansible.module_utils.offload_iceberg_inspect import read_iceberg
from ansible.module_utils.offload_lock import LockError, StackLock
from ansible.module_utils.offload_prefect_inspect import inspect_argument_spec as prefect_spec
from ansible.module_utils.offload_prefect_inspect import read_prefect
from ansible.module_utils.offload_prometheus_inspect import inspect_argument_spec as prometheus_spec
from ansible.module_utils.offload_prometheus_inspect import read_prometheus
from ansible.module_utils.offload_redact import scrub
from ansible.module_utils.offload_rules import facts_from_raw, summary_lines, triage
from ansible.module_utils.offload_schedule import hold_facts, read_hold
from ansible.module_utils.offload_watermark_db import inspect_argument_spec as watermark_spec
from ansible.module_utils.offload_watermark_db import read_watermarks
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

ALERTMANAGER_TIMEOUT = 5


def _section(options: dict, required: bool = False) -> dict:
    spec = {"type": "dict", "options": options}
    return {**spec, "required": True} if required else {**spec, "default": {}, "apply_defaults": True}


def argument_spec() -> dict:
    return {
        **tables_argument_spec(),
        "watermarks": _section({**postgres_argument_spec(), **watermark_spec()}),
        "clickhouse": _section(clickhouse_spec()),
        "iceberg": _section({"warehouse_path": {"type": "path", "required": True},
                             "written_warehouse_path": {"type": "str", "default": "/home/iceberg/warehouse"}},
                            required=True),
        "prefect": _section(prefect_spec()),
        "prometheus": _section(prometheus_spec()),
        "alertmanager_url": {"type": "str", "default": ""},
        "docker": _section({"containers": {"type": "dict", "required": True},
                            "jdbc_driver_path": {"type": "str", "required": True},
                            "warehouse_path": {"type": "str", "default": "/home/iceberg/warehouse"},
                            "timeout": {"type": "int", "default": 10}}, required=True),
        "network_name": {"type": "str", "required": True},
        "probe_timeout": {"type": "int", "default": 60},
        "memory_threshold": {"type": "float", "default": 0.9},
        "watermark_tolerance_seconds": {"type": "float", "default": 1.0},
        "lock": _section({"path": {"type": "str", "default": ""}, "stale_after_seconds": {"type": "int", "default": 600}}),
    }


def read_schedule_hold(params: dict) -> dict:
    """The hold beside the lock and the lock's state (offload_schedule.hold_facts), or {} when not configured or
    unreadable (a warning: the schedule's state is then reported from Prefect alone)."""
    if not params["path"]:
        return {}
    info = StackLock(params["path"]).info(params["stale_after_seconds"])
    return hold_facts(read_hold(params["path"]), info["holder"], info["stale_reason"])


def read_alertmanager(reporter) -> dict:
    url = reporter.params["url"].rstrip("/") + "/-/healthy"
    try:
        resp = open_url(url, method="GET", timeout=ALERTMANAGER_TIMEOUT, http_agent="ansible-offload_diagnosis",
                        use_netrc=False)
        return {"status": resp.status, "url": url}
    except HTTPError as exc:
        raise ProbeError(f"Status code was {exc.code} and not [200]: {url}") from None
    except (TimeoutError, URLError, UrlsConnectionError, OSError) as exc:
        raise ProbeError(f"Status code was -1 and not [200]: Request failed: {first_line(exc)} ({url})") from None


def read_docker(reporter) -> dict:
    """offload_container_info's answer for the stack's containers (an engine that does not answer is a finding)."""
    params = reporter.params
    if not HAS_DOCKER_SDK:
        raise ProbeError("Failed to import the required Python library (Docker SDK for Python) on the control node.")
    names = params["containers"]
    try:
        api = connect(params["timeout"])
    except DockerUnavailable as exc:
        return {"reachable": False, "error": str(exc), "containers": {}, "errors": {}, "processes": {}, "files": [],
                "writable": []}
    try:
        return gather(api, list(names.values()), [names["clickhouse"]], [names["spark"]],
                      [{"container": names["spark"], "path": params["jdbc_driver_path"]}],
                      [{"container": names["spark"], "path": params["warehouse_path"]}])
    finally:
        api.close()


class Probe(threading.Thread):
    """One probe in its own daemon thread: a probe that hangs past the deadline is abandoned, never waited for
    at exit. `raw` is what the role's async probes used to give triage: the result, or failed with a one-line msg."""

    def __init__(self, name: str, read, params: dict) -> None:
        super().__init__(name=f"probe-{name}", daemon=True)
        self.probe, self.read, self.reporter = name, read, ProbeReporter(params)
        self.raw: dict | None = None
        self.seconds: float | None = None

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.raw = {**self.read(self.reporter), "finished": 1}
        except ProbeError as exc:
            self.raw = {"failed": True, "finished": 1, "msg": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a probe's crash is its component's finding, never a traceback
            self.raw = {"failed": True, "finished": 1, "msg": f"{self.probe} probe failed: {type(exc).__name__}: "
                                                             f"{first_line(exc)}"}
        self.seconds = round(time.monotonic() - started, 2)


def run_probes(probes: list[Probe], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for probe in probes:
        probe.start()
    for probe in probes:
        probe.join(max(0.0, deadline - time.monotonic()))
        if probe.raw is None:
            probe.raw = {"failed": True, "finished": 0, "msg": f"probe did not finish in time ({timeout} s)"}


def validate(module: AnsibleModule) -> None:
    p = module.params
    check_tables(module, p["tables"])
    missing = sorted({"clickhouse", "spark"} - set(p["docker"]["containers"]))
    if missing:
        module.fail_json(msg=f"docker.containers must name the {' and '.join(missing)} container(s) "
                             "(the inventory's k2_containers).")
    if not 0 < p["probe_timeout"] <= 600:
        module.fail_json(msg=f"probe_timeout must be between 1 and 600 seconds, got {p['probe_timeout']}.")
    if not 0 < p["memory_threshold"] <= 1:
        module.fail_json(msg=f"memory_threshold must be in (0, 1], got {p['memory_threshold']}.")


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    validate(module)
    p = module.params
    tables, sources = p["tables"], [t["source"] for t in p["tables"]]
    probes = [Probe("watermarks", read_watermarks, {**p["watermarks"], "tables": sources}),
              Probe("clickhouse", read_clickhouse, {**p["clickhouse"], "tables": tables}),
              Probe("iceberg", read_iceberg, {**p["iceberg"], "tables": tables}),
              Probe("prefect", read_prefect, p["prefect"]),
              Probe("alerts", read_prometheus, p["prometheus"]),
              Probe("docker", read_docker, p["docker"])]
    if p["alertmanager_url"]:
        probes.append(Probe("alertmanager", read_alertmanager, {"url": p["alertmanager_url"]}))
    run_probes(probes, p["probe_timeout"])
    raw = {probe.probe: probe.raw for probe in probes}
    for probe in probes:
        for warning in probe.reporter.warnings:
            module.warn(f"{probe.probe}: {warning}")
    facts = facts_from_raw({
        "network_name": p["network_name"], "container_names": p["docker"]["containers"],
        "docker": raw.pop("docker"), "jdbc_path": p["docker"]["jdbc_driver_path"],
        "probes": raw})
    try:
        facts["schedule_hold"] = read_schedule_hold(p["lock"])
    except LockError as exc:
        module.warn(f"schedule hold not read: {exc}")
    result = triage(facts, sources, memory_threshold=p["memory_threshold"],
                    watermark_tolerance_seconds=p["watermark_tolerance_seconds"])
    # The evidence quotes the stack's own logs, which may carry a password (a connection string, "password=..."):
    # masked here, so that no report, AWX artifact or later module sees it (the module's own passwords too).
    secrets = [p["watermarks"].get("login_password"), p["clickhouse"].get("clickhouse_password")]
    out = scrub({"facts": to_json_safe(facts), "summary_lines": summary_lines(result), **to_json_safe(result)}, secrets)
    module.exit_json(changed=False, probe_seconds={probe.probe: probe.seconds for probe in probes}, **out)


if __name__ == "__main__":
    main()
