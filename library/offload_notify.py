#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: K2 offload automation contributors
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
---
module: offload_notify
short_description: Escalate to people - post the remediation's escalation to Alertmanager (API v2) and a webhook
description:
  - The runbook's Escalation section ("Escalate to Engineering Lead if resolution takes more than 30 minutes, the root
    cause is unclear, code or infrastructure changes are needed, or data loss is suspected") as a notification that
    reaches people, not only a failed playbook.
  - Posts alert C(IcebergOffloadRemediationEscalated) to Alertmanager's C(POST /api/v2/alerts), one per table, with
    labels C(alertname), C(severity), C(stack), C(host), C(scenario), C(table) and annotations C(summary),
    C(reason) (the runbook rule), C(escalation_rule), C(description) (the escalation line), C(evidence), C(report)
    (where the report is), C(run_id) and C(runbook). Alertmanager's routes then page whoever they page.
  - Optionally posts the same escalation to a webhook - Slack (incoming webhook), PagerDuty Events API v2, or a
    generic receiver (Alertmanager's own webhook JSON).
  - The notification never carries a secret - every value of O(secrets) (and O(url_password),
    O(webhook_routing_key)) is masked wherever it appears, verbatim, URL-encoded or JSON-escaped, and so are
    C(password=...)-style assignments, URL userinfo (C(scheme://user:pass@host)) and Authorization headers in text.
  - O(state=resolved) posts the same labels with C(endsAt) now, which resolves the alert (and the PagerDuty
    incident) once the escalation is handled.
  - Every request is bounded by O(timeout). An endpoint that does not take the notification fails the task with one
    line naming it (the Slack and webhook URL paths, which carry their secret, are never shown); the result still
    says what was delivered where.
version_added: "1.2.0"
author: K2 offload automation
attributes:
  check_mode:
    support: full
    details: Nothing is sent; the payloads that would be sent are returned.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: Alertmanager deduplicates by label set, so posting the same escalation again updates the alert (new
      C(startsAt)/C(endsAt) and annotations) instead of adding one; a webhook receives every post.
extends_documentation_fragment:
  - offload.http_api
options:
  api_url:
    description:
      - Base URL of Alertmanager (without C(/api/v2)); a path prefix is kept. Empty - do not post to Alertmanager
        (webhook only).
      - If not set, the environment variable E(ALERTMANAGER_URL) is used.
    type: str
    default: http://127.0.0.1:9093
  url_username:
    description: User for HTTP basic authentication to Alertmanager.
    type: str
  url_password:
    description: Password for HTTP basic authentication to Alertmanager; masked in every payload.
    type: str
  state:
    description: C(firing) escalates; C(resolved) closes the escalation with the same labels (C(endsAt) now).
    type: str
    choices: [firing, resolved]
    default: firing
  host:
    description: The K2 Docker host remediated (label C(host); C(inventory_hostname)).
    type: str
    required: true
  stack:
    description: The K2 stack (label C(stack)), for routes that tell several stacks apart.
    type: str
    default: k2
  tables:
    description: The affected tables; one alert per table (label C(table)), one without a C(table) label when empty.
    type: list
    elements: str
    default: []
  scenario:
    description:
      - The runbook scenario(s) or root cause(s) (label C(scenario)) - a list (C([2]), C([1, 4]),
        C(['root_cause:prefect_db'])), one value, or diagnosis entries; joined with commas, C(none) when empty.
    type: raw
  severity:
    description: Label C(severity).
    type: str
    default: critical
  reason:
    description:
      - The runbook escalation rule - C(not resolved within 30 minutes), C(root cause is unclear),
        C(code or infrastructure change needed), C(data loss suspected) (remediate.yml's C(escalation_rule)).
        The annotation C(reason) spells it as the runbook does. Required with O(state=firing).
    type: str
  message:
    description: The escalation line (remediate.yml's C(ESCALATE ...)), annotation C(description).
    type: str
  evidence:
    description: Evidence lines (annotation C(evidence), the first 20).
    type: list
    elements: str
    default: []
  report:
    description: Where the report is (a path on the control node, or a URL), annotation C(report).
    type: str
  run_id:
    description: The run that escalated (C(awx-job-<id>), C(cli-<pid>)), annotation C(run_id).
    type: str
  runbook:
    description: Annotation C(runbook).
    type: str
    default: docs/operations/runbooks/iceberg-offload-failure.md (Escalation)
  ends_after_seconds:
    description:
      - C(endsAt) = now + this, 60 to 604800. Alertmanager resolves an alert at its C(endsAt), and one posted without
        C(endsAt) after its C(resolve_timeout) (5 min by default) because it expects the sender to re-post it as
        Prometheus does - a one-shot escalation would page "resolved" minutes later while nobody has acted. 24 h
        keeps it open for a whole on-call day; O(state=resolved) closes it earlier.
    type: int
    default: 86400
  generator_url:
    description: C(generatorURL) of the alert (e.g. the AWX job's URL).
    type: str
  extra_labels:
    description: More labels (e.g. C(team)); the module's own labels win.
    type: dict
    default: {}
  webhook_url:
    description: Also post to this webhook (Slack incoming webhook, PagerDuty C(https://events.pagerduty.com/v2/enqueue),
      or a generic receiver). Never shown beyond its scheme and host.
    type: str
  webhook_format:
    description: C(slack), C(pagerduty) (Events API v2) or C(generic) (Alertmanager's webhook JSON).
    type: str
    choices: [generic, slack, pagerduty]
    default: generic
  webhook_routing_key:
    description: The PagerDuty integration (routing) key; required with O(webhook_format=pagerduty).
    type: str
  webhook_headers:
    description: Extra HTTP headers for the webhook (e.g. C(Authorization)); never returned.
    type: dict
    default: {}
  secrets:
    description: Values that must never leave in a notification (passwords, tokens) - masked wherever they appear.
    type: list
    elements: str
    default: []
notes:
  - Alertmanager answers C(200) with an empty body when it accepts alerts; any other answer is a failure.
seealso:
  - module: offload_plan
  - module: offload_incident
"""

EXAMPLES = r"""
---
- name: Escalate to people (runbook Escalation)
  offload_notify:
    api_url: "{{ k2_alertmanager_url }}"
    host: "{{ inventory_hostname }}"
    tables: "{{ remediate_report.tables }}"
    scenario: "{{ remediate_report.remediated_scenarios + remediate_report.root_causes }}"
    reason: "{{ remediate_report.escalation_rule }}"
    message: "{{ remediate_report.escalation }}"
    evidence: "{{ remediate_plan.diagnosis_titles }}"
    report: "{{ remediation_report_path }}"
    run_id: "{{ remediate_run_id }}"
    secrets:
      - "{{ k2_postgres_password | default('') }}"
      - "{{ k2_clickhouse_password | default('') }}"
  delegate_to: localhost
  when: remediate_escalation is defined

- name: Page through PagerDuty as well
  offload_notify:
    host: "{{ inventory_hostname }}"
    reason: data loss suspected
    message: "{{ remediate_escalation }}"
    webhook_url: https://events.pagerduty.com/v2/enqueue
    webhook_format: pagerduty
    webhook_routing_key: "{{ vault_pagerduty_routing_key }}"

- name: Close the escalation once recovered
  offload_notify:
    host: "{{ inventory_hostname }}"
    state: resolved
    tables: "{{ remediate_report.tables }}"
    scenario: "{{ remediate_report.remediated_scenarios + remediate_report.root_causes }}"
"""

RETURN = r"""
---
alerts:
  description: The alerts posted (or that would be, in check mode) to Alertmanager, secrets masked.
  returned: always
  type: list
  elements: dict
  sample:
    - labels: {alertname: IcebergOffloadRemediationEscalated, severity: critical, stack: k2, host: k2-lab,
               scenario: "3", table: bronze_trades_binance}
      annotations: {summary: "K2 offload remediation escalated on k2-lab: code or infrastructure change needed",
                    reason: "Requires code changes or infrastructure modifications (e.g. the JDBC driver missing: ...)",
                    escalation_rule: code or infrastructure change needed, description: "ESCALATE (...) ...",
                    report: /srv/k2/reports/remediate-k2-lab.json, run_id: awx-job-812, runbook: "docs/..."}
      startsAt: "2026-11-29T10:05:58.123Z"
      endsAt: "2026-11-30T10:05:58.123Z"
webhook_payload:
  description: The webhook's JSON (routing key masked), or null without O(webhook_url).
  returned: always
  type: dict
sent:
  description: Per destination, whether it took the notification; null when not configured or in check mode.
  returned: always
  type: dict
  sample: {alertmanager: true, webhook: null}
endpoints:
  description: The destinations as they may be shown (no userinfo, no webhook path).
  returned: always
  type: dict
  sample: {alertmanager: "http://127.0.0.1:9093/api/v2/alerts", webhook: "https://hooks.slack.com/..."}
errors:
  description: One line per destination that did not take the notification.
  returned: always
  type: list
  elements: str
  sample: ["Alertmanager http://127.0.0.1:9093/api/v2/alerts did not take the alert: [Errno 111] Connection refused"]
starts_at:
  description: C(startsAt) of the alerts.
  returned: always
  type: str
ends_at:
  description: C(endsAt) of the alerts (O(ends_after_seconds) from now; now with O(state=resolved)).
  returned: always
  type: str
msg:
  description: One line for the operator - where the escalation or resolution was posted.
  returned: always
  type: str
  sample: "posted the escalation to http://127.0.0.1:9093/api/v2/alerts"
"""

import json
from datetime import datetime, timezone
from http.client import HTTPException
from urllib.error import HTTPError, URLError

from ansible.module_utils.basic import AnsibleModule, env_fallback
from ansible.module_utils.offload_common import api_url_problem, first_line
from ansible.module_utils.offload_notify import (
    NotifyError,
    build_alerts,
    check_inputs,
    shown,
    webhook_payload,
)
from ansible.module_utils.offload_redact import endpoint, scrub_text, secret_variants
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url


def post(url: str, body, p: dict, name: str, variants: list[str], headers: dict | None = None,
         auth: bool = False) -> None:
    """POST body as JSON; NotifyError with one line naming the endpoint when it is not taken (any non-2xx answer)."""
    kwargs = {"url_username": p["url_username"], "url_password": p["url_password"],
              "force_basic_auth": bool(p["url_username"])} if auth else {}
    try:
        resp = open_url(url, data=json.dumps(body), method="POST", timeout=p["timeout"],
                        validate_certs=p["validate_certs"], use_netrc=False, http_agent="ansible-offload_notify",
                        headers={"Content-Type": "application/json", **(headers or {})}, **kwargs)
        resp.read()
    except HTTPError as exc:
        try:
            detail = exc.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            detail = []
        why = f"HTTP {exc.code} {exc.reason}" + (f": {detail[0][:300]}" if detail else "")
        raise NotifyError(f"{name} did not take the notification: {scrub_text(why, variants)}") from None
    except (TimeoutError, URLError, UrlsConnectionError, HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None)
        why = first_line(reason) if isinstance(reason, BaseException) else str(reason or first_line(exc))
        raise NotifyError(f"{name} did not take the notification: {scrub_text(why, variants)}") from None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "api_url": {"type": "str", "default": "http://127.0.0.1:9093", "fallback": (env_fallback, ["ALERTMANAGER_URL"])},
            "url_username": {"type": "str"},
            "url_password": {"type": "str", "no_log": True},
            "timeout": {"type": "int", "default": 10},
            "validate_certs": {"type": "bool", "default": True},
            "state": {"type": "str", "default": "firing", "choices": ["firing", "resolved"]},
            "host": {"type": "str", "required": True},
            "stack": {"type": "str", "default": "k2"},
            "tables": {"type": "list", "elements": "str", "default": []},
            "scenario": {"type": "raw"},
            "severity": {"type": "str", "default": "critical"},
            "reason": {"type": "str"},
            "message": {"type": "str"},
            "evidence": {"type": "list", "elements": "str", "default": []},
            "report": {"type": "str"},
            "run_id": {"type": "str"},
            "runbook": {"type": "str", "default": "docs/operations/runbooks/iceberg-offload-failure.md (Escalation)"},
            "ends_after_seconds": {"type": "int", "default": 86400},
            "generator_url": {"type": "str"},
            "extra_labels": {"type": "dict", "default": {}},
            "webhook_url": {"type": "str", "no_log": True},
            "webhook_format": {"type": "str", "default": "generic", "choices": ["generic", "slack", "pagerduty"]},
            "webhook_routing_key": {"type": "str", "no_log": True},
            "webhook_headers": {"type": "dict", "default": {}, "no_log": True},
            "secrets": {"type": "list", "elements": "str", "default": [], "no_log": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    api_url = (p["api_url"] or "").strip()
    try:
        check_inputs(p)
        if api_url and (problem := api_url_problem(api_url)):
            raise NotifyError(f"api_url {scrub_text(api_url, [])!r} {problem}: expected e.g. http://127.0.0.1:9093.")
        if p["webhook_url"] and (problem := api_url_problem(p["webhook_url"])):
            raise NotifyError(f"webhook_url {problem} (its value is not shown: it may carry a secret).")
        if not api_url and not p["webhook_url"]:
            raise NotifyError("nothing to notify: set api_url (Alertmanager) and/or webhook_url.")
    except NotifyError as exc:
        module.fail_json(msg=str(exc))

    secrets = [s for s in (p["secrets"] or []) if s] + [
        v for v in (p["url_password"], p["webhook_routing_key"], p["webhook_url"],
                    *(str(h) for h in (p["webhook_headers"] or {}).values())) if v]
    variants = secret_variants(secrets)
    now = datetime.now(timezone.utc)
    alerts = build_alerts(p, now, secrets)
    hook = webhook_payload(p["webhook_format"], alerts, p["state"], p["webhook_routing_key"]) if p["webhook_url"] else None
    am_url = api_url.rstrip("/") + "/api/v2/alerts" if api_url else None
    result = {"changed": True, "alerts": alerts, "webhook_payload": shown(hook) if hook else None,
              "sent": {"alertmanager": None, "webhook": None}, "errors": [],
              "endpoints": {"alertmanager": endpoint(am_url) if am_url else None,
                            "webhook": endpoint(p["webhook_url"], hide_path=True) if p["webhook_url"] else None},
              "starts_at": alerts[0]["startsAt"], "ends_at": alerts[0]["endsAt"]}
    what = "escalation" if p["state"] == "firing" else "resolution"
    if module.check_mode:
        module.exit_json(msg=f"check mode: would post the {what} to "
                             f"{' and '.join(v for v in result['endpoints'].values() if v)}", **result)

    for key, url, body, name, extra in (
            ("alertmanager", am_url, alerts, f"Alertmanager {result['endpoints']['alertmanager']}", {}),
            ("webhook", p["webhook_url"], hook, f"webhook ({p['webhook_format']}) {result['endpoints']['webhook']}",
             p["webhook_headers"])):
        if not url:
            continue
        try:
            post(url, body, p, name, variants, headers=extra, auth=key == "alertmanager")
            result["sent"][key] = True
        except NotifyError as exc:
            result["sent"][key] = False
            result["errors"].append(str(exc))
    delivered = [result["endpoints"][k] for k, ok in result["sent"].items() if ok]
    if result["errors"]:
        result["changed"] = bool(delivered)
        module.fail_json(msg="; ".join(result["errors"]) + (f" (delivered to {', '.join(delivered)})" if delivered
                                                            else " (delivered nowhere)"), **result)
    module.exit_json(msg=f"posted the {what} to {' and '.join(delivered)}", **result)


if __name__ == "__main__":
    main()
