# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: the runbook's decision tree as pure functions.
# Facts (gathered by the info modules) -> error classes of log lines -> scenario(s) with evidence.
from __future__ import annotations

import re
import statistics
from datetime import datetime, timezone

try:
    from ansible.module_utils.offload_common import parse_utc
    from ansible.module_utils.offload_docker import parse_offload_processes
    from ansible.module_utils.offload_schedule import left_paused
except ImportError:  # unit tests import module_utils/ directly
    from offload_common import parse_utc
    from offload_docker import parse_offload_processes
    from offload_schedule import left_paused

SCENARIOS = {
    1: ("worker_not_running", "Worker not running"),
    2: ("clickhouse_connectivity", "ClickHouse connectivity failure"),
    3: ("spark_job_failures", "Spark job failures"),
    4: ("watermark_corruption", "Watermark table corruption"),
    5: ("timeouts", "Timeout errors (offload > task timeout)"),
}
NEXT_ACTIONS = {
    1: "Start k2-prefect-worker, check it polls pool iceberg-offload, then trigger one run (remediate.yml).",
    2: "Bring ClickHouse back (start / restart on memory pressure / reconnect to the stack network), test "
       "from the Spark container, then one manual offload (remediate.yml).",
    3: "Restart Spark on OOM, restore warehouse permissions; a missing JDBC driver needs the image rebuilt: "
       "escalate (remediate.yml).",
    4: "Back up offload_watermarks, then repair the table's watermark from the cold tier (remediate.yml); "
       "never move it without the truth check.",
    5: "Check the volume spike / slow queries; stop orphaned offloads; raise the timeout or run one "
       "manual offload with a longer timeout (remediate.yml).",
}

DEFAULT_CONTAINERS = {"prefect_db": "k2-prefect-db", "prefect_server": "k2-prefect-server",
                      "prefect_worker": "k2-prefect-worker", "clickhouse": "k2-clickhouse", "spark": "k2-spark-iceberg"}
# The stack's dependency graph, upstream first: a component that is down here is the root cause, and what fails
# downstream of it (Prefect API errors, stale worker heartbeat, unreadable watermarks) is its consequence.
ORCHESTRATION = (
    ("prefect_db", "PostgreSQL (k2-prefect-db): Prefect's database and the offload watermarks"),
    ("prefect_server", "Prefect server (k2-prefect-server): API, scheduler, work pools"),
)
ROOT_CAUSE_NEXT = {
    "prefect_db": "Start k2-prefect-db (never re-create it: its volume is Prefect's state and the watermarks), wait "
                  "until it accepts connections, then the Prefect server and worker; escalate at once if it exits with "
                  "data-directory errors (remediate.yml).",
    "prefect_server": "Start k2-prefect-server, wait until its API answers, then check the worker polls its pool and "
                      "verify with one flow run (remediate.yml).",
    "schedule": "remediate.yml adopts the dead run's hold, verifies with one flow run and resumes the schedule when it "
                "ends; by hand: resume the deployment in Prefect (UI, or POST /api/deployments/<id>/resume_deployment) "
                "and remove the hold record beside the lock.",
}
SCHEDULE_LEFT_PAUSED = "Offload schedule left paused by a remediation that is gone (Prefect deployment)"
# Probe -> (component named in the report, orchestration/container keys whose outage explains its failure).
PROBES = (
    ("watermarks", "PostgreSQL watermarks (offload_watermarks)", ("prefect_db",)),
    ("prefect", "Prefect API", ("prefect_db", "prefect_server")),
    ("clickhouse", "ClickHouse", ("clickhouse",)),
    ("iceberg", "cold tier (Iceberg metadata)", ()),
    ("spark", "Spark container probes", ("spark",)),
    ("docker", "Docker API (container state)", ()),
    ("alerts", "Prometheus", ()),
    ("alertmanager", "Alertmanager", ()),
)
MONITORING_PROBES = ("alerts", "alertmanager")
# A probe that was refused for its credentials says nothing about the component's health: it is blind, never a
# scenario (restarting ClickHouse does not fix a wrong password).
AUTH_FAILURE = re.compile(r"authentication failed|AUTHENTICATION_FAILED|Code: 516|password|permission denied|"
                          r"\b401\b|\b403\b|not authorized|access denied", re.I)
# Log lines after which starting PostgreSQL again is not safe: the data directory itself is damaged or foreign.
UNSAFE_DB_START = (r"data directory .* (has invalid permissions|has wrong ownership|is not empty)|"
                   r"exists but is not empty|database files are incompatible|PANIC:|could not (open|read|locate) "
                   r"(file|a valid checkpoint)|invalid checkpoint record|invalid data in file|No space left on device")
STATUSES = {
    "healthy": "every probe answered and no runbook scenario or root cause applies",
    "degraded": "a root cause or runbook scenario was found (with evidence)",
    "unknown": "failures are seen but no rule explains them",
    "blind": "no fault found, but at least one probe did not answer: the diagnosis cannot vouch for that component",
}

# What makes "Failed to read from ClickHouse" ClickHouse's fault rather than the JDBC driver's (JDBC_DRIVER_MISSING).
CONNECTION_CAUSE = re.compile(r"Connection refused|Name or service not known|Temporary failure in name resolution|"
                              r"No route to host|MEMORY_LIMIT_EXCEEDED|Code: 241|Max retries exceeded|ConnectionError|"
                              r"Connection reset|ClickHouse.*unreachable|UnknownHostException|ConnectException|"
                              r"Connect timed out", re.I)
# Log-line classes, most specific first; a line gets the first class that matches.
LOG_CLASSES = (
    ("timeout", re.compile(r"Offload timeout|TimeoutExpired|timed out after|exceeded \d+ minutes", re.I)),
    ("watermark", re.compile(r"Watermark not found|Failed to (get|update) watermark|duplicate key|"
                             r"constraint violation|violates not-null|offload_watermarks", re.I)),
    ("connection", re.compile(r"Failed to read from ClickHouse|" + CONNECTION_CAUSE.pattern, re.I)),
    ("process", re.compile(r"Exit code: (?!0\b)\d+|CalledProcessError|Failed to initialize Spark|"
                           r"Failed to write to Iceberg|OutOfMemoryError|is not running|No such container|"
                           r"JDBC driver not found|ClassNotFoundException|No suitable driver|Permission denied|"
                           r"Unhandled exception", re.I)),
)
# K2's job loads the JDBC driver when it reads: a missing driver prints "Failed to read from ClickHouse: ..." and the
# ClassNotFoundException on a later line (which a log extract may have dropped). ClickHouse was never asked; Spark's
# image is at fault.
JDBC_DRIVER_MISSING = re.compile(r"ClassNotFoundException:?\s*com\.clickhouse|No suitable driver|"
                                 r"JDBC driver not found", re.I)
FINAL_RUN_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
# Causes within a scenario that change the remediation (remediate.yml reads `causes`, never the evidence prose).
CLICKHOUSE_MEMORY = re.compile(r"MEMORY_LIMIT_EXCEEDED|Code: 241|% of its .* limit")
SPARK_OOM = re.compile(r"exit code:? 137|OutOfMemory|OOMKilled|\bKilled\b", re.I)
GENERIC_PROCESS_LINE = re.compile(r"Exit code: 1\b|CalledProcessError|Unhandled exception", re.I)
CLASS_SCENARIO = {"connection": 2, "process": 3, "watermark": 4, "timeout": 5}
TABLE_IN_LINE = re.compile(r"Offload (?:failed|timeout):\s*([A-Za-z0-9_]+)|Offload failed for ([A-Za-z0-9_]+)|"
                           r"Watermark not found for table:\s*([A-Za-z0-9_]+)")


def classify_line(line: str) -> str | None:
    if not isinstance(line, str):
        return None
    for name, pattern in LOG_CLASSES:
        if pattern.search(line):
            return name
    return None


def classify_lines(lines) -> dict:
    """{class: [lines]} for the lines that match a class (at most 5 kept per class)."""
    found: dict[str, list[str]] = {}
    split = [part for entry in lines or [] if isinstance(entry, str) for part in entry.splitlines()]
    driver_missing = any(JDBC_DRIVER_MISSING.search(line) for line in split)
    for line in split:
        cls = classify_line(line)
        if cls == "connection" and driver_missing and not CONNECTION_CAUSE.search(line):
            cls = "process"  # K2's bare "Failed to read from ClickHouse: An error occurred while calling o52.jdbc."
        if cls and line.strip()[:300] not in found.get(cls, []) and len(found.setdefault(cls, [])) < 5:
            found[cls].append(line.strip()[:300])
    return found


def tables_in_lines(lines) -> set[str]:
    tables = set()
    for line in lines or []:
        if isinstance(line, str):
            for match in TABLE_IN_LINE.finditer(line):
                tables.update(g for g in match.groups() if g)
    return tables


def container_down(state: dict | None) -> str | None:
    """Evidence line if the container is not running, else None."""
    if not state or not state.get("exists"):
        return "container absent"
    if state.get("status") != "running":
        detail = f"exit code {state.get('exit_code')}"
        if state.get("oom_killed"):
            detail += ", OOMKilled"
        return f"container {state.get('status')} ({detail})"
    return None


# K2's containers run with `restart: unless-stopped`: one that crashes is started again by Docker and looks
# healthy. A restart by the policy within this window (one offload interval) is still a finding.
RESTART_WINDOW_SECONDS = 900
SCENARIO_OF_CONTAINER = {"prefect_worker": 1, "clickhouse": 2, "spark": 3}


def restarted_by_docker(state: dict | None, now: datetime) -> str | None:
    """Evidence line if Docker's restart policy restarted the running container within RESTART_WINDOW_SECONDS."""
    state = state or {}
    count, started = state.get("restart_count") or 0, parse_utc(state.get("started_at"))
    if state.get("status") != "running" or not count or started is None:
        return None
    seconds = (now - started).total_seconds()
    if seconds > RESTART_WINDOW_SECONDS:
        return None
    return (f"container restarted {count} time(s) by Docker's restart policy, the last {seconds / 60:.0f} min ago: "
            "it crashes and heals itself")


class Triage:
    """Collects evidence per scenario and table; `result()` orders the scenarios as the runbook's tree."""

    def __init__(self) -> None:
        self.evidence: dict[int, list[str]] = {}
        self.tables: dict[int, set[str]] = {}

    def add(self, scenario: int, line: str, tables=()) -> None:
        self.evidence.setdefault(scenario, []).append(line)
        self.tables.setdefault(scenario, set()).update(tables)

    def result(self, failing_tables: set[str], failure_evidence: list[str]) -> list[dict]:
        out = []
        for number in sorted(self.evidence):
            key, title = SCENARIOS[number]
            tables = sorted(self.tables[number] or failing_tables)
            out.append({"scenario": number, "key": key, "title": title, "tables": tables,
                        "evidence": self.evidence[number], "next_action": NEXT_ACTIONS[number]})
        if not out and failure_evidence:
            out.append({"scenario": "unknown", "key": "unknown", "title": "Failures without a known cause",
                        "tables": sorted(failing_tables), "evidence": failure_evidence,
                        "next_action": "Escalate: no runbook scenario matches the evidence; read the flow run logs."})
        return out


def ttl_headroom(clickhouse: dict, watermarks: dict, now: datetime) -> dict:
    """Per table, seconds until TTL deletes hot rows not yet offloaded: watermark + TTL interval - now.
    Uses the ClickHouse module's figure when it computed one."""
    out = {}
    for table, info in (clickhouse.get("tables") or {}).items():
        if info.get("ttl_headroom_seconds") is not None:
            out[table] = info["ttl_headroom_seconds"]
            continue
        interval = (info.get("ttl") or {}).get("interval_seconds")
        wm_ts = parse_utc((watermarks.get(table) or {}).get("timestamp"))
        if interval and wm_ts and wm_ts.year > 1970:  # an epoch watermark means "never offloaded yet"
            out[table] = round((wm_ts - now).total_seconds() + interval, 1)
    return out


def triage(facts: dict, tables: list[str], now: datetime | None = None, watermark_tolerance_seconds: float = 1.0,
           memory_threshold: float = 0.9) -> dict:
    """Apply the runbook's decision tree to gathered facts. Missing facts are skipped, never guessed."""
    now = now or datetime.now(timezone.utc)
    t = Triage()
    containers = facts.get("containers") or {}
    names = facts.get("container_names") or {}
    prefect = facts.get("prefect") or {}
    watermarks = facts.get("watermarks") or {}
    clickhouse = facts.get("clickhouse") or {}
    iceberg = facts.get("iceberg") or {}
    spark = facts.get("spark") or {}
    alerts = facts.get("alerts") or {}

    # Which tables fail, and the signals that say so (Prometheus is optional: K2 often exports nothing).
    failing, failure_evidence, stale_alerts = set(), [], []
    # The alert's increase() window keeps it firing up to 15 min after a recovery: an alert whose table's newest
    # finished run COMPLETED and whose watermark is not failing is stale, not a failure.
    newest_final = next((r for r in prefect.get("flow_runs") or [] if r.get("state_type") in FINAL_RUN_STATES), None)
    recovered = bool(newest_final) and newest_final.get("state_type") == "COMPLETED"
    for table in alerts.get("alert_tables") or []:
        wm = (watermarks.get("watermarks") or {}).get(table) or {}
        if recovered and (wm.get("failure_count") or 0) < 3 and wm.get("status") != "failed":
            stale_alerts.append(table)
            continue
        failing.add(table)
        failure_evidence.append(f"alert IcebergOffloadConsecutiveFailures active for {table}")
    for table, wm in (watermarks.get("watermarks") or {}).items():
        if (wm.get("failure_count") or 0) >= 3 or wm.get("status") == "failed":
            failing.add(table)
            failure_evidence.append(f"watermark {table}: status {wm.get('status')}, failure_count "
                                    f"{wm.get('failure_count')}, last error: {(wm.get('last_error_message') or '')[:160]}")
    log_lines = list(facts.get("log_lines") or [])
    for run in prefect.get("flow_runs") or []:  # newest first: failures before the last success are history
        if run.get("state_type") == "COMPLETED":
            break
        if run.get("state_type") in ("FAILED", "CRASHED"):
            failure_evidence.append(f"flow run {run.get('name')} {run.get('state_type')}: {(run.get('message') or '')[:160]}")
            log_lines += run.get("log_lines") or []
            log_lines += [e["error_line"] for e in run.get("offload_errors") or [] if e.get("error_line")]
            log_lines.append(run.get("message") or "")
            failing.update(run.get("failed_tables") or [])
    failing.update(x for x in tables_in_lines(log_lines) if x in tables)
    classes = classify_lines(log_lines)

    # Root causes upstream of the worker: the orchestration it depends on (PostgreSQL, then the Prefect server).
    # Container states are known only when some were read and Docker answered; otherwise skipped, never "absent".
    docker_known = bool(containers) and (facts.get("docker") or {}).get("reachable") is not False
    down = {key: container_down(containers.get(names.get(key, DEFAULT_CONTAINERS[key])))
            for key in DEFAULT_CONTAINERS if docker_known}  # Docker not answering: states unknown, never "absent"
    root_causes, consequences, observations = [], [], []
    for key, title in ORCHESTRATION:
        if down.get(key):
            container = names.get(key, DEFAULT_CONTAINERS[key])
            root_causes.append({"component": key, "container": container, "title": title,
                                "evidence": [f"{container}: {down[key]}"],
                                "consequences": consequences, "next_action": ROOT_CAUSE_NEXT[key]})

    # The schedule a remediation paused and never resumed (it died): nothing offloads until it is resumed.
    paused = ((prefect.get("deployment") or {}).get("paused") if prefect.get("reachable") else None)
    left = left_paused(paused, facts.get("schedule_hold") or {})
    if left["finding"]:
        root_causes.append({"component": "schedule", "container": None, "title": SCHEDULE_LEFT_PAUSED,
                            "evidence": [left["finding"]], "consequences": consequences,
                            "next_action": ROOT_CAUSE_NEXT["schedule"]})
    if left["observation"]:
        observations.append(left["observation"])

    # A container its restart policy keeps bringing back: its scenario's evidence, although it runs now.
    for key, scenario in SCENARIO_OF_CONTAINER.items():
        name = names.get(key, DEFAULT_CONTAINERS[key])
        restarted = restarted_by_docker(containers.get(name), now) if docker_known else None
        if restarted:
            t.add(scenario, f"{name}: {restarted}")

    # Scenario 1: the worker.
    worker_down = down.get("prefect_worker")
    if worker_down:
        t.add(1, f"{names.get('prefect_worker', DEFAULT_CONTAINERS['prefect_worker'])}: {worker_down}")
    if prefect.get("reachable") is False and root_causes:
        consequences.append(f"Prefect API unreachable: {prefect.get('error')}")
    elif prefect.get("reachable") and not prefect.get("worker_online") and not worker_down:
        stale = "no worker of pool iceberg-offload is online (heartbeat stale)"
        if root_causes:
            consequences.append(stale)
        else:
            t.add(1, stale)

    # Scenario 2: ClickHouse.
    ch_name = names.get("clickhouse", "k2-clickhouse")
    ch_down = down.get("clickhouse")
    if ch_down:
        t.add(2, f"{ch_name}: {ch_down}")
    ch_state = containers.get(ch_name) or {}
    network = facts.get("network_name")
    if network and ch_state.get("status") == "running" and network not in (ch_state.get("networks") or []):
        t.add(2, f"{ch_name} is not attached to network {network}")
    usage, limit = ch_state.get("memory_usage"), ch_state.get("memory_limit")
    if usage and limit and usage > memory_threshold * limit:
        high = f"{ch_name} memory {usage / 2**20:.0f} MiB > {memory_threshold:.0%} of its {limit / 2**20:.0f} MiB limit"
        # A reason to restart ClickHouse only when the offload fails reading it: a restart while it works drops its
        # caches and every query in flight (the offload's own among them) for nothing.
        if classes.get("connection") or any(CLICKHOUSE_MEMORY.search(line) for line in log_lines):
            t.add(2, high)
        else:
            observations.append(f"{high}, but the offload is not failing reading ClickHouse: not restarted")
    if clickhouse.get("reachable") is False and not ch_down and not AUTH_FAILURE.search(str(clickhouse.get("error"))):
        t.add(2, f"ClickHouse unreachable: {clickhouse.get('error')}")
    for line in classes.get("connection", []):
        t.add(2, f"log: {line}")

    # Scenario 3: Spark.
    spark_name = names.get("spark", "k2-spark-iceberg")
    spark_down = down.get("spark")
    if spark_down:
        t.add(3, f"{spark_name}: {spark_down}")
    if spark.get("jdbc_present") is False:
        t.add(3, f"JDBC driver missing: {spark.get('jdbc_path')}")
    write = spark.get("warehouse_write") or {}
    if write.get("writable") is False:
        t.add(3, f"{spark_name} cannot write its warehouse {write.get('path')} as its own user"
                 f"{': ' + write['error'] if write.get('error') else ''}")
    explained = bool(classes.get("connection") or classes.get("watermark") or classes.get("timeout")
                     or 1 in t.evidence or 2 in t.evidence)
    for line in classes.get("process", []):
        # A bare non-zero exit says only "the job failed": it is Spark's fault only if nothing else explains it.
        if GENERIC_PROCESS_LINE.search(line) and explained:
            continue
        if not (ch_down and "is not running" in line):
            t.add(3, f"log: {line}")

    # Scenario 4: watermarks, checked against the cold tier's committed maximum.
    wm_info = watermarks.get("watermarks") or {}
    if watermarks.get("layout") == "absent":
        t.add(4, "table offload_watermarks does not exist", tables)
    for table in tables:
        wm = wm_info.get(table) or {}
        for code in wm.get("anomalies") or []:
            if code in ("missing_row", "stuck_running", "null_values", "future_watermark", "history_bloat"):
                t.add(4, f"watermark {table}: {code}", [table])
        cold = (iceberg.get("tables") or {}).get(table) or {}
        wm_ts, cold_ts = parse_utc(wm.get("timestamp")), parse_utc(cold.get("max_timestamp"))
        if wm_ts and cold_ts and wm_ts.year > 1970:
            delta = (wm_ts - cold_ts).total_seconds()
            if delta > watermark_tolerance_seconds:
                t.add(4, f"watermark {table} is {delta:.0f} s AHEAD of the cold tier's max ({cold_ts.isoformat()}): "
                         "rows in between will never be offloaded (gap)", [table])
            elif delta < -watermark_tolerance_seconds:
                t.add(4, f"watermark {table} is {-delta:.0f} s BEHIND the cold tier's max ({cold_ts.isoformat()}): "
                         "the next run re-appends rows (duplicates)", [table])
    for line in classes.get("watermark", []):
        t.add(4, f"log: {line}")

    # Scenario 5: timeouts and their causes.
    for line in classes.get("timeout", []):
        t.add(5, f"log: {line}", tables_in_lines([line]) & set(tables))
    orphans = spark.get("offload_processes") or []
    if orphans and not prefect.get("running_runs"):
        t.add(5, f"{len(orphans)} offload process(es) running in {spark_name} with no RUNNING flow run (orphans of "
                 "a timed-out task)")
    spike_tables, slow_queries = [], []
    if classes.get("timeout") or 5 in t.evidence:
        for table, info in (clickhouse.get("tables") or {}).items():
            if info.get("volume") in ("elevated", "spike") and (not failing or table in failing):
                t.add(5, f"{table}: {info.get('rows_last_hour')} rows in the last hour ({info.get('volume')})", [table])
                spike_tables.append(table)
        for q in clickhouse.get("long_running_queries") or []:
            t.add(5, f"long-running ClickHouse query ({q.get('elapsed')} s): {str(q.get('query'))[:120]}")
            slow_queries.append(q)
        trend = duration_trend(prefect.get("flow_runs") or [])
        if trend:
            t.add(5, trend)

    if root_causes and watermarks.get("reachable") is False:
        consequences.append(f"watermarks unreadable: {watermarks.get('error')}")
    scenarios = t.result({x for x in failing if x in tables} or failing, failure_evidence)
    if root_causes and scenarios and scenarios[0]["key"] == "unknown":
        consequences += scenarios.pop()["evidence"]  # failures a down orchestration component explains
    blind = blind_probes(facts, down, scenarios)
    headroom = ttl_headroom(clickhouse, wm_info, now)
    data_loss_possible = bool(headroom) and min(headroom.values()) <= 0
    return {"status": diagnosis_status(root_causes, scenarios, blind, data_loss_possible),
            "root_causes": root_causes, "blind": blind,
            "alerting_blind": [b for b in blind if b["monitoring"]] != [],
            "scenarios": scenarios, "failing_tables": sorted(failing), "error_classes": sorted(classes),
            "stale_alert_tables": sorted(stale_alerts), "observations": observations,
            "causes": {
                "clickhouse_memory": any(CLICKHOUSE_MEMORY.search(e) for e in t.evidence.get(2, [])),
                "spark_oom": any(SPARK_OOM.search(e) for e in t.evidence.get(3, [])),
                "warehouse_not_writable": write.get("writable") is False,
                "volume_spike_tables": sorted(spike_tables),
                "orphan_processes": len(orphans) if orphans and not prefect.get("running_runs") else 0,
                "long_running_queries": len(slow_queries)},
            "ttl_headroom_seconds": headroom,
            "min_ttl_headroom_seconds": min(headroom.values()) if headroom else None,
            "prometheus_metrics_exported": bool(alerts.get("reachable")) and alerts.get("metrics_empty") is False,
            "monitoring_not_deployed": monitoring_not_deployed(facts)}


def monitoring_not_deployed(facts: dict) -> list[str]:
    """What of the runbook's monitoring the stack does not deploy. A stock K2 runs Prometheus only: its compose
    mounts no rules directory, there is no Alertmanager, and no process exports the offload metrics. Not deployed is
    not blind (nothing failed to answer), but the runbook's alert can never fire there."""
    alerts = facts.get("alerts") or {}
    missing = []
    if alerts.get("reachable") and alerts.get("rule_loaded") is False:
        missing.append("alert rule IcebergOffloadConsecutiveFailures (Prometheus loads no such rule)")
    if not isinstance(facts.get("alertmanager"), dict):
        missing.append("Alertmanager (k2_alertmanager_url is empty)")
    if alerts.get("reachable") and alerts.get("metrics_empty"):
        missing.append("offload metrics (none exported)")
    return missing


def blind_probes(facts: dict, down: dict, scenarios: list[dict]) -> list[dict]:
    """Probes that did not answer and whose failure no down component explains: {component, probe, cause,
    monitoring}. ClickHouse's non-auth failures are Scenario 2 already, so they are not listed twice."""
    out = []
    in_scenario_2 = any(s["scenario"] == 2 for s in scenarios)
    for probe, component, explained_by in PROBES:
        result = facts.get(probe)
        if not isinstance(result, dict) or result.get("reachable") is not False:
            continue
        if any(down.get(key) for key in explained_by):
            continue
        cause = str(result.get("error") or "no answer").strip().splitlines()[0][:300]
        if probe == "clickhouse" and in_scenario_2 and not AUTH_FAILURE.search(cause):
            continue
        out.append({"component": component, "probe": probe, "cause": cause, "monitoring": probe in MONITORING_PROBES})
    return out


def diagnosis_status(root_causes: list, scenarios: list, blind: list, data_loss_possible: bool = False) -> str:
    """One of STATUSES. `healthy` only when every probe answered, nothing applies and no table's TTL headroom is
    gone (rows not offloaded yet may be deleted: never healthy, even with no scenario)."""
    if root_causes or data_loss_possible or (scenarios and scenarios[0]["key"] != "unknown"):
        return "degraded"
    if scenarios:
        return "unknown"
    return "blind" if blind else "healthy"


def run_seconds(run: dict) -> float | None:
    start, end = parse_utc(run.get("start_time")), parse_utc(run.get("end_time"))
    return (end - start).total_seconds() if start and end else None


def duration_trend(runs: list[dict], factor: float = 1.5) -> str | None:
    """Runbook Scenario 5 "performance degradation": the newest finished run took `factor` x the median of the
    COMPLETED runs before it (newest first in `runs`)."""
    finished = [r for r in runs if r.get("state_type") in FINAL_RUN_STATES and run_seconds(r) is not None]
    if len(finished) < 3:
        return None
    newest = run_seconds(finished[0])
    earlier = sorted(run_seconds(r) for r in finished[1:] if r.get("state_type") == "COMPLETED")
    if len(earlier) < 2:
        return None
    median = statistics.median(earlier)
    if median > 0 and newest >= factor * median:
        return (f"flow run duration trend: the newest run took {newest:.0f} s, {newest / median:.1f}x the median "
                f"{median:.0f} s of {len(earlier)} earlier completed runs")
    return None


def _unanswered(result, answered: bool, not_run: str, silent: str) -> dict | None:
    """A registered probe result that is no answer -> the 'unreachable' finding, else None. The role's tasks have
    failed_when: false, which clears `failed`: a module that failed is then recognised by the suppressed exception."""
    if not isinstance(result, dict) or result.get("skipped"):
        return {"reachable": False, "error": not_run}
    if result.get("failed") or "failed_when_suppressed_exception" in result or not answered:
        return {"reachable": False, "error": str(result.get("msg") or silent).strip().splitlines()[0][:300]}
    return None


def _probe(result) -> dict:
    """An async probe's result; a probe that failed, timed out (never reported `finished`) or never ran becomes an
    'unreachable' finding."""
    answered = isinstance(result, dict) and bool(result.get("finished"))
    return _unanswered(result, answered, "probe did not run", "probe did not finish in time") or {
        k: v for k, v in result.items() if k not in ("invocation", "ansible_job_id", "results_file", "started",
                                                     "finished", "changed", "failed", "item", "attempts")}


def _docker(result) -> dict:
    """offload_container_info's registered result (a failed or skipped task included); `reachable` false with a
    one-line `error` when the module itself did not answer."""
    answered = isinstance(result, dict) and "reachable" in result
    return _unanswered(result, answered, "the Docker probe did not run", "no answer") or result


def facts_from_raw(raw: dict) -> dict:
    """The role's raw probe outputs -> the facts `triage` reads."""
    names = raw.get("container_names") or {}
    docker = _docker(raw.get("docker"))
    containers = docker.get("containers") or {}
    probes = {k: _probe(v) for k, v in (raw.get("probes") or {}).items()}
    # A container the API could not read says nothing about the container: Docker is blind, its state unknown.
    probes["docker"] = ({"reachable": False, "error": str(docker.get("error") or "no answer")[:400]}
                        if docker.get("reachable") is False or docker.get("errors") else {"reachable": True})
    spark_name = names.get("spark", "k2-spark-iceberg")
    ps = (docker.get("processes") or {}).get(spark_name) or {"rc": None, "output": "", "error": "not read"}
    spark_ok = ps.get("rc") == 0
    ps_error = str(ps.get("error") or ps.get("output") or "").strip()
    jdbc = next((f for f in docker.get("files") or [] if f.get("container") == spark_name), {})
    write = next((w for w in docker.get("writable") or [] if w.get("container") == spark_name), {})
    probes["spark"] = {"reachable": False if not spark_ok and (containers.get(spark_name) or {}).get("status")
                       == "running" else None,
                       "error": None if spark_ok else f"ps in the Spark container failed: {ps_error[:200]} "
                                                      f"(rc {ps.get('rc')})",
                       "jdbc_path": raw.get("jdbc_path") or jdbc.get("path"),
                       "jdbc_present": jdbc.get("present") if spark_ok else None,
                       "warehouse_write": write if spark_ok else {},
                       "offload_processes": parse_offload_processes(ps.get("output") or "") if spark_ok else []}
    return {"network_name": raw.get("network_name"), "container_names": names, "containers": containers, **probes}


def summary_lines(result: dict) -> list[str]:
    """The operator's summary: scenario, tables, evidence, TTL headroom, next step."""
    lines = []
    for cause in result.get("root_causes") or []:
        lines.append(f"ROOT CAUSE: {cause['title']}")
        lines += [f"  evidence: {e}" for e in cause["evidence"]]
        lines += [f"  consequence: {c}" for c in cause["consequences"][:6]]
        lines.append(f"  next: {cause['next_action']}")
    for probe in result.get("blind") or []:
        lines.append(f"BLIND: {probe['component']} did not answer: {probe['cause']}")
    if result.get("alerting_blind"):
        lines.append("ALERTING IS BLIND: Prometheus/Alertmanager are not answering, so IcebergOffloadConsecutiveFailures "
                     "cannot fire or notify anyone until they are back.")
    if not result["scenarios"] and not result.get("root_causes"):
        lines.append("No runbook scenario applies: the offload stack looks healthy." if result.get("status") == "healthy"
                     else "No runbook scenario applies to what the probes could see.")
    for s in result["scenarios"]:
        lines.append(f"Scenario {s['scenario']}: {s['title']} - tables: {', '.join(s['tables']) or 'all'}")
        lines += [f"  evidence: {e}" for e in s["evidence"][:6]]
        lines.append(f"  next: {s['next_action']}")
    lines += [f"Observed, not acted on: {o}" for o in result.get("observations") or []]
    if result.get("stale_alert_tables"):
        lines.append(f"Alert still firing for {', '.join(result['stale_alert_tables'])} although the newest flow run "
                     "COMPLETED and the watermark is healthy: it clears by itself within its 15-min window.")
    if result.get("min_ttl_headroom_seconds") is not None:
        hours = result["min_ttl_headroom_seconds"] / 3600
        worst = min(result["ttl_headroom_seconds"], key=result["ttl_headroom_seconds"].get)
        lines.append(f"TTL headroom: {hours:.1f} h for {worst} before ClickHouse deletes rows not yet offloaded"
                     + (" - DATA LOSS POSSIBLE: escalate" if hours <= 0 else ""))
    if result.get("monitoring_not_deployed"):
        lines.append(f"MONITORING NOT DEPLOYED: {'; '.join(result['monitoring_not_deployed'])}. "
                     "IcebergOffloadConsecutiveFailures cannot fire or reach anyone here, so the alert-driven loop "
                     "cannot start: roll the monitoring out (docs/eda.md, 'What a stack needs').")
    if not result.get("prometheus_metrics_exported") and not any(
            m.startswith("offload metrics") for m in result.get("monitoring_not_deployed") or []):
        lines.append("Prometheus offload metrics absent: diagnosis stands on PostgreSQL and Prefect signals.")
    return lines
