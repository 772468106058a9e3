# -*- coding: utf-8 -*-
# PRIVATE to this project's modules (library/offload_prefect): pure logic over Prefect 3 REST payloads
# (deployments, flow runs, logs, work pools, workers) and K2's offload log lines. Standard library only, no I/O,
# so that it is unit-tested without a server. Imported as ansible.module_utils.offload_prefect_logic.
from __future__ import annotations

try:
    from ansible.module_utils.offload_common import (
        api_url_problem,  # noqa: F401 - re-exported to the module
        parse_utc,
    )
except ImportError:  # unit tests import module_utils/ directly
    from offload_common import (
        api_url_problem,  # noqa: F401
        parse_utc,
    )

import re
from datetime import datetime, timedelta

# Prefect state types (StateType enum).
FAILURE_STATES = frozenset({"FAILED", "CRASHED"})
IN_FLIGHT_STATES = frozenset({"SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"})
ACTIVE_STATES = ("RUNNING", "PENDING")
# A SCHEDULED run that a worker will start now: due (a run just created, or Late while no worker polled), or
# between two attempts of a flow retried by Prefect.
DUE_SLACK_SECONDS = 5
RETRY_STATE_NAMES = frozenset({"AwaitingRetry", "Retrying"})
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
STATE_TYPES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED", "CANCELLING", "RUNNING", "PENDING", "PAUSED",
               "SCHEDULED")

# K2's flow (docker/offload/flows/iceberg_offload_flow.py, task offload-table).
OFFLOAD_FAILED = re.compile(r"✗\s*Offload failed:\s*(\S+)")
OFFLOAD_TIMEOUT = re.compile(r"✗\s*Offload timeout:\s*(\S+)")
EXIT_CODE = re.compile(r"^\s*Exit code:\s*(-?\d+)\s*$")
STDERR = re.compile(r"^\s*Stderr:\s?(.*)", re.S)
# RuntimeError raised by the task, repeated in the flow run's state message.
STATE_MESSAGE_TABLE = re.compile(r"Offload failed for ([A-Za-z_][A-Za-z0-9_.]*):")
# What K2 names a table in its logs: a ClickHouse source table (or a dotted Iceberg name).
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
RELEVANT = re.compile(r"✗|Offload|Error|Exception|timeout", re.I)
DEPLOYMENT_NAME = re.compile(r"^([^/\x00-\x1f\x7f]+)/([^/\x00-\x1f\x7f]+)$")

WARNING = 30
MAX_MESSAGE_CHARS = 1000
MAX_STDERR_CHARS = 500
MAX_ERROR_LINE_CHARS = 300
KILLED_EXIT_CODES = (137, -9)
ERROR_LOG_LINE = re.compile(r" - (ERROR|CRITICAL) - ")
ERROR_WORDS = re.compile(r"error|exception|failed|fatal|killed|refused|timed? ?out", re.I)


def parse_deployment_name(name) -> tuple[str, str]:
    """'flow/deployment' -> (flow, deployment); ValueError with a one-line reason otherwise."""
    if not isinstance(name, str):
        raise ValueError(f"deployment must be a string of the form flow/deployment, got {name!r}")
    match = DEPLOYMENT_NAME.fullmatch(name)
    if not match or not match.group(1).strip() or not match.group(2).strip() or name != name.strip():
        raise ValueError(f"deployment {name!r} is not of the form flow/deployment "
                         "(e.g. iceberg-offload-main/iceberg-offload-15min)")
    return match.group(1), match.group(2)


def due_to_start(runs, now: datetime) -> list[dict]:
    """The SCHEDULED runs that are as good as in flight at `now`: expected to start by now (within the slack of
    the Date header's one-second resolution), or waiting to retry. A run scheduled for later is not in flight:
    an active 15-minute schedule keeps many of those."""
    return [r for r in runs or [] if isinstance(r, dict) and state_type(r) == "SCHEDULED"
            and (r.get("state_name") in RETRY_STATE_NAMES
                 or (parse_utc(r.get("expected_start_time")) or now) <= now + timedelta(seconds=DUE_SLACK_SECONDS))]


def runs_older_than(runs, moment) -> list[dict]:
    """In-flight runs (RUNNING/PENDING) that started before `moment` (the worker container's last start): the
    process that ran them died with the old worker, so they can never finish (zombies)."""
    since = parse_utc(moment)
    if since is None:
        return []
    return [r for r in runs or [] if isinstance(r, dict) and state_type(r) in ACTIVE_STATES
            and (parse_utc(r.get("start_time") or r.get("expected_start_time")) or since) < since]


def worker_lost(seconds_without_worker: float | None, grace_seconds: float) -> bool:
    """A run in flight whose pool has stayed without an online worker for longer than the grace: its worker died."""
    return seconds_without_worker is not None and seconds_without_worker > grace_seconds


def age_seconds(timestamp, now: datetime) -> float | None:
    """Seconds from timestamp to now (negative when the timestamp is in the future: clock skew)."""
    when = parse_utc(timestamp)
    if when is None:
        return None
    return round((parse_utc(now) - when).total_seconds(), 3)


def worker_summary(worker: dict, now: datetime, stale_seconds: float) -> dict:
    """One worker: online only if Prefect says ONLINE *and* its last heartbeat is fresher than stale_seconds."""
    age = age_seconds(worker.get("last_heartbeat_time"), now)
    if age is not None and age < 0:
        age = 0.0  # a heartbeat "after" now: the reference clock's resolution (HTTP Date) or a small skew
    status = worker.get("status")
    return {
        "name": worker.get("name"),
        "status": status,
        "last_heartbeat_time": worker.get("last_heartbeat_time"),
        "heartbeat_age_seconds": age,
        "heartbeat_interval_seconds": worker.get("heartbeat_interval_seconds"),
        "online": status == "ONLINE" and age is not None and age < stale_seconds,
    }


def summarize_workers(workers, now: datetime, stale_seconds: float) -> list[dict]:
    """Workers, freshest heartbeat first."""
    rows = [worker_summary(w, now, stale_seconds) for w in (workers or []) if isinstance(w, dict)]
    return sorted(rows, key=lambda w: (w["heartbeat_age_seconds"] is None,
                                       w["heartbeat_age_seconds"] if w["heartbeat_age_seconds"] is not None else 0))


def schedules_summary(deployment: dict) -> list[dict]:
    """The deployment's schedules in one shape, across payload versions:
    Prefect >= 2.18 / 3: schedules: [{active, schedule: {cron|interval|rrule, timezone}}];
    Prefect < 2.18: schedule: {cron|interval|rrule} + is_schedule_active."""
    out = []
    items = deployment.get("schedules")
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, dict):
                continue
            spec = item.get("schedule") if isinstance(item.get("schedule"), dict) else {}
            out.append(_schedule_row(spec, item.get("active", True)))
    elif isinstance(deployment.get("schedule"), dict):
        out.append(_schedule_row(deployment["schedule"], deployment.get("is_schedule_active", True)))
    return out


def _schedule_row(spec: dict, active) -> dict:
    return {"cron": spec.get("cron"), "interval": spec.get("interval"), "rrule": spec.get("rrule"),
            "timezone": spec.get("timezone"), "active": active is not False}


def schedule_paused(deployment: dict) -> bool:
    """True when nothing will be scheduled: the deployment is paused (Prefect 3 `paused`), the legacy
    `is_schedule_active` is false, or it has schedules and none of them is active. A deployment without any
    schedule is not 'paused' (see schedules == [])."""
    if deployment.get("paused") is True:
        return True
    if deployment.get("is_schedule_active") is False:
        return True
    schedules = schedules_summary(deployment)
    return bool(schedules) and not any(s["active"] for s in schedules)


def deployment_summary(deployment: dict | None) -> dict:
    if not deployment:
        return {"exists": False, "id": None, "name": None, "paused": None, "schedules": [], "work_pool_name": None,
                "status": None, "last_polled": None}
    return {"exists": True, "id": deployment.get("id"), "name": deployment.get("name"),
            "paused": schedule_paused(deployment), "schedules": schedules_summary(deployment),
            "work_pool_name": deployment.get("work_pool_name"), "status": deployment.get("status"),
            "last_polled": deployment.get("last_polled")}


def work_pool_summary(pool: dict | None) -> dict:
    if not pool:
        return {"exists": False, "name": None, "type": None, "paused": None, "status": None,
                "concurrency_limit": None}
    return {"exists": True, "name": pool.get("name"), "type": pool.get("type"),
            "paused": bool(pool.get("is_paused")) or pool.get("status") == "PAUSED",
            "status": pool.get("status"), "concurrency_limit": pool.get("concurrency_limit")}


def state_type(run: dict) -> str | None:
    state = run.get("state") if isinstance(run.get("state"), dict) else {}
    return run.get("state_type") or state.get("type")


def summarize_run(run: dict) -> dict:
    state = run.get("state") if isinstance(run.get("state"), dict) else {}
    return {"id": run.get("id"), "name": run.get("name"), "state_type": state_type(run),
            "state_name": run.get("state_name") or state.get("name"),
            "expected_start_time": run.get("expected_start_time"), "start_time": run.get("start_time"),
            "end_time": run.get("end_time"), "message": state.get("message"),
            "parameters": run.get("parameters") or {}}


def count_states(runs) -> dict:
    """Number of runs per state type (every known type present, 0 when none)."""
    counts = dict.fromkeys(STATE_TYPES, 0)
    for run in runs:
        kind = state_type(run) or "UNKNOWN"
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def consecutive_failures(runs) -> int:
    """FAILED/CRASHED runs in a row, newest first. Runs still in flight at the head (scheduled, late, pending,
    running) are skipped; any other final state (COMPLETED, CANCELLED) ends the streak."""
    streak = 0
    for run in runs:
        kind = state_type(run)
        if kind in FAILURE_STATES:
            streak += 1
        elif kind in IN_FLIGHT_STATES and streak == 0:
            continue
        else:
            break
    return streak


def is_relevant(log: dict) -> bool:
    """A log line worth showing: WARNING or worse, or one that talks about an offload, an error or a timeout."""
    level = log.get("level")
    if isinstance(level, int) and not isinstance(level, bool) and level >= WARNING:
        return True
    return bool(RELEVANT.search(str(log.get("message") or "")))


def clip(text, limit: int) -> str:
    """At most limit characters: the head and, mostly, the tail (a job's error is at the end of its stderr)."""
    text = "" if text is None else str(text)
    if len(text) <= limit:
        return text
    head = limit // 4
    return text[:head] + " … " + text[len(text) - (limit - head - 3):]


def tail(text, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else "…" + text[len(text) - limit + 1:]


def error_line(stderr) -> str | None:
    """The line of a job's stderr that says what went wrong: the last K2 'ERROR' log line, else the last line
    naming an error/exception/failure, else the last non-blank line."""
    lines = [line.strip() for line in str(stderr or "").splitlines() if line.strip()]
    for pattern in (ERROR_LOG_LINE, ERROR_WORDS):
        found = [line for line in lines if pattern.search(line)]
        if found:
            return clip(found[-1], MAX_ERROR_LINE_CHARS)
    return clip(lines[-1], MAX_ERROR_LINE_CHARS) if lines else None


def relevant_log_lines(logs, max_lines: int = 50) -> list[str]:
    """The messages of the last max_lines relevant lines (failures come at the end of a K2 run), each clipped to
    its head and tail. Plain strings, as the triage rules (offload_rules.classify_lines) read them."""
    rows = [clip(log.get("message"), MAX_MESSAGE_CHARS) for log in logs if isinstance(log, dict) and is_relevant(log)]
    return rows[-max_lines:] if max_lines > 0 else []


def valid_table(name: str) -> bool:
    return bool(TABLE_NAME.fullmatch(name or ""))


def parse_offload_errors(messages) -> list[dict]:
    """K2's failure lines, in order: '✗ Offload failed: <t>' (+ '  Exit code: N', '  Stderr: ...' that follow it)
    and '✗ Offload timeout: <t> (exceeded N minutes)'. One entry per occurrence (each task attempt logs its
    own) with the exit code, the tail of the stderr and its error line; names that are not plain table
    identifiers are ignored (hostile or garbled lines)."""
    errors: list[dict] = []
    last_failed = None
    for message in messages:
        if not isinstance(message, str):
            continue
        for pattern, kind in ((OFFLOAD_FAILED, "failed"), (OFFLOAD_TIMEOUT, "timeout")):
            match = pattern.search(message)
            if match:
                table = match.group(1).rstrip(".,;:")
                if valid_table(table):
                    entry = {"table": table, "kind": kind, "exit_code": None, "stderr": None, "error_line": None}
                    errors.append(entry)
                    last_failed = entry if kind == "failed" else None
                else:
                    last_failed = None
                break
        else:
            if last_failed is None:
                continue
            code = EXIT_CODE.match(message)
            if code and last_failed["exit_code"] is None:
                last_failed["exit_code"] = int(code.group(1))
                continue
            err = STDERR.match(message)
            if err and last_failed["stderr"] is None:
                last_failed["stderr"] = tail(err.group(1).strip(), MAX_STDERR_CHARS)
                line = error_line(err.group(1))
                if last_failed["exit_code"] in KILLED_EXIT_CODES and not ERROR_WORDS.search(line or ""):
                    line = clip(f"killed (exit {last_failed['exit_code']}: SIGKILL, e.g. OOM); last line: {line}",
                                MAX_ERROR_LINE_CHARS)
                last_failed["error_line"] = line
    return errors


def unique(items) -> list:
    seen = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def failed_tables(messages) -> list[str]:
    """Tables named by failure or timeout lines, first occurrence order, each once."""
    return unique(e["table"] for e in parse_offload_errors(messages))


def tables_from_state_message(message) -> list[str]:
    """Fallback when logs are unavailable: 'Offload failed for <table>: ...' in the run's state message."""
    if not isinstance(message, str):
        return []
    return unique(t.rstrip(".") for t in STATE_MESSAGE_TABLE.findall(message) if valid_table(t.rstrip(".")))


def run_failure_details(run: dict, logs, max_lines: int = 50) -> dict:
    """For a FAILED/CRASHED run: its relevant log lines, the offload errors parsed from them and the tables."""
    messages = [log.get("message") for log in logs if isinstance(log, dict)]
    errors = parse_offload_errors(messages)
    tables = unique(e["table"] for e in errors) or tables_from_state_message(run.get("message"))
    return {"log_lines": relevant_log_lines(logs, max_lines), "offload_errors": errors, "failed_tables": tables}
