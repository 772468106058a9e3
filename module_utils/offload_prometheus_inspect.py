# -*- coding: utf-8 -*-
# PRIVATE to this project's modules: Prometheus' read-only inspection (the alert, its rule, the offload metrics),
# shared by library/offload_alerts.py and library/offload_diagnosis.py (the diagnosis' Prometheus probe).
# Imported as ansible.module_utils.offload_prometheus_inspect.
from __future__ import annotations

import json
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode

from ansible.module_utils.offload_alerts_logic import (
    PrometheusError,
    alert_tables,
    alerts_named,
    api_url_problem,
    find_rule,
    metrics_empty,
    parse_query_result,
    unwrap,
)
from ansible.module_utils.offload_common import ProbeError, first_line, http_api_argument_spec
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url


def inspect_argument_spec() -> dict:
    """The options of the inspection (offload_alerts', the diagnosis' Prometheus probe)."""
    return {**http_api_argument_spec("http://127.0.0.1:9090", "PROMETHEUS_URL"),
            "alert_name": {"type": "str", "default": "IcebergOffloadConsecutiveFailures"},
            "metrics": {"type": "list", "elements": "str",
                        "default": ["offload_lag_minutes", "sum(increase(offload_errors_total[15m])) by (table, error_type)"]}}


def validate(params: dict) -> None:
    """ProbeError with one clear line on bad input."""
    problem = api_url_problem(params["api_url"])
    if problem:
        raise ProbeError(f"api_url {params['api_url']!r} {problem}: expected e.g. http://127.0.0.1:9090.")
    if not params["alert_name"] or not params["alert_name"].strip():
        raise ProbeError("alert_name must not be empty (K2: IcebergOffloadConsecutiveFailures).")
    blank = [i for i, expr in enumerate(params["metrics"]) if not expr or not expr.strip()]
    if blank:
        raise ProbeError(f"metrics must not contain empty expressions (position(s) {blank}).")
    if params["timeout"] <= 0:
        raise ProbeError(f"timeout must be positive, got {params['timeout']}.")


class Unreachable(Exception):
    """No HTTP answer at all (connection refused, DNS, timeout, TLS)."""


class PrometheusAPI:
    def __init__(self, base: str, timeout: int, validate_certs: bool) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.validate_certs = validate_certs

    def get(self, path: str, query: dict | None = None):
        """The `data` of GET /api/v1/<path>; Unreachable, or PrometheusError for an answer that is not a success."""
        url = f"{self.base}/api/v1/{path}" + (f"?{urlencode(query)}" if query else "")
        try:
            resp = open_url(url, method="GET", timeout=self.timeout, validate_certs=self.validate_certs,
                            headers={"Accept": "application/json"}, http_agent="ansible-offload_alerts",
                            use_netrc=False)
            raw = resp.read()
        except HTTPError as exc:
            # Prometheus answers 400/422/503 with its JSON envelope (bad query, execution error).
            try:
                payload = json.loads(exc.read())
            except (ValueError, OSError):
                payload = None
            if not isinstance(payload, dict) or "status" not in payload:
                raise PrometheusError(f"GET {self.base}/api/v1/{path} answered HTTP {exc.code}: {exc.reason}") from None
            return unwrap(payload, f"/api/v1/{path}")
        except (TimeoutError, URLError, UrlsConnectionError, HTTPException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None)
            raise Unreachable(first_line(reason) if isinstance(reason, BaseException)
                              else str(reason or first_line(exc))) from None
        try:
            payload = json.loads(raw)
        except ValueError:
            raise PrometheusError(f"GET {self.base}/api/v1/{path} did not answer JSON") from None
        return unwrap(payload, f"/api/v1/{path}")


def read(reporter) -> dict:
    """Alerts, rule and metrics; an unreachable Prometheus is a finding in the result."""
    params = reporter.params
    api = PrometheusAPI(params["api_url"], params["timeout"], params["validate_certs"])
    result = {"changed": False, "reachable": False, "api_url": api.base, "error": None, "alerts": [],
              "alert_tables": [], "rule": None, "rule_loaded": None, "metrics": {}, "metric_errors": {},
              "metrics_empty": None}
    try:
        alerts_data = api.get("alerts")
    except Unreachable as exc:
        result["error"] = f"Prometheus {api.base} is unreachable: {exc}"
        return result
    except PrometheusError as exc:
        result["error"] = f"Prometheus {api.base} gave no alerts: {exc}"
        return result
    result["reachable"] = True
    result["alerts"] = alerts_named(alerts_data, params["alert_name"])
    result["alert_tables"] = alert_tables(result["alerts"])
    problems = []
    try:
        result["rule"] = find_rule(api.get("rules", {"type": "alert"}), params["alert_name"])
        result["rule_loaded"] = result["rule"] is not None
    except (Unreachable, PrometheusError) as exc:
        problems.append(f"Cannot read the alerting rules of Prometheus {api.base}: {exc}")
    for expr in params["metrics"]:
        try:
            result["metrics"][expr] = parse_query_result(api.get("query", {"query": expr}))
        except (Unreachable, PrometheusError) as exc:
            result["metrics"][expr] = []
            result["metric_errors"][expr] = str(exc) if isinstance(exc, PrometheusError) else f"no answer: {exc}"
            problems.append(f"Prometheus {api.base} could not evaluate {expr!r}: {result['metric_errors'][expr]}")
    result["metrics_empty"] = metrics_empty(result["metrics"])
    if problems:
        result["error"] = problems[0]
        for problem in problems[1:]:
            reporter.warn(problem)
    return result




def read_prometheus(reporter) -> dict:
    """The diagnosis' Prometheus probe: validate, then read."""
    validate(reporter.params)
    return read(reporter)
