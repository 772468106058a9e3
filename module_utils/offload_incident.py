# -*- coding: utf-8 -*-
# PRIVATE to this project's modules (library/offload_incident): the runbook's Post-Incident section. One incident
# record from what remediate.yml has at its end (its remediation report, the diagnosis it acted on), the Markdown
# report on-call pastes into the team's incident log, a post-mortem skeleton when the outage exceeded an hour, and a
# JSONL incident log that two runs can append to at once. Imported as ansible.module_utils.offload_incident.
from __future__ import annotations

import fcntl
import json
import os
import re
from datetime import datetime, timedelta, timezone

try:
    from ansible.module_utils.offload_common import parse_utc, replace_file, to_json_safe
    from ansible.module_utils.offload_plan import RULE_DATA_LOSS
    from ansible.module_utils.offload_redact import scrub
except ImportError:  # unit tests import module_utils/ directly
    from offload_plan import RULE_DATA_LOSS
    from offload_redact import scrub

    from offload_common import parse_utc, replace_file, to_json_safe

SCHEMA_VERSION = 1
KIND = "k2-offload-incident"
ALERT_NAME = "IcebergOffloadConsecutiveFailures"
POSTMORTEM_AFTER_SECONDS = 3600  # runbook: "Post-mortem (if extended outage >1 hour)"
NEW_FAILURE_MODE = "new failure mode: update the runbook"
RESOLVED = "recovered"
# Outcomes of remediate.yml that were an incident handled by this run (the others changed nothing).
HANDLED = ("recovered", "escalated")
NO_MTTR = {
    "escalated": "not recovered: escalated, the incident is still open",
    "in_progress": "another remediation holds the stack; its own record carries the MTTR",
    "healthy": "nothing was remediated: the diagnosis found nothing to fix",
    "alerting_blind": "nothing was remediated: only monitoring is down",
    "check": "check mode: nothing was changed",
}
MAX_EVIDENCE = 12
MAX_LINE = 500
_ESCALATION_RULE = re.compile(r"^ESCALATE \(([^)]+)\)")
_STEP_KEY = re.compile(r"^(?:Scenario (?P<n>\d)|(?P<word>orchestration|verification|monitoring))", re.I)


class IncidentError(ValueError):
    """Bad input or an unusable incident log: one line naming the object."""


def iso(when: datetime | None) -> str | None:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def human_duration(seconds) -> str:
    if seconds is None:
        return "unknown"
    seconds = int(round(float(seconds)))
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    if minutes:
        return f"{sign}{minutes} min {secs:02d} s"
    return f"{sign}{secs} s"


def _line(text) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_LINE else text[:MAX_LINE - 3] + "..."


def _lines(items, limit: int = MAX_EVIDENCE) -> list[str]:
    return [_line(i) for i in (items or [])[:limit] if str(i).strip()]


def _time(value, what: str) -> datetime | None:
    """An optional caller-given time; a value that is not one is an error, never silently dropped."""
    if value in (None, ""):
        return None
    parsed = parse_utc(value)
    if parsed is None:
        raise IncidentError(f"{what} {value!r} is not an ISO-8601 time (e.g. 2026-11-29T10:05:29Z).")
    return parsed


def incident_id(host: str, detected: datetime, run_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{host}-{detected.strftime('%Y%m%dT%H%M%SZ')}-{run_id or 'run'}")
    return safe.strip("._")[:150] or "incident"


def run_identity(remediation: dict) -> dict:
    """CLI or AWX: remediate.yml's run id (awx-job-<id>, cli-<pid>, or remediate_run_id) and, when this run held the
    lock, who ran it and from which control node."""
    run_id = str(remediation.get("run_id") or "")
    kind, ident = "custom", None
    if match := re.fullmatch(r"awx-job-(\d+)", run_id):
        kind, ident = "awx", {"awx_job_id": int(match.group(1))}
    elif match := re.fullmatch(r"cli-(\d+)", run_id):
        kind, ident = "cli", {"pid": int(match.group(1))}
    out = {"run_id": run_id or None, "kind": kind, **(ident or {}),
           "check_mode": bool(remediation.get("check_mode"))}
    lock = remediation.get("lock") or {}
    holder = lock.get("holder") or {}
    if str(lock.get("outcome", "")).startswith("acquired") and holder.get("run_id") == run_id:
        out.update(who=holder.get("who"), control_node=holder.get("control_node"))
    return out


def alert_start(diagnosis: dict, alert_name: str, given: datetime | None) -> dict:
    """When the alert started. Given (Alertmanager's startsAt, e.g. from the EDA event) wins; else Prometheus' view in
    the diagnosis: a firing alert started at activeAt + the rule's `for` (what Alertmanager receives as startsAt);
    a pending one has not fired yet."""
    facts = ((diagnosis.get("facts") or {}).get("alerts") or {})
    alerts = [a for a in facts.get("alerts") or [] if (a.get("labels") or {}).get("alertname", alert_name) == alert_name]
    hold = (facts.get("rule") or {}).get("duration")
    per_table, active, fired = {}, [], []
    for alert in alerts:
        since = parse_utc(alert.get("active_at"))
        if since is None:
            continue
        active.append(since)
        start = None
        if alert.get("state") == "firing":
            start = since + timedelta(seconds=float(hold)) if hold is not None else since
        if start:
            fired.append(start)
        table = (alert.get("labels") or {}).get("table")
        if table:
            per_table[table] = {"state": alert.get("state"), "active_since": iso(since), "started_at": iso(start)}
    if given:
        started, source = given, "given (Alertmanager startsAt)"
    elif fired:
        started = min(fired)
        source = ("Prometheus activeAt + the rule's for" if hold is not None
                  else "Prometheus activeAt (the rule's for unknown)")
    else:
        started, source = None, None
    return {"name": alert_name, "started_at": iso(started), "source": source,
            "active_since": iso(min(active)) if active else None, "tables": per_table}


def diagnosis_summary(diagnosis: dict, remediation: dict) -> dict:
    root_causes = [{"component": c.get("component"), "title": _line(c.get("title") or c.get("component")),
                    "evidence": _lines(c.get("evidence")), "consequences": _lines(c.get("consequences"), 6)}
                   for c in diagnosis.get("root_causes") or []]
    if not root_causes:  # a remediation report alone names the components only
        root_causes = [{"component": c, "title": c, "evidence": [], "consequences": []}
                       for c in remediation.get("root_causes") or []]
    scenarios = diagnosis.get("scenarios") or remediation.get("diagnosis") or []
    return {"status": diagnosis.get("status") or remediation.get("diagnosis_status"),
            "generated_at": iso(parse_utc(diagnosis.get("generated_at"))),
            "root_causes": root_causes,
            "scenarios": [{"scenario": s.get("scenario"), "key": s.get("key"), "title": _line(s.get("title") or ""),
                           "tables": list(s.get("tables") or []), "evidence": _lines(s.get("evidence"))}
                          for s in scenarios],
            "blind": [{"component": b.get("component"), "cause": _line(b.get("cause") or "")}
                      for b in diagnosis.get("blind") or remediation.get("blind") or []],
            "failing_tables": list(diagnosis.get("failing_tables") or []),
            "causes": diagnosis.get("causes") or {}}


def new_failure_mode(summary: dict) -> dict:
    """The runbook's "if new failure mode: update this runbook": failures that no known scenario or root cause
    explains (triage's `unknown`)."""
    unknown = [s for s in summary["scenarios"] if s.get("key") == "unknown" or s.get("scenario") == "unknown"]
    flagged = bool(unknown) or summary.get("status") == "unknown"
    evidence = [e for s in unknown for e in s["evidence"]] or (
        ["diagnosis status unknown: failures are seen but no rule explains them"] if flagged else [])
    return {"flag": flagged, "note": NEW_FAILURE_MODE if flagged else None, "evidence": evidence[:MAX_EVIDENCE]}


def data_loss(diagnosis: dict, verification: dict | None, escalation_rule: str | None) -> dict:
    """TTL headroom per table (how long the hot tier keeps rows not yet offloaded) and the truth check (hot vs cold)
    -> the verdict, most severe first: loss_suspected, gap, duplicates, none_found, not_checked."""
    headroom = {t: v for t, v in (diagnosis.get("ttl_headroom_seconds") or {}).items() if v is not None}
    minimum = min(headroom.values()) if headroom else diagnosis.get("min_ttl_headroom_seconds")
    truth = [{k: t.get(k) for k in ("table", "hot_rows", "cold_rows", "missing", "duplicated", "error")}
             for t in (verification or {}).get("truth") or []]
    findings = []
    if minimum is not None and float(minimum) <= 0:
        gone = sorted(t for t, v in headroom.items() if float(v) <= 0)
        findings.append(("loss_suspected", f"no TTL headroom left for {', '.join(gone) or 'a table'}: ClickHouse may "
                                           "already have deleted rows the cold tier never got"))
    missing = [t for t in truth if (t.get("missing") or 0) > 0]
    if missing:
        findings.append(("gap", "rows in the hot tier missing from the cold tier: "
                                + ", ".join(f"{t['table']} {t['missing']}" for t in missing)
                                + (f"; repair before the TTL deletes them (headroom {human_duration(minimum)})"
                                   if minimum is not None and float(minimum) > 0 else "")))
    doubled = [t for t in truth if (t.get("duplicated") or 0) > 0]
    if doubled:
        findings.append(("duplicates", "rows duplicated in the cold tier: "
                                       + ", ".join(f"{t['table']} {t['duplicated']}" for t in doubled)))
    if escalation_rule == RULE_DATA_LOSS and not findings:  # e.g. a watermark gap whose rows ClickHouse no longer holds
        findings.append(("loss_suspected", f"escalated: {RULE_DATA_LOSS}"))
    unchecked = [t["table"] for t in truth if t.get("error")]
    if unchecked:
        findings.append(("not_checked", f"truth check failed for {', '.join(map(str, unchecked))}"))
    if not findings:
        findings.append(("none_found", "truth check clean: 0 missing, 0 duplicated") if truth
                        else ("not_checked", "no truth check ran in this run"))
    order = ("loss_suspected", "gap", "duplicates", "not_checked", "none_found")
    verdict = min((f[0] for f in findings), key=order.index)
    return {"verdict": verdict, "findings": [f[1] for f in findings], "ttl_headroom_seconds": headroom,
            "min_ttl_headroom_seconds": minimum, "truth": truth}


def _step_key(name) -> str | None:
    match = _STEP_KEY.match(str(name or ""))
    if not match:
        return None
    return match.group("n") or {"orchestration": "root_cause"}.get(match.group("word").lower(),
                                                                   match.group("word").lower())


def actions(remediation: dict, step_times: list[dict]) -> list[dict]:
    """What each step did, in dispatch order, with the time its step started when remediate.yml recorded it
    (`step_times`: {step, at}); null otherwise (the report keeps no per-action time)."""
    started = {}
    for entry in step_times or []:
        key = _step_key(entry.get("step"))
        if key and key not in started:
            started[key] = (entry.get("step"), parse_utc(entry.get("at")))
    out = []
    for outcome in [o for o in remediation.get("outcomes") or [] if isinstance(o, dict)]:
        scenario = outcome.get("scenario")
        step, at = started.get(str(scenario), (None, None))
        details = {k: outcome[k] for k in ("stop_reason", "exit_code", "oom_killed", "manual_offload", "backup_file",
                                           "mitigations", "smoke_test") if outcome.get(k) not in (None, "", [])}
        out.append({"scenario": scenario, "step": step, "at": iso(at), "actions": _lines(outcome.get("actions"), 40),
                    "error_lines": _lines(outcome.get("error_lines"), 10), "details": details})
    return out


def verification_summary(verification: dict | None, step_times: list[dict]) -> dict | None:
    if not isinstance(verification, dict) or not verification:
        return None
    run = verification.get("flow_run") or {}
    at = next((parse_utc(e.get("at")) for e in step_times or [] if _step_key(e.get("step")) == "verification"), None)
    truth = verification.get("truth") or []
    return {"started_at": iso(at),
            "flow_run": {k: run.get(k) for k in ("name", "id", "state_type", "start_time", "end_time")},
            "crashed_runs": len(verification.get("crashed_runs") or []),
            "watermarks_after": verification.get("watermarks_after") or [],
            "truth_clean": bool(truth) and all(not t.get("error") and not t.get("missing") and not t.get("duplicated")
                                              for t in truth)}


def _event(at, event: str) -> dict:
    return {"at": iso(at) if isinstance(at, datetime) else at, "event": _line(event)}


def timeline(record: dict, lock: dict) -> list[dict]:
    """The incident's events, oldest first. Events without a known time (actions when remediate.yml recorded no step
    times) stay where they happened in the run, after the last timed event before them."""
    t, alert, diag = record["times"], record["alert"], record["diagnosis"]
    events = []
    if alert["active_since"]:
        events.append(_event(alert["active_since"], f"{alert['name']} pending (failures counted) for "
                                                    f"{', '.join(alert['tables']) or 'the stack'}"))
    if alert["started_at"]:
        events.append(_event(alert["started_at"], f"{alert['name']} fired ({alert['source']})"))
    if diag["generated_at"]:
        titles = [c["title"] for c in diag["root_causes"]] + [
            "unknown failure mode" if s["key"] == "unknown" else f"Scenario {s['scenario']}: {s['title']}"
            for s in diag["scenarios"]]
        events.append(_event(diag["generated_at"], f"diagnosis {diag['status']}: {'; '.join(titles) or 'nothing found'}"))
    events.append(_event(t["remediation_started_at"], f"remediation started (run {record['run']['run_id']})"))
    if lock.get("broken"):
        events.append(_event(lock["broken"].get("broken_at"), f"stale remediation lock broken: {lock['broken'].get('reason')}"))
    for step in record["actions"]:
        label = step["step"] or (f"Scenario {step['scenario']}" if isinstance(step["scenario"], int) else step["scenario"])
        if step["at"]:
            events.append(_event(step["at"], f"step started: {label}"))
        events += [_event(None, f"{label}: {a}") for a in step["actions"]]
    verification = record["verification"]
    if verification:
        run = verification["flow_run"]
        if verification["started_at"]:
            events.append(_event(verification["started_at"], "verification started"))
        if run.get("end_time"):
            events.append(_event(iso(parse_utc(run["end_time"])), f"verifying flow run {run.get('name')} "
                                                                  f"{run.get('state_type')}"))
    outcome = record["outcome"]
    end = outcome["escalation"] or f"{outcome['status'].upper()}: {outcome['message']}"
    events.append(_event(t["finished_at"], end))
    # Stable sort on the time of the event or, for an untimed one, of the last timed event before it.
    keyed, last = [], ""
    for position, event in enumerate(events):
        last = event["at"] or last
        keyed.append((last, position, event))
    return [e for _, _, e in sorted(keyed, key=lambda k: (k[0], k[1]))]


def build_record(remediation: dict, diagnosis: dict | None = None, now: datetime | None = None,
                 alert_name: str = ALERT_NAME, alert_started_at=None, detected_at=None, step_times=None,
                 postmortem_after_seconds: float = POSTMORTEM_AFTER_SECONDS, secrets=(), paths: dict | None = None) -> dict:
    """One incident record (schema SCHEMA_VERSION) from remediate.yml's report and the diagnosis it acted on."""
    if not isinstance(remediation, dict) or remediation.get("kind") != "k2-offload-remediation":
        kind = remediation.get("kind") if isinstance(remediation, dict) else type(remediation).__name__
        raise IncidentError(f"remediation must be remediate.yml's report (kind k2-offload-remediation), got {kind!r}.")
    diagnosis = diagnosis if isinstance(diagnosis, dict) else {}
    now = now or datetime.now(timezone.utc)
    host = str(remediation.get("host") or diagnosis.get("host") or "unknown")
    status = str(remediation.get("status") or "unknown")

    started = parse_utc(remediation.get("started_at"))
    elapsed = remediation.get("seconds_elapsed")
    finished = started + timedelta(seconds=float(elapsed)) if started and elapsed not in (None, "") else now
    diag_at = parse_utc(diagnosis.get("generated_at"))
    diag_started = diag_at - timedelta(seconds=float(diagnosis.get("duration_seconds") or 0)) if diag_at else None
    detected = _time(detected_at, "detected_at") or min(t for t in (started, diag_started, finished) if t)
    alert = alert_start(diagnosis, alert_name, _time(alert_started_at, "alert_started_at"))

    escalation = remediation.get("escalation")
    rule = remediation.get("escalation_rule")
    if escalation and not rule and (match := _ESCALATION_RULE.match(str(escalation))):
        rule = match.group(1)
    summary = diagnosis_summary(diagnosis, remediation)
    verification = remediation.get("verification") if isinstance(remediation.get("verification"), dict) else None

    start_from = "alert_start" if alert["started_at"] else "detection"
    start_at = parse_utc(alert["started_at"]) if alert["started_at"] else detected
    outage = (finished - start_at).total_seconds()
    resolved = status == RESOLVED
    mttr = {"seconds": round(outage, 1) if resolved else None, "from": start_from, "from_time": iso(start_at),
            "to_time": iso(finished) if resolved else None, "human": human_duration(outage) if resolved else None,
            "reason": None if resolved else NO_MTTR.get(status, f"not recovered ({status})")}
    due = status in HANDLED and outage > postmortem_after_seconds
    postmortem = {"due": due, "threshold_seconds": postmortem_after_seconds,
                  "reason": (f"outage {human_duration(outage)} from {start_from.replace('_', ' ')} exceeded "
                             f"{human_duration(postmortem_after_seconds)}" if due else
                             f"outage still open after {human_duration(outage)}: a post-mortem is due once it exceeds "
                             f"{human_duration(postmortem_after_seconds)}" if status == "escalated" else
                             f"outage {human_duration(outage)}, under {human_duration(postmortem_after_seconds)}"
                             if status in HANDLED else f"no outage handled by this run ({status})")}

    record = {
        "schema_version": SCHEMA_VERSION, "kind": KIND,
        "incident_id": incident_id(host, detected, str(remediation.get("run_id") or "")),
        "host": host, "recorded_at": iso(now),
        "run": run_identity(remediation),
        "outcome": {"status": status, "resolved": resolved, "message": _line(remediation.get("message") or ""),
                    "escalation": _line(escalation) if escalation else None, "escalation_rule": rule},
        "alert": alert,
        "times": {"alert_started_at": alert["started_at"], "detected_at": iso(detected),
                  "diagnosed_at": summary["generated_at"], "remediation_started_at": iso(started),
                  "finished_at": iso(finished), "resolved_at": iso(finished) if resolved else None},
        "mttr": mttr,
        "outage_seconds": round(outage, 1), "outage_open": not resolved and status in HANDLED,
        "diagnosis": summary,
        "tables": list(remediation.get("tables") or summary["failing_tables"]),
        "plan": {"message": _line(remediation.get("message") or ""),
                 "root_cause_steps": list(remediation.get("root_causes") or []),
                 "scenarios": list(remediation.get("remediated_scenarios") or [])},
        "actions": actions(remediation, step_times or []),
        "verification": verification_summary(verification, step_times or []),
        "data_loss": data_loss(diagnosis, verification, rule),
        "new_failure_mode": new_failure_mode(summary),
        "postmortem": postmortem,
        "reports": dict(paths or {}),
    }
    record["timeline"] = timeline(record, remediation.get("lock") or {})
    return scrub(to_json_safe(record), secrets)


# ---------------------------------------------------------------- Markdown

def md_code(text) -> str:
    """text as an inline code span, whatever backticks it holds (CommonMark: a longer fence, padded)."""
    text = " ".join(str(text).split())
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs) + 1 if runs else 1)
    pad = " " if text.startswith("`") or text.endswith("`") or runs else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_cell(text) -> str:
    """text for a table cell: one line, pipes and Markdown/HTML specials escaped."""
    text = " ".join(str(text if text is not None else "-").split())
    return re.sub(r"([\\`*\[\]<>|])", r"\\\1", text)


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return out


def _timeline_lines(record: dict) -> list[str]:
    return _table(["time (UTC)", "event"], [[e["at"] or "(during the run)", e["event"]] for e in record["timeline"]])


def _diagnosis_lines(record: dict) -> list[str]:
    diag, lines = record["diagnosis"], []
    for cause in diag["root_causes"]:
        lines.append(f"- **Root cause:** {md_cell(cause['title'])}")
        lines += [f"  - evidence: {md_code(e)}" for e in cause["evidence"]]
        lines += [f"  - consequence: {md_code(c)}" for c in cause["consequences"]]
    for s in diag["scenarios"]:
        name = "Unknown failure mode" if s["key"] == "unknown" else f"Scenario {s['scenario']}: {s['title']}"
        lines.append(f"- **{md_cell(name)}** (tables: {md_cell(', '.join(s['tables']) or 'all')})")
        lines += [f"  - evidence: {md_code(e)}" for e in s["evidence"]]
    for blind in diag["blind"]:
        lines.append(f"- **Blind:** {md_cell(blind['component'])} did not answer: {md_code(blind['cause'])}")
    return lines or ["- nothing found"]


def render_report(record: dict) -> str:
    """The incident report on-call pastes into the team's incident log."""
    o, t, mttr, loss = record["outcome"], record["times"], record["mttr"], record["data_loss"]
    run = record["run"]
    who = f" by {run['who']} on {run['control_node']}" if run.get("who") else ""
    mttr_text = (f"{mttr['human']} (from {mttr['from'].replace('_', ' ')}, {mttr['from_time']})" if mttr["seconds"]
                 is not None else f"n/a: {mttr['reason']}")
    lines = [f"# Incident {record['incident_id']}: Iceberg offload on {record['host']} - {o['status'].upper()}", ""]
    if record["new_failure_mode"]["flag"]:
        lines += [f"> **{NEW_FAILURE_MODE.capitalize()}.** No runbook scenario or root cause explains these failures:",
                  *[f"> - {md_code(e)}" for e in record["new_failure_mode"]["evidence"]], ""]
    lines += _table(["field", "value"], [
        ["Status", f"{o['status']}" + (f" - {o['escalation_rule']}" if o["escalation_rule"] else "")],
        ["Host", record["host"]],
        ["Run", f"{run['run_id']} ({run['kind']}){who}"],
        ["Alert started", f"{t['alert_started_at']} ({record['alert']['source']})" if t["alert_started_at"]
         else "unknown (no alert start available)"],
        ["Detected", t["detected_at"]],
        ["Finished", t["finished_at"]],
        ["MTTR", mttr_text],
        ["Tables", ", ".join(record["tables"]) or "-"],
        ["Data loss", f"{loss['verdict']}: {'; '.join(loss['findings'])}"],
        ["Post-mortem", "due: " + record["postmortem"]["reason"] if record["postmortem"]["due"] else "not due: "
         + record["postmortem"]["reason"]],
    ])
    lines += ["", "## Outcome", ""]
    lines.append(md_code(o["escalation"]) if o["escalation"] else md_cell(o["message"]))
    lines += ["", "## Diagnosis", "", f"Status: {md_cell(record['diagnosis']['status'])}", "", *_diagnosis_lines(record)]
    lines += ["", "## Timeline", "", *_timeline_lines(record)]
    lines += ["", "## Actions", ""]
    for step in record["actions"]:
        label = step["step"] or f"Scenario {step['scenario']}"
        lines.append(f"- **{md_cell(label)}**" + (f" (started {step['at']})" if step["at"] else ""))
        lines += [f"  - {md_cell(a)}" for a in step["actions"]] or ["  - nothing needed"]
        lines += [f"  - error line: {md_code(e)}" for e in step["error_lines"]]
    if not record["actions"]:
        lines.append("- none")
    lines += ["", "## Verification", ""]
    v = record["verification"]
    if v:
        run_v = v["flow_run"]
        lines.append(f"- flow run {md_cell(run_v.get('name'))}: {md_cell(run_v.get('state_type'))} "
                     f"(ended {md_cell(run_v.get('end_time'))})")
        lines.append("- truth check: " + ("clean (0 missing, 0 duplicated)" if v["truth_clean"] else
                                          "NOT clean (see the data-loss assessment)" if loss["truth"] else "not run"))
    else:
        lines.append("- not verified in this run")
    lines += ["", "## Data-loss assessment", "", f"Verdict: **{loss['verdict']}**", ""]
    lines += [f"- {md_cell(f)}" for f in loss["findings"]]
    tables = sorted(set(loss["ttl_headroom_seconds"]) | {t["table"] for t in loss["truth"] if t.get("table")})
    if tables:
        truth = {t["table"]: t for t in loss["truth"]}
        lines += ["", *_table(["table", "TTL headroom", "hot rows", "cold rows", "missing", "duplicated"], [
            [name, human_duration(loss["ttl_headroom_seconds"].get(name)), *(truth.get(name, {}).get(k, "-")
                                                                         for k in ("hot_rows", "cold_rows", "missing",
                                                                                   "duplicated"))]
            for name in tables])]
    reports = {k: v for k, v in record["reports"].items() if v}
    if reports:
        lines += ["", "## Reports", "", *[f"- {k.replace('_', ' ')}: {md_code(v)}" for k, v in reports.items()]]
    return "\n".join(lines) + "\n"


def render_postmortem(record: dict) -> str:
    """The runbook's post-mortem (outage > 1 h): timeline, root cause analysis, action items - the facts filled in,
    the analysis left to people."""
    o, loss = record["outcome"], record["data_loss"]
    items = []
    if record["new_failure_mode"]["flag"]:
        items.append("Update the runbook with this new failure mode (evidence in the diagnosis above)")
    if o["status"] == "escalated":
        items.append(f"Resolve the escalation: {o['escalation_rule'] or 'see the outcome'}")
    if loss["verdict"] in ("loss_suspected", "gap", "duplicates"):
        items.append(f"Repair the cold tier ({loss['verdict']}): " + "; ".join(loss["findings"]))
    items += ["Were alerts timely? Tune thresholds if needed (alert started "
              f"{record['times']['alert_started_at'] or 'unknown'}, detected {record['times']['detected_at']})",
              "Could this have been prevented? Add monitoring or automation",
              "Why did the outage exceed 1 hour?"]
    lines = [f"# Post-mortem (draft): {record['incident_id']}", "",
             f"Outage: {human_duration(record['outage_seconds'])} ({record['postmortem']['reason']}); status "
             f"{o['status']}; host {md_cell(record['host'])}; tables {md_cell(', '.join(record['tables']) or '-')}.", "",
             "## Summary", "", "_What happened, in two sentences._", "",
             "## Impact", "",
             f"- Cold tier stale from {record['mttr']['from_time']} to "
             f"{record['times']['resolved_at'] or 'not resolved yet'}",
             f"- Data loss: {loss['verdict']} - {md_cell('; '.join(loss['findings']))}", "",
             "## Timeline", "", *_timeline_lines(record), "", "_Add what people did outside the automation._", "",
             "## Root cause analysis", "", "Diagnosis:", "", *_diagnosis_lines(record), "",
             "- Why did it happen? _to fill_", "- Why was it not caught earlier? _to fill_", "",
             "## Action items", "", *_table(["#", "action", "owner", "due"],
                                              [[i + 1, item, "", ""] for i, item in enumerate(items)])]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- files

def ensure_dir(directory: str) -> None:
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise IncidentError(f"cannot create the directory {directory}: {exc.strerror}") from None


def append_record(path: str, record: dict, check_mode: bool = False) -> bool:
    """Append record as one JSON line to the incident log at path (mode 0600), unless a record with its
    incident_id is already there. Under flock() on the log itself, as one write() with O_APPEND: two runs
    appending at once never interleave, and never both append the same incident. True when appended (or, in
    check mode, when it would be)."""
    line = (json.dumps(record, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")
    marker = f'"incident_id": {json.dumps(record["incident_id"])}'.encode("ascii")
    if check_mode:
        try:
            with open(path, "rb") as handle:
                return not any(marker in existing for existing in handle)
        except FileNotFoundError:
            return True
        except OSError as exc:
            raise IncidentError(f"cannot read the incident log {path}: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise IncidentError(f"cannot open the incident log {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        with os.fdopen(os.dup(fd), "rb") as handle:
            if any(marker in existing for existing in handle):
                return False
            torn = False
            if size:
                handle.seek(size - 1)
                torn = handle.read(1) != b"\n"
        data = (b"\n" if torn else b"") + line  # a writer killed mid-line must not swallow this record
        written = 0
        while written < len(data):  # a regular file takes it at once; the loop only covers a short write
            written += os.write(fd, data[written:])
        os.fsync(fd)
        return True
    except OSError as exc:
        raise IncidentError(f"cannot append to the incident log {path}: {exc.strerror}") from None
    finally:
        os.close(fd)  # releases the flock


def write_text(path: str, text: str, check_mode: bool = False) -> bool:
    """Write text to path atomically (mode 0600) unless it already holds it. True when (it would be) written."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise IncidentError(f"cannot read {path}: {exc.strerror}") from None
    if check_mode:
        return True
    try:
        replace_file(path, text)
    except OSError as exc:
        raise IncidentError(f"cannot write {path}: {exc.strerror}") from None
    return True
