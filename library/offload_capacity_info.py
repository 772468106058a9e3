#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_capacity_info
short_description: Gather the offload's capacity figures (rows per hour, durations, memory) and recommend by the runbook
description:
  - The runbook's "Prevention - capacity planning" in one read-only module run, its three sources read
    concurrently.
  - "ClickHouse (HTTP interface): per table, rows per hour over the last O(days) days - one plain aggregate query
    per table on its timestamp column, in now-aligned hourly buckets (bucket 0 is the last 60 minutes, the runbook's
    'rows in the last hour'), hours without rows counted as 0."
  - "Prefect (REST API): the task runs named O(task_name) started in the window and their logs; per table, each
    attempt's duration from K2's lines C(✓ Offload completed: <table>) and C(Duration: <s>s), and the attempts that
    timed out (C(✗ Offload timeout)) or failed."
  - "Docker API: the memory use of the Spark and ClickHouse containers against their limits (one-shot stats, page
    cache the kernel can reclaim excluded, as C(docker stats))."
  - "Recommendations, each with the numbers behind it (rules in module_utils/offload_capacity.py): more than
    O(normal_rows_per_hour) rows in each of at least O(sustained_hours) consecutive hours - plan a parallel offload;
    the Spark container above O(memory_threshold) of its memory limit - more Spark resources; the least-squares
    trend of the hourly median durations reaching O(timeout_fraction) of O(task_timeout_seconds) now or within
    O(trend_horizon_days) (never projected further ahead than the history it was fitted on) - raise the timeout or
    parallelise."
  - A source that does not answer is a finding (RV(report.blind), status C(incomplete)), not a failure; the module
    fails only on bad input.
  - Optionally renders the report as one self-contained HTML page (inline SVG, no script, no external resource) in
    RV(chart_html), for the playbook to write next to the JSON report.
version_added: "1.2.0"
author: K2 offload automation
options:
  days:
    description: Length of the window, in days (whole hours of it are bucketed).
    type: int
    default: 7
  normal_rows_per_hour:
    description: Rows per hour above which an hour counts toward the parallel-offload rule (runbook "more than 5M
      rows/hour"; inventory C(k2_volume_normal_rows_per_hour)).
    type: int
    default: 5000000
  sustained_hours:
    description: How many consecutive hours above O(normal_rows_per_hour) make the volume "sustained".
    type: int
    default: 3
  memory_threshold:
    description: Fraction of its memory limit above which the Spark container needs more resources (runbook 80 %).
    type: float
    default: 0.8
  task_timeout_seconds:
    description: The offload task's timeout (K2 600 s; inventory C(k2_offload_task_timeout_seconds)).
    type: float
    default: 600
  timeout_fraction:
    description: Fraction of O(task_timeout_seconds) whose reach by the duration trend triggers the recommendation.
    type: float
    default: 0.8
  trend_horizon_days:
    description: How far ahead the duration trend is projected, at most (and never beyond the history's own span).
    type: float
    default: 7
  trend_min_points:
    description: Hours with timed successful offloads needed before a trend is computed.
    type: int
    default: 6
  task_name:
    description: Name (partial match) of the Prefect task that offloads one table (K2's C(offload-table)).
    type: str
    default: offload-table
  max_task_runs:
    description: At most this many task runs are read (newest first); RV(report.sources.prefect.task_runs_truncated)
      tells when the window had more.
    type: int
    default: 10000
  spark_container:
    description: The Spark container (K2 C(k2-spark-iceberg)).
    type: str
    default: k2-spark-iceberg
  clickhouse_container:
    description: The ClickHouse container (K2 C(k2-clickhouse)).
    type: str
    default: k2-clickhouse
  docker_timeout:
    description: Upper bound in seconds of each Docker API call.
    type: int
    default: 10
  chart:
    description: Render RV(chart_html).
    type: bool
    default: true
  chart_title:
    description: Named in the HTML page's title (the playbook passes the inventory host).
    type: str
    default: ""
  query_timeout:
    description: Seconds to wait for each ClickHouse query; also sent as C(max_execution_time).
    type: int
    default: 30
  prefect_api_url:
    description: Base URL of Prefect's REST API, ending in C(/api). Falls back to E(PREFECT_API_URL).
    type: str
    default: http://127.0.0.1:4200/api
  prefect_timeout:
    description: Seconds to wait for each Prefect API request.
    type: int
    default: 10
  validate_certs:
    description: Verify the Prefect server's TLS certificate when O(prefect_api_url) is C(https).
    type: bool
    default: true
# The ClickHouse connection and the tables come from the fragments, as in offload_clickhouse.
extends_documentation_fragment:
  - offload.info_module
  - offload.tables_read
  - offload.clickhouse
requirements:
  - clickhouse-connect >= 0.8 (else ClickHouse is reported blind)
  - docker (the Docker SDK for Python) >= 7.0 (else the memory is reported blind)
notes:
  - The memory figure is a point-in-time reading; K2's Spark memory peaks while a job runs (run the report during
    an offload cycle, or repeatedly).
  - Durations come from K2's own log lines; task runs whose logs name no table (crashed before logging) are counted
    in RV(report.sources.prefect.task_runs_without_table). Timed-out attempts are counted, not used in the trend
    (their true duration is unknown).
  - The engine is found like the docker CLI finds it (E(DOCKER_HOST), E(DOCKER_TLS_VERIFY), E(DOCKER_CERT_PATH)).
seealso:
  - module: offload_clickhouse
    description: The runbook's one-hour volume check (Scenario 5) and TTL headroom.
  - module: offload_prefect_info
    description: Recent flow runs and their failures (diagnosis).
"""

EXAMPLES = r"""
---
- name: Capacity figures and recommendations for every offloaded table
  offload_capacity_info:
    tables: "{{ k2_tables }}"
    days: 7
    normal_rows_per_hour: "{{ k2_volume_normal_rows_per_hour }}"
    task_timeout_seconds: "{{ k2_offload_task_timeout_seconds }}"
    prefect_api_url: "{{ k2_prefect_api_url }}"
    spark_container: "{{ k2_containers.spark }}"
    clickhouse_container: "{{ k2_containers.clickhouse }}"
    clickhouse_host: "{{ k2_clickhouse_host }}"
    clickhouse_port: "{{ k2_clickhouse_port }}"
    clickhouse_password: "{{ k2_clickhouse_password }}"
  register: capacity

- name: Show the recommendations
  ansible.builtin.debug:
    msg: "{{ capacity.summary_lines }}"

- name: Only the figures, no chart, a stricter sustained rule
  offload_capacity_info:
    tables: "{{ k2_tables }}"
    sustained_hours: 6
    chart: false
  register: capacity_figures
"""

RETURN = r"""
---
status:
  description: C(ok) (no recommendation, every source read), C(recommendations) or C(incomplete) (no recommendation
    from what could be read, some source did not answer).
  returned: always
  type: str
  sample: ok
recommendations:
  description: The recommendations (also in RV(report)), each with C(rule) (C(parallel_offload),
    C(timeout_or_parallelise), C(spark_resources)), C(subject) (table or container), C(action), C(reason) (one line
    with the numbers) and C(evidence).
  returned: always
  type: list
  elements: dict
  sample:
    - rule: parallel_offload
      subject: bronze_trades_binance
      action: plan a parallel offload (the runbook's Phase 7 ...)
      reason: "bronze_trades_binance: above 5,000,000 rows/hour for 4 consecutive hours (...)"
      evidence: {threshold: 5000000, sustained_hours: 3, longest_run_hours: 4}
report:
  description:
    - The whole report - C(status), C(window) (hours, since, until), C(thresholds), C(sources) (per source whether
      it answered, its error and clock; Prefect's task-run counts), C(tables) (per source table C(rows_per_hour),
      the hourly series; C(volume), the numbers of the parallel-offload rule; C(duration), the statistics, hourly
      medians and C(trend)), C(memory) (C(spark), C(clickhouse)), C(recommendations) and C(blind).
  returned: always
  type: dict
  sample:
    status: ok
    window: {hours: 168, since: "2026-11-22T18:00:00.123000+00:00", until: "2026-11-29T18:00:00.123000+00:00"}
    tables:
      bronze_trades_binance:
        layer: bronze
        rows_per_hour: [{start: "2026-11-29T17:00:00.123000+00:00", rows: 72000}]
        volume: {last_hour: 72000, max: 72000, threshold: 300000, longest_run_hours: 0, sustained: false}
        duration: {completed: 12, timeouts: 0, median_seconds: 11.4, timeout_seconds: 30,
                   trend: {evaluated: false, reason: "2 hour(s) with timed successful offloads ..."}}
    memory:
      spark: {container: k2-spark-iceberg, status: running, usage_bytes: 402653184, limit_bytes: 2147483648,
              fraction: 0.1875, reason: null}
    recommendations: []
    blind: []
summary_lines:
  description: A short human summary - the verdict, one line per recommendation and per unread source, one line per
    table and per container.
  returned: always
  type: list
  elements: str
chart_html:
  description: The report as a self-contained HTML page (inline SVG charts of rows per hour and durations per table);
    null when O(chart=false).
  returned: always
  type: str
queries:
  description: The ClickHouse statements executed, with their bound parameters (no secrets).
  returned: always
  type: list
  elements: dict
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.offload_capacity import HOUR_MS, Thresholds, build_report, hourly_rows_sql, summary_lines
from ansible.module_utils.offload_capacity_chart import render_html
from ansible.module_utils.offload_clickhouse_api import HAS_CLICKHOUSE_CONNECT, Inspector, connect
from ansible.module_utils.offload_clickhouse_logic import SQL_SERVER, connection_error, one_line_error
from ansible.module_utils.offload_common import (
    api_url_problem,
    clickhouse_argument_spec,
    http_api_argument_spec,
    invalid_identifiers,
    tables_argument_spec,
    to_json_safe,
)
from ansible.module_utils.offload_docker import CONTAINER_NAME
from ansible.module_utils.offload_docker_api import HAS_DOCKER_SDK, DockerUnavailable, gather
from ansible.module_utils.offload_docker_api import connect as docker_connect
from ansible.module_utils.offload_prefect_api import PrefectAPI, PrefectHTTPError, PrefectUnreachable, failure
from ansible.module_utils.offload_prefect_inspect import iso

PAGE = 200  # Prefect's default (and maximum) page size
LOG_BATCH = 40  # task runs per log request (K2 logs ~5 lines per attempt)
MAX_DAYS = 90
WORKERS = 4


def argument_spec() -> dict:
    spec = clickhouse_argument_spec()
    tables = tables_argument_spec()
    for key in ("target", "sequence_col", "layer"):  # k2_tables passes as is; only source and timestamp_col are used
        tables["tables"]["options"][key] = {**tables["tables"]["options"][key], "required": False}
    spec.update(tables)
    prefect = http_api_argument_spec("http://127.0.0.1:4200/api", "PREFECT_API_URL")
    spec.update(prefect_api_url=prefect["api_url"], prefect_timeout=prefect["timeout"],
                validate_certs=prefect["validate_certs"])
    spec.update(
        days={"type": "int", "default": 7},
        normal_rows_per_hour={"type": "int", "default": 5_000_000},
        sustained_hours={"type": "int", "default": 3},
        memory_threshold={"type": "float", "default": 0.8},
        task_timeout_seconds={"type": "float", "default": 600},
        timeout_fraction={"type": "float", "default": 0.8},
        trend_horizon_days={"type": "float", "default": 7},
        trend_min_points={"type": "int", "default": 6},
        task_name={"type": "str", "default": "offload-table"},
        max_task_runs={"type": "int", "default": 10000},
        spark_container={"type": "str", "default": "k2-spark-iceberg"},
        clickhouse_container={"type": "str", "default": "k2-clickhouse"},
        docker_timeout={"type": "int", "default": 10},
        chart={"type": "bool", "default": True},
        chart_title={"type": "str", "default": ""},
        query_timeout={"type": "int", "default": 30},
    )
    return spec


def validate(module: AnsibleModule) -> Thresholds:
    """Fail with one line naming the bad input; return the rules' thresholds."""
    p = module.params
    names = [p["clickhouse_database"]] + [n for t in p["tables"] for n in (t["source"], t["timestamp_col"])]
    bad = invalid_identifiers(names)
    if bad:
        module.fail_json(msg=f"Invalid database, table or column name(s) {', '.join(repr(b)[:80] for b in bad)}: "
                             "only letters, digits and underscores are accepted.")
    bad = [n for n in (p["spark_container"], p["clickhouse_container"]) if not CONTAINER_NAME.match(n or "")]
    if bad:
        module.fail_json(msg=f"Invalid container name(s) {', '.join(repr(b)[:80] for b in bad)}.")
    problem = api_url_problem(p["prefect_api_url"])
    if problem:
        module.fail_json(msg=f"prefect_api_url {p['prefect_api_url']!r} {problem}: expected e.g. "
                             "http://127.0.0.1:4200/api.")
    if not 1 <= p["days"] <= MAX_DAYS:
        module.fail_json(msg=f"days must be between 1 and {MAX_DAYS}, got {p['days']}.")
    if not 1 <= p["sustained_hours"] <= p["days"] * 24:
        module.fail_json(msg=f"sustained_hours must be between 1 and the window's {p['days'] * 24} hours, got "
                             f"{p['sustained_hours']}.")
    for name in ("memory_threshold", "timeout_fraction"):
        if not 0 < p[name] <= 1:
            module.fail_json(msg=f"{name} must be in (0, 1], got {p[name]}.")
    for name in ("normal_rows_per_hour", "max_task_runs", "connect_timeout", "query_timeout", "prefect_timeout",
                 "docker_timeout"):
        if p[name] < 1:
            module.fail_json(msg=f"{name} must be at least 1, got {p[name]}.")
    if p["task_timeout_seconds"] <= 0:
        module.fail_json(msg=f"task_timeout_seconds must be positive, got {p['task_timeout_seconds']}.")
    if p["trend_horizon_days"] < 0:
        module.fail_json(msg=f"trend_horizon_days must not be negative, got {p['trend_horizon_days']}.")
    if p["trend_min_points"] < 2:
        module.fail_json(msg=f"trend_min_points must be at least 2 (a line needs two points), got "
                             f"{p['trend_min_points']}.")
    if not p["task_name"].strip():
        module.fail_json(msg="task_name must not be empty (K2: offload-table).")
    return Thresholds(normal_rows_per_hour=p["normal_rows_per_hour"], sustained_hours=p["sustained_hours"],
                      memory_fraction=p["memory_threshold"], task_timeout_seconds=p["task_timeout_seconds"],
                      timeout_fraction=p["timeout_fraction"], trend_horizon_hours=p["trend_horizon_days"] * 24,
                      trend_min_points=p["trend_min_points"])


def read_clickhouse(p: dict, hours: int) -> dict:
    """Rows per now-aligned hour of every table, the tables queried concurrently (one client, no session)."""
    secrets = (p["clickhouse_password"],)
    out = {"reachable": False, "error": None, "t0_ms": None, "tables": {}, "queries": []}
    if not HAS_CLICKHOUSE_CONNECT:
        out["error"] = "the Python library clickhouse-connect is not installed where the module runs"
        return out
    ins = None
    try:
        ins = Inspector(connect(p), p["query_timeout"])
        out["t0_ms"] = int(ins.rows(SQL_SERVER)[0]["now_ms"])
    except Exception as exc:  # noqa: BLE001 - refused / timeout / auth: a finding, not a failure
        out["error"] = connection_error(p, exc, secrets)
        out["queries"] = ins.queries if ins else []
        return out
    out["reachable"] = True
    window = {"t0_ms": out["t0_ms"], "since_ms": out["t0_ms"] - hours * HOUR_MS}

    def one(table: dict) -> dict:
        try:
            sql = hourly_rows_sql(p["clickhouse_database"], table["source"], table["timestamp_col"])
            return {"rows": ins.rows(sql, window), "error": None}
        except Exception as exc:  # noqa: BLE001 - one table's error (unknown table or column) is reported per table
            return {"rows": None, "error": one_line_error(str(exc), secrets)}

    unique = list({t["source"]: t for t in p["tables"]}.values())
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {t["source"]: pool.submit(one, t) for t in unique}
        out["tables"] = {source: future.result() for source, future in futures.items()}
    out["queries"] = ins.queries
    return out


def _page_all(api: PrefectAPI, path: str, body: dict, limit: int) -> tuple[list[dict], bool]:
    """Every item of a filter endpoint, page by page, up to `limit`; (items, whether more were left)."""
    items, offset = [], 0
    while len(items) < limit:
        page = api.post(path, {**body, "limit": PAGE, "offset": offset}) or []
        items += [i for i in page if isinstance(i, dict)]
        if len(page) < PAGE:
            return items[:limit], len(items) > limit
        offset += PAGE
    return items[:limit], True


def read_prefect(p: dict, hours: int) -> dict:
    """The offload task runs started in the window and all their logs (log batches read concurrently)."""
    api = PrefectAPI(p["prefect_api_url"], p["prefect_timeout"], p["validate_certs"],
                     agent="ansible-offload_capacity_info")
    out = {"reachable": False, "error": None, "now": None, "task_runs": [], "logs": [], "truncated": False}
    try:
        healthy = api.get("/health")
        if healthy is not True:
            out["error"] = f"Prefect API {api.base} is not healthy: /health answered {str(healthy)[:200]}"
            return out
        since = api.now() - timedelta(hours=hours)
        runs, out["truncated"] = _page_all(api, "/task_runs/filter", {
            "task_runs": {"name": {"like_": p["task_name"]}, "start_time": {"after_": iso(since)}},
            "sort": "EXPECTED_START_TIME_DESC"}, p["max_task_runs"])
        ids = [r["id"] for r in runs if r.get("id")]
        batches = [ids[i:i + LOG_BATCH] for i in range(0, len(ids), LOG_BATCH)]
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            pages = list(pool.map(lambda batch: _page_all(api, "/logs/filter", {
                "logs": {"task_run_id": {"any_": batch}}, "sort": "TIMESTAMP_ASC"}, 1_000_000)[0], batches))
    except (PrefectUnreachable, PrefectHTTPError) as exc:
        out["error"] = failure(api.base, exc)
        return out
    out.update(reachable=True, now=api.now(), task_runs=runs, logs=[log for page in pages for log in page])
    return out


def read_docker(p: dict) -> dict:
    """The two containers' state and memory (one-shot stats), concurrently (offload_docker_api)."""
    names = [p["spark_container"], p["clickhouse_container"]]
    if not HAS_DOCKER_SDK:
        return {"reachable": False, "error": "the Docker SDK for Python (docker) is not installed where the module runs",
                "containers": {}, "errors": {}}
    try:
        api = docker_connect(p["docker_timeout"])
    except DockerUnavailable as exc:
        return {"reachable": False, "error": str(exc), "containers": {}, "errors": {}}
    try:
        return gather(api, names, names, [], [])
    finally:
        api.close()


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    limits = validate(module)
    p = module.params
    hours = p["days"] * 24
    with ThreadPoolExecutor(max_workers=3) as pool:
        clickhouse = pool.submit(read_clickhouse, p, hours)
        prefect = pool.submit(read_prefect, p, hours)
        docker = pool.submit(read_docker, p)
        clickhouse, prefect, docker = clickhouse.result(), prefect.result(), docker.result()
    report = to_json_safe(build_report(p["tables"], limits, hours, clickhouse, prefect, docker, p["spark_container"],
                                       p["clickhouse_container"]))
    report["generated_at"] = datetime.now(timezone.utc).isoformat()
    module.exit_json(changed=False, status=report["status"], recommendations=report["recommendations"],
                     report=report, summary_lines=summary_lines(report),
                     chart_html=render_html(report, p["chart_title"], report["generated_at"]) if p["chart"] else None,
                     queries=to_json_safe(clickhouse["queries"]))


if __name__ == "__main__":
    main()
