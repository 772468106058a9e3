# -*- coding: utf-8 -*-
# PRIVATE to this project's modules (library/offload_notify): the runbook's Escalation section as notifications that
# reach people - the payload of an Alertmanager API v2 alert and of a Slack / PagerDuty Events v2 / generic webhook.
# Pure functions (no I/O); every value is scrubbed of secrets before it is put in a payload.
# Imported as ansible.module_utils.offload_notify.
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

try:
    from ansible.module_utils.offload_plan import RULE_CHANGE, RULE_DATA_LOSS, RULE_TIME, RULE_UNCLEAR
    from ansible.module_utils.offload_redact import MASK, scrub
except ImportError:  # unit tests import module_utils/ directly
    from offload_plan import RULE_CHANGE, RULE_DATA_LOSS, RULE_TIME, RULE_UNCLEAR
    from offload_redact import MASK, scrub

ALERT_NAME = "IcebergOffloadRemediationEscalated"
# The runbook's "Escalate to Engineering Lead if" rules, as offload_plan names them.
RULES = (RULE_TIME, RULE_UNCLEAR, RULE_CHANGE, RULE_DATA_LOSS)
RULE_TEXT = {
    RULE_TIME: "Resolution takes more than 30 minutes",
    RULE_UNCLEAR: "Root cause is unclear",
    RULE_CHANGE: "Requires code changes or infrastructure modifications (e.g. the JDBC driver missing: rebuild the image)",
    RULE_DATA_LOSS: "Data loss suspected",
}
RUNBOOK = "docs/operations/runbooks/iceberg-offload-failure.md (Escalation)"
FORMATS = ("generic", "slack", "pagerduty")
STATES = ("firing", "resolved")
# Alertmanager resolves an alert whose endsAt has passed; one posted without endsAt after its resolve_timeout (5 min by
# default), because it expects the sender to re-post it like Prometheus does every evaluation. This escalation is
# posted once: without endsAt it would page "RESOLVED" 5 minutes later while nobody has acted. 24 h keeps it open for
# a whole on-call day; posting it again with state=resolved (same labels) closes it as soon as it is handled.
DEFAULT_HOLD_SECONDS = 86400
MAX_ANNOTATION = 4000
MAX_EVIDENCE = 20
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SLACK_TEXT_LIMIT = 2900  # a Slack section block holds 3000 characters
PAGERDUTY_SUMMARY_LIMIT = 1024


class NotifyError(ValueError):
    """Bad input (one line naming the option) or an endpoint that did not take the notification."""


def rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def scenario_label(value) -> str:
    """remediate.yml's scenarios and root causes (a list, or one value) as one label value: "2", "1,4",
    "root_cause:prefect_db", "unknown"; "none" when empty."""
    items = value if isinstance(value, (list, tuple)) else [value] if value not in (None, "") else []
    out = []
    for item in items:
        if isinstance(item, dict):  # a diagnosis scenario or root cause entry
            item = item.get("scenario") if "scenario" in item else f"root_cause:{item.get('component')}"
        text = str(item).strip()
        if text and text not in out:
            out.append(text)
    return ",".join(out) or "none"


def check_inputs(p: dict) -> None:
    """One line naming the first bad option."""
    if p["state"] not in STATES:
        raise NotifyError(f"state must be one of {', '.join(STATES)}, got {p['state']!r}.")
    if not str(p.get("host") or "").strip():
        raise NotifyError("host must name the K2 Docker host (inventory_hostname).")
    if p["state"] == "firing" and not str(p.get("reason") or "").strip():
        raise NotifyError(f"reason is required to escalate: one of the runbook's rules ({'; '.join(RULES)}).")
    if not 60 <= int(p["ends_after_seconds"]) <= 7 * 86400:
        raise NotifyError(f"ends_after_seconds must be between 60 and 604800, got {p['ends_after_seconds']}.")
    if not 1 <= int(p["timeout"]) <= 120:
        raise NotifyError(f"timeout must be between 1 and 120 seconds, got {p['timeout']}.")
    bad = [k for k in (p.get("extra_labels") or {}) if not LABEL_NAME.match(str(k))]
    if bad:
        raise NotifyError(f"extra_labels has invalid label name(s) {', '.join(map(repr, bad))}: letters, digits, _.")
    if p.get("webhook_format") not in FORMATS:
        raise NotifyError(f"webhook_format must be one of {', '.join(FORMATS)}, got {p.get('webhook_format')!r}.")
    if p.get("webhook_url") and p["webhook_format"] == "pagerduty" and not p.get("webhook_routing_key"):
        raise NotifyError("webhook_routing_key (the PagerDuty integration key) is required with webhook_format=pagerduty.")


def build_alerts(p: dict, now: datetime, secrets=()) -> list[dict]:
    """The Alertmanager API v2 alerts (one per table, one without a table label when none is named), scrubbed."""
    state = p["state"]
    starts = now
    ends = now if state == "resolved" else now + timedelta(seconds=int(p["ends_after_seconds"]))
    reason = str(p.get("reason") or "").strip()
    evidence = [str(e) for e in (p.get("evidence") or []) if str(e).strip()][:MAX_EVIDENCE]
    base = {**{str(k): str(v) for k, v in (p.get("extra_labels") or {}).items()},
            "alertname": ALERT_NAME, "severity": p.get("severity") or "critical", "stack": p.get("stack") or "k2",
            "host": p["host"], "scenario": scenario_label(p.get("scenario"))}
    summary = (f"K2 offload remediation escalated on {p['host']}: {reason}" if state == "firing"
               else f"K2 offload escalation on {p['host']} resolved")
    annotations = {
        "summary": summary,
        "reason": RULE_TEXT.get(reason, reason) if reason else "",
        "escalation_rule": reason,
        "description": _clip(str(p.get("message") or ""), MAX_ANNOTATION),
        "evidence": _clip("\n".join(evidence), MAX_ANNOTATION),
        "report": str(p.get("report") or ""),
        "run_id": str(p.get("run_id") or ""),
        "runbook": p.get("runbook") or RUNBOOK,
    }
    annotations = {k: v for k, v in annotations.items() if v}
    tables = [str(t) for t in (p.get("tables") or []) if str(t).strip()] or [None]
    alerts = []
    for table in dict.fromkeys(tables):
        labels = dict(base, **({"table": table} if table else {}))
        alert = {"labels": labels, "annotations": dict(annotations), "startsAt": rfc3339(starts), "endsAt": rfc3339(ends)}
        if p.get("generator_url"):
            alert["generatorURL"] = p["generator_url"]
        alerts.append(alert)
    return scrub(alerts, secrets)


def slack_payload(alerts: list[dict], state: str) -> dict:
    """Slack incoming-webhook JSON: a one-line `text` (notifications) and one mrkdwn section with the details."""
    first = alerts[0]
    labels, notes = first["labels"], first["annotations"]
    tables = ", ".join(a["labels"]["table"] for a in alerts if a["labels"].get("table")) or "-"
    icon = ":rotating_light:" if state == "firing" else ":white_check_mark:"
    lines = [f"{icon} *{notes['summary']}*",
             f"*Rule:* {notes.get('reason', '-')}",
             f"*Host:* {labels['host']}  *Stack:* {labels['stack']}  *Scenario:* {labels['scenario']}  *Tables:* {tables}"]
    if notes.get("description"):
        lines.append(f"*Escalation:* {notes['description']}")
    if notes.get("evidence"):
        lines.append("*Evidence:*\n```" + notes["evidence"].replace("```", "'''") + "```")
    if notes.get("report"):
        lines.append(f"*Report:* {notes['report']}")
    if notes.get("run_id"):
        lines.append(f"*Run:* {notes['run_id']}")
    return {"text": notes["summary"],
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), SLACK_TEXT_LIMIT)}}]}


def pagerduty_payload(alerts: list[dict], state: str, routing_key: str | None) -> dict:
    """PagerDuty Events API v2 (POST https://events.pagerduty.com/v2/enqueue): one event per escalation, deduplicated
    per stack and host, so that state=resolved resolves the incident it opened."""
    first = alerts[0]
    labels, notes = first["labels"], first["annotations"]
    event = {"routing_key": routing_key or "", "event_action": "trigger" if state == "firing" else "resolve",
             "dedup_key": f"{ALERT_NAME}/{labels['stack']}/{labels['host']}"}
    if state == "firing":
        event["payload"] = {
            "summary": _clip(notes["summary"], PAGERDUTY_SUMMARY_LIMIT), "source": labels["host"],
            "severity": labels["severity"] if labels["severity"] in ("critical", "error", "warning", "info") else "critical",
            "timestamp": first["startsAt"], "component": "iceberg-offload", "group": labels["stack"],
            "class": notes.get("escalation_rule", ""),
            "custom_details": {"scenario": labels["scenario"],
                               "tables": [a["labels"]["table"] for a in alerts if a["labels"].get("table")],
                               **{k: v for k, v in notes.items() if k not in ("summary",)}}}
    return event


def generic_payload(alerts: list[dict], state: str) -> dict:
    """Alertmanager's own webhook shape (version 4), for receivers that already read Alertmanager webhooks."""
    first = alerts[0]
    common = {k: v for k, v in first["labels"].items() if all(a["labels"].get(k) == v for a in alerts)}
    return {"version": "4", "status": state, "receiver": "k2-offload-notify", "groupKey": f"{ALERT_NAME}/{common.get('host')}",
            "commonLabels": common, "commonAnnotations": first["annotations"],
            "alerts": [{"status": state, **a} for a in alerts]}


def webhook_payload(fmt: str, alerts: list[dict], state: str, routing_key: str | None = None) -> dict:
    if fmt == "slack":
        return slack_payload(alerts, state)
    if fmt == "pagerduty":
        return pagerduty_payload(alerts, state, routing_key)
    return generic_payload(alerts, state)


def shown(payload: dict) -> dict:
    """A webhook payload as it may be returned and logged: its routing key masked."""
    return {**payload, "routing_key": MASK} if payload.get("routing_key") else payload
