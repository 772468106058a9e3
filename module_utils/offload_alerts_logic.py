# -*- coding: utf-8 -*-
# PRIVATE to this project's modules (library/offload_alerts): pure logic over Prometheus HTTP API payloads
# (/api/v1/alerts, /api/v1/rules, /api/v1/query). Standard library only, no I/O, so that it is unit-tested
# without a server. Imported as ansible.module_utils.offload_alerts_logic.
from __future__ import annotations

try:
    from ansible.module_utils.offload_common import api_url_problem  # noqa: F401 - re-exported to the module
except ImportError:  # unit tests import module_utils/ directly
    from offload_common import api_url_problem  # noqa: F401

import math


class PrometheusError(ValueError):
    """The API answered, but not with a successful Prometheus envelope (bad query, wrong URL, not JSON)."""


def unwrap(payload, what: str = "response"):
    """The `data` of a Prometheus envelope {status: success, data: ...}; PrometheusError otherwise."""
    if not isinstance(payload, dict):
        raise PrometheusError(f"{what} is not a Prometheus API response (got {type(payload).__name__})")
    if payload.get("status") != "success":
        kind = payload.get("errorType") or "error"
        detail = str(payload.get("error") or "no error message").strip().splitlines()
        raise PrometheusError(f"{what}: {kind}: {detail[0] if detail else 'no error message'}")
    return payload.get("data")


def sample_value(raw) -> float | None:
    """A sample value as Prometheus sends it (a string such as "1.5e+01", "NaN", "+Inf") -> float; None when not a
    finite number (the raw string is kept next to it by the callers)."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _sample(labels: dict, pair) -> dict:
    raw = pair[1] if isinstance(pair, (list, tuple)) and len(pair) == 2 else None
    ts = pair[0] if isinstance(pair, (list, tuple)) and len(pair) == 2 else None
    return {"labels": labels, "value": sample_value(raw), "raw": None if raw is None else str(raw), "timestamp": ts}


def parse_query_result(data) -> list[dict]:
    """The data of /api/v1/query -> list of {labels, value, raw, timestamp}:
    vector -> one per series; scalar/string -> one with empty labels; matrix -> one per series, its last sample.
    Sorted by labels for stable output."""
    if not isinstance(data, dict):
        raise PrometheusError("query result has no data")
    kind = data.get("resultType")
    result = data.get("result")
    rows = []
    if kind == "vector":
        for item in result or []:
            if isinstance(item, dict):
                rows.append(_sample(dict(item.get("metric") or {}), item.get("value")))
    elif kind in ("scalar", "string"):
        if result is not None:
            rows.append(_sample({}, result))
    elif kind == "matrix":
        for item in result or []:
            if isinstance(item, dict):
                values = item.get("values") or []
                rows.append(_sample(dict(item.get("metric") or {}), values[-1] if values else None))
    else:
        raise PrometheusError(f"unknown resultType {kind!r}")
    return sorted(rows, key=lambda r: sorted(r["labels"].items()))


def alerts_named(data, name: str) -> list[dict]:
    """Active (pending/firing) alerts of the data of /api/v1/alerts whose alertname is name, firing first."""
    alerts = (data or {}).get("alerts") if isinstance(data, dict) else None
    out = []
    for alert in alerts or []:
        if not isinstance(alert, dict):
            continue
        labels = alert.get("labels") or {}
        if labels.get("alertname") != name:
            continue
        out.append({"state": alert.get("state"), "labels": dict(labels),
                    "annotations": dict(alert.get("annotations") or {}), "active_at": alert.get("activeAt"),
                    "value": sample_value(alert.get("value")), "raw_value": alert.get("value")})
    return sorted(out, key=lambda a: (a["state"] != "firing", str(a["labels"].get("table", "")), str(a["active_at"])))


def alert_tables(alerts) -> list[str]:
    """The `table` labels of the alerts, sorted, each once."""
    return sorted({str(a["labels"]["table"]) for a in alerts if a.get("labels", {}).get("table") not in (None, "")})


def find_rule(data, name: str) -> dict | None:
    """The alerting rule `name` in the data of /api/v1/rules (None: not loaded, e.g. K2's rules dir not mounted)."""
    groups = (data or {}).get("groups") if isinstance(data, dict) else None
    for group in groups or []:
        for rule in (group or {}).get("rules") or []:
            if isinstance(rule, dict) and rule.get("name") == name and rule.get("type", "alerting") == "alerting":
                return {"group": group.get("name"), "query": rule.get("query"), "duration": rule.get("duration"),
                        "health": rule.get("health"), "state": rule.get("state"), "last_error": rule.get("lastError")}
    return None


def metrics_empty(results: dict) -> bool | None:
    """True when every expression returned no series (K2 gotcha: metrics are often not exported; a finding).
    None when no expression was asked."""
    if not results:
        return None
    return all(not series for series in results.values())
