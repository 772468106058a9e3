# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: Prefect's read-only inspection (deployment, recent flow runs with the logs of
# the failed ones, runs in flight, work pool and workers), shared by library/offload_prefect_info.py,
# library/offload_prefect.py (its waits) and library/offload_diagnosis.py (the diagnosis' Prefect probe).
# Imported as ansible.module_utils.offload_prefect_inspect.
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from ansible.module_utils.offload_common import ProbeError, http_api_argument_spec, parse_utc
from ansible.module_utils.offload_prefect_api import PrefectAPI, PrefectHTTPError, PrefectUnreachable, failure
from ansible.module_utils.offload_prefect_logic import (
    ACTIVE_STATES,
    FAILURE_STATES,
    api_url_problem,
    consecutive_failures,
    count_states,
    deployment_summary,
    due_to_start,
    parse_deployment_name,
    run_failure_details,
    summarize_run,
    summarize_workers,
    tables_from_state_message,
    unique,
    work_pool_summary,
)

LOG_PAGE = 200
MAX_LOG_LINES = 50
MAX_RUNS = 200
NEVER = datetime.min.replace(tzinfo=timezone.utc)  # sorts a run with no expected start last


def deployment_argument_spec() -> dict:
    """The API, the deployment and its work pool (offload_prefect_info's and offload_prefect's)."""
    return {**http_api_argument_spec("http://127.0.0.1:4200/api", "PREFECT_API_URL"),
            "deployment": {"type": "str", "default": "iceberg-offload-main/iceberg-offload-15min"},
            "work_pool": {"type": "str", "default": "iceberg-offload"},
            "heartbeat_stale_seconds": {"type": "int", "default": 90}}


def inspect_argument_spec() -> dict:
    """The options of the inspection (offload_prefect_info's, the diagnosis' Prefect probe)."""
    return {**deployment_argument_spec(),
            "recent_runs": {"type": "int", "default": 10},
            "include_logs": {"type": "bool", "default": True}}


def validate(params: dict) -> tuple[str, str]:
    """The deployment's (flow, name); ProbeError with one clear line on bad input (the inspection's options
    included when given)."""
    problem = api_url_problem(params["api_url"])
    if problem:
        raise ProbeError(f"api_url {params['api_url']!r} {problem}: expected e.g. http://127.0.0.1:4200/api.")
    try:
        flow, name = parse_deployment_name(params["deployment"])
    except ValueError as exc:
        raise ProbeError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None
    if not params["work_pool"] or not params["work_pool"].strip():
        raise ProbeError("work_pool must not be empty (K2: iceberg-offload).")
    if "recent_runs" in params and not 1 <= params["recent_runs"] <= MAX_RUNS:
        raise ProbeError(f"recent_runs must be between 1 and {MAX_RUNS}, got {params['recent_runs']}.")
    if params["heartbeat_stale_seconds"] <= 0:
        raise ProbeError(f"heartbeat_stale_seconds must be positive, got {params['heartbeat_stale_seconds']}.")
    if params["timeout"] <= 0:
        raise ProbeError(f"timeout must be positive, got {params['timeout']}.")
    return flow, name


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class Inspector:
    def __init__(self, reporter, api: PrefectAPI) -> None:
        self.reporter = reporter
        self.api = api
        self.params = reporter.params
        self.error = None

    def note(self, message: str) -> None:
        """Record a problem that does not stop the inspection: the first becomes `error`, others are warnings."""
        if self.error is None:
            self.error = message
        else:
            self.reporter.warn(message)

    def deployment(self, flow: str, name: str):
        try:
            return self.api.get(f"/deployments/name/{quote(flow, safe='')}/{quote(name, safe='')}")
        except PrefectHTTPError as exc:
            if exc.status != 404:
                self.note(f"Cannot read deployment {self.params['deployment']!r}: {exc}")
            return None

    def recent_runs(self, deployment_id: str) -> list[dict]:
        # Runs auto-scheduled in the future are not "recent": only runs expected to have started by now
        # (a few seconds of slack for the Date header's one-second resolution).
        body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]},
                              "expected_start_time": {"before_": iso(self.api.now() + timedelta(seconds=5))}},
                "sort": "EXPECTED_START_TIME_DESC", "limit": self.params["recent_runs"]}
        try:
            runs = self.api.post("/flow_runs/filter", body)
        except PrefectHTTPError as exc:
            self.note(f"Cannot list the flow runs of deployment {self.params['deployment']!r}: {exc}")
            return []
        return [r for r in runs or [] if isinstance(r, dict)]

    def runs_in_flight(self, deployment_id: str) -> list[str]:
        """The ids of the deployment's runs in flight (RUNNING or PENDING, or SCHEDULED and due to start: a run
        just created is SCHEDULED until a worker picks it up), newest first; raises PrefectHTTPError when they
        cannot be listed (for a caller that acts on the answer: a run started beside one not seen doubles rows)."""
        active = self.api.post("/flow_runs/filter", {
            "flow_runs": {"deployment_id": {"any_": [deployment_id]}, "state": {"type": {"any_": list(ACTIVE_STATES)}}},
            "sort": "EXPECTED_START_TIME_DESC", "limit": MAX_RUNS}) or []
        scheduled = self.api.post("/flow_runs/filter", {
            "flow_runs": {"deployment_id": {"any_": [deployment_id]}, "state": {"type": {"any_": ["SCHEDULED"]}}},
            "sort": "EXPECTED_START_TIME_ASC", "limit": MAX_RUNS}) or []
        runs = [r for r in active if isinstance(r, dict)] + due_to_start(scheduled, self.api.now())
        runs.sort(key=lambda r: parse_utc(r.get("expected_start_time")) or NEVER, reverse=True)
        return unique(r["id"] for r in runs)

    def active_runs(self, deployment_id: str) -> list[str] | None:
        """runs_in_flight(), or None when they could not be listed (noted: not known to be none)."""
        try:
            return self.runs_in_flight(deployment_id)
        except PrefectHTTPError as exc:
            self.note(f"Cannot list the running flow runs of deployment {self.params['deployment']!r}: {exc}")
            return None

    def run_logs(self, run_id: str) -> tuple[list[dict], bool]:
        """Logs of the run and of its direct subflow runs, oldest first; and whether a page was full."""
        children = self.api.post("/flow_runs/filter", {"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}},
                                                       "limit": MAX_RUNS})
        ids = [run_id] + [c["id"] for c in children or [] if isinstance(c, dict) and c.get("id")]
        flt = {"flow_run_id": {"any_": ids}}
        logs = self.api.post("/logs/filter", {"logs": flt, "sort": "TIMESTAMP_ASC", "limit": LOG_PAGE}) or []
        truncated = len(logs) >= LOG_PAGE
        if truncated:
            # More than a page: the failures are at the end of a K2 run, so also take the newest warnings/errors.
            tail = self.api.post("/logs/filter", {"logs": {**flt, "level": {"ge_": 30}}, "sort": "TIMESTAMP_DESC",
                                                  "limit": LOG_PAGE}) or []
            seen = {log.get("id") for log in logs}
            logs = sorted(logs + [log for log in tail if log.get("id") not in seen],
                          key=lambda log: str(log.get("timestamp") or ""))
        return [log for log in logs if isinstance(log, dict)], truncated

    def flow_runs(self, runs: list[dict]) -> list[dict]:
        out = []
        for run in runs:
            row = summarize_run(run)
            row.update({"failed_tables": [], "offload_errors": None, "log_lines": None, "log_truncated": False})
            if row["state_type"] in FAILURE_STATES:
                row["failed_tables"] = tables_from_state_message(row["message"])
                if self.params["include_logs"]:
                    try:
                        logs, truncated = self.run_logs(row["id"])
                    except PrefectHTTPError as exc:
                        self.note(f"Cannot read the logs of flow run {row['name']!r} ({row['id']}): {exc}")
                    else:
                        row.update(run_failure_details(row, logs, MAX_LOG_LINES), log_truncated=truncated)
            out.append(row)
        return out

    def work_pool(self) -> tuple[dict, list[dict]]:
        name = quote(self.params["work_pool"], safe="")
        try:
            pool = self.api.get(f"/work_pools/{name}")
        except PrefectHTTPError as exc:
            if exc.status != 404:
                self.note(f"Cannot read work pool {self.params['work_pool']!r}: {exc}")
            return work_pool_summary(None), []
        try:
            workers = self.api.post(f"/work_pools/{name}/workers/filter", {"limit": MAX_RUNS})
        except PrefectHTTPError as exc:
            self.note(f"Cannot list the workers of work pool {self.params['work_pool']!r}: {exc}")
            workers = []
        return work_pool_summary(pool), summarize_workers(workers, self.api.now(),
                                                         self.params["heartbeat_stale_seconds"])


def empty_result(api_url: str) -> dict:
    return {"changed": False, "reachable": False, "api_url": api_url, "error": None,
            "deployment": deployment_summary(None), "flow_runs": [], "running_runs": [], "idle": False,
            "not_idle_because": None,
            "counts": count_states([]), "consecutive_failures": 0, "failed_tables": [],
            "work_pool": work_pool_summary(None), "workers": [], "worker_online": False}


def inspect(reporter, flow: str, name: str) -> dict:
    params = reporter.params
    api = PrefectAPI(params["api_url"], params["timeout"], params["validate_certs"])
    result = empty_result(api.base)
    try:
        healthy = api.get("/health")
    except PrefectUnreachable as exc:
        result["error"] = result["not_idle_because"] = failure(api.base, exc)
        return result
    except PrefectHTTPError as exc:
        result["error"] = result["not_idle_because"] = (f"{api.base} does not answer as the Prefect API (does api_url "
                                                        f"end in /api?): {exc}")
        return result
    if healthy is not True:
        result["error"] = result["not_idle_because"] = (f"Prefect API {api.base} is not healthy: /health answered "
                                                        f"{json.dumps(healthy)[:200]}")
        return result
    result["reachable"] = True
    inspector = Inspector(reporter, api)
    running = None
    try:
        deployment = inspector.deployment(flow, name)
        result["deployment"] = deployment_summary(deployment)
        if deployment:
            runs = inspector.recent_runs(deployment["id"])
            result["flow_runs"] = inspector.flow_runs(runs)
            running = inspector.active_runs(deployment["id"])
            result["running_runs"] = running or []
            result["counts"] = count_states(result["flow_runs"])
            result["consecutive_failures"] = consecutive_failures(result["flow_runs"])
            result["failed_tables"] = unique(t for r in result["flow_runs"] for t in r["failed_tables"])
        result["work_pool"], result["workers"] = inspector.work_pool()
        result["worker_online"] = any(w["online"] for w in result["workers"])
    except PrefectUnreachable as exc:
        inspector.note(f"Prefect API {api.base} stopped answering: {exc}")
        running = None
    result["error"] = inspector.error
    result["not_idle_because"] = not_idle_because(params["deployment"], result["deployment"]["exists"], running,
                                                  inspector.error)
    result["idle"] = result["not_idle_because"] is None
    return result


def not_idle_because(deployment: str, exists: bool, running: list[str] | None, error: str | None) -> str | None:
    """Why the deployment is not known to have no flow run in flight (one line), None when it is known: what
    cannot be read is not 'nothing in flight'."""
    if not exists:
        return error or f"deployment {deployment} was not found"
    if running is None:
        return error or f"the flow runs of {deployment} in flight could not be listed"
    if running:
        return f"flow run(s) {', '.join(running)} of {deployment} are in flight"
    return None


def wait_for_idle(reporter, flow: str, name: str, seconds: int, poll: float = 5.0, beat=None) -> dict:
    """inspect() every `poll` s until no flow run of the deployment is in flight, at most `seconds` (a run of the
    schedule that was failing when a remediation started usually ends within a minute); the last inspection, with
    `waited_seconds`. Stops at once when the API or the deployment cannot be read: waiting does not fix that."""
    started = time.monotonic()
    while True:
        result = inspect(reporter, flow, name)
        elapsed = time.monotonic() - started
        if result["idle"] or not result["running_runs"] or elapsed >= seconds:
            result["waited_seconds"] = round(elapsed, 1)
            if not result["idle"] and result["running_runs"] and seconds:
                result["not_idle_because"] += f" after {seconds} s"
            return result
        if beat:
            beat()  # the caller's lock stays alive while it waits
        time.sleep(min(poll, seconds - elapsed))




def read_prefect(reporter) -> dict:
    """The diagnosis' Prefect probe: validate, then inspect (an unreachable API is a finding in the result)."""
    return inspect(reporter, *validate(reporter.params))
