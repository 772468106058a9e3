"""Escalation that reaches people (module_utils/offload_notify.py, offload_redact.py, library/offload_notify.py): the
Alertmanager and webhook payloads, the scrubbing of secrets, and the module through main() with a fake HTTP layer
(check mode sends nothing; a refused send is one line naming the endpoint, never the webhook's secret path)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.error import HTTPError, URLError

import module_harness
import offload_notify as n
import offload_plan
import offload_redact as r
import pytest
from module_harness import load_module

NOW = datetime(2026, 11, 29, 10, 5, 58, 123456, tzinfo=timezone.utc)
M = r.MASK


# ---------------------------------------------------------------- scrubbing

@pytest.mark.parametrize("text,expected", [
    ("postgresql+asyncpg://prefect:k2pw@prefect-db:5432/prefect", f"postgresql+asyncpg://prefect:{M}@prefect-db:5432/prefect"),
    ("clone https://ghp_abcdef@github.com/x", f"clone https://{M}@github.com/x"),
    ("PREFECT_DB_PASSWORD=abc123 next", f"PREFECT_DB_PASSWORD={M} next"),
    ("password: 'two words' end", f"password: '{M}' end"),
    ('{"password": "p@ss", "user": "u"}', f'{{"password": "{M}", "user": "u"}}'),
    ("--clickhouse-password=x1,y", f"--clickhouse-password={M},y"),
    ("api_key=K1&token=T2", f"api_key={M}&token={M}"),
    ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: {M}"),
    ("curl -H 'Authorization: Bearer eyJhbGciOi.x.y' url", f"curl -H 'Authorization: {M}' url"),
    ("sent Bearer abcdefgh12345678 along", f"sent Bearer {M} along"),
    # no credential here: left alone
    ('FATAL:  password authentication failed for user "prefect"', 'FATAL:  password authentication failed for user "prefect"'),
    ("watermark bronze_trades_binance: status failed", "watermark bronze_trades_binance: status failed"),
    ("run by oncall@ops-1 on http://127.0.0.1:9093/api/v2/alerts", "run by oncall@ops-1 on http://127.0.0.1:9093/api/v2/alerts"),
])
def test_credential_patterns_are_masked_in_text(text, expected):
    assert r.scrub(text) == expected


def test_given_secrets_are_masked_in_every_form_they_take():
    secret = "p@ss w/\"rd"
    values = {"plain": f"x {secret} y", "url": "https://u:p%40ss%20w%2F%22rd@h/", "form": "q=p%40ss+w%2F%22rd",
              "json": json.dumps({"k": secret}), "nested": [{"deep": [secret]}], secret: "as a key"}
    out = json.dumps(r.scrub(values, [secret]))
    for form in (secret, "p%40ss", "p@ss", 'w/\\"rd'):
        assert form not in out
    assert out.count(M) >= 6


def test_values_of_credential_keys_are_masked_whatever_they_are():
    data = {"login_password": "a", "Token": 12345, "secrets": ["s1", "s2"], "headers": {"X-Api-Key": "k"},
            "password_set": True, "token": None, "tables": ["bronze_trades_binance"], "seconds": 7}
    assert r.scrub(data) == {"login_password": M, "Token": M, "secrets": [M, M], "headers": {"X-Api-Key": M},
                             "password_set": True, "token": None, "tables": ["bronze_trades_binance"], "seconds": 7}


def test_longer_secret_is_masked_whole_before_a_shorter_one_inside_it():
    assert r.scrub("k2-lab-prefect and k2-lab", ["k2-lab", "k2-lab-prefect"]) == f"{M} and {M}"


def test_numbers_equal_to_a_secret_are_masked():
    assert r.scrub({"pin": 4711, "n": 4712, "flag": True}, ["4711"]) == {"pin": M, "n": 4712, "flag": True}


@pytest.mark.parametrize("url,hide,expected", [
    ("http://user:pw@127.0.0.1:9093/api/v2/alerts?x=1", False, "http://127.0.0.1:9093/api/v2/alerts"),
    ("https://hooks.slack.com/services/T000/B000/XXXX", True, "https://hooks.slack.com/..."),
    ("https://events.pagerduty.com", True, "https://events.pagerduty.com"),
    ("http://[::1]:9093/", False, "http://[::1]:9093/"),
])
def test_endpoints_are_shown_without_credentials(url, hide, expected):
    assert r.endpoint(url, hide_path=hide) == expected


# ---------------------------------------------------------------- payloads

def params(**kw) -> dict:
    base = {"state": "firing", "host": "k2-lab", "stack": "k2-prod", "tables": ["bronze_trades_binance", "silver_trades"],
            "scenario": [3], "severity": "critical", "reason": offload_plan.RULE_CHANGE,
            "message": "ESCALATE (code or infrastructure change needed): JDBC driver missing: /opt/spark/jars/x.jar",
            "evidence": ["JDBC driver missing: /opt/spark/jars/clickhouse-jdbc-0.4.6-all.jar"],
            "report": "/srv/k2/reports/remediate-k2-lab.json", "run_id": "awx-job-812", "runbook": None,
            "ends_after_seconds": 86400, "generator_url": None, "extra_labels": {}, "timeout": 10,
            "webhook_url": None, "webhook_format": "generic", "webhook_routing_key": None}
    base.update(kw)
    return base


def test_one_alert_per_table_with_the_runbook_labels_and_annotations():
    alerts = n.build_alerts(params(), NOW)
    assert [a["labels"] for a in alerts] == [
        {"alertname": "IcebergOffloadRemediationEscalated", "severity": "critical", "stack": "k2-prod", "host": "k2-lab",
         "scenario": "3", "table": t} for t in ("bronze_trades_binance", "silver_trades")]
    notes = alerts[0]["annotations"]
    assert notes["reason"] == ("Requires code changes or infrastructure modifications (e.g. the JDBC driver missing: "
                               "rebuild the image)")
    assert notes["escalation_rule"] == "code or infrastructure change needed"
    assert notes["description"].startswith("ESCALATE (code or infrastructure change needed)")
    assert notes["evidence"] == "JDBC driver missing: /opt/spark/jars/clickhouse-jdbc-0.4.6-all.jar"
    assert notes["report"] == "/srv/k2/reports/remediate-k2-lab.json" and notes["run_id"] == "awx-job-812"
    assert notes["runbook"] == "docs/operations/runbooks/iceberg-offload-failure.md (Escalation)"
    assert alerts[0]["startsAt"] == "2026-11-29T10:05:58.123Z" and alerts[0]["endsAt"] == "2026-11-30T10:05:58.123Z"
    assert "generatorURL" not in alerts[0]


@pytest.mark.parametrize("rule", n.RULES)
def test_every_runbook_rule_has_its_runbook_wording(rule):
    notes = n.build_alerts(params(reason=rule), NOW)[0]["annotations"]
    assert notes["reason"] == n.RULE_TEXT[rule] and notes["summary"].endswith(rule)


def test_no_table_means_one_alert_without_a_table_label():
    alerts = n.build_alerts(params(tables=[], scenario=None), NOW)
    assert len(alerts) == 1 and "table" not in alerts[0]["labels"] and alerts[0]["labels"]["scenario"] == "none"


def test_resolved_ends_now_and_own_labels_beat_extra_labels():
    alerts = n.build_alerts(params(state="resolved", extra_labels={"team": "platform", "alertname": "X"}), NOW)
    assert alerts[0]["startsAt"] == alerts[0]["endsAt"] == "2026-11-29T10:05:58.123Z"
    assert alerts[0]["labels"]["alertname"] == "IcebergOffloadRemediationEscalated"
    assert alerts[0]["labels"]["team"] == "platform"
    assert alerts[0]["annotations"]["summary"] == "K2 offload escalation on k2-lab resolved"


@pytest.mark.parametrize("value,label", [
    ([2], "2"), ([1, 4, 4], "1,4"), (["prefect_db"], "prefect_db"), ("unknown", "unknown"), (None, "none"), ([], "none"),
    ([{"scenario": 2, "title": "x"}, {"component": "prefect_db"}], "2,root_cause:prefect_db"),
])
def test_scenario_label(value, label):
    assert n.scenario_label(value) == label


def test_secrets_in_any_field_never_reach_the_payloads():
    p = params(message="ESCALATE: psql postgresql://prefect:k2-lab-prefect@db failed", run_id="cli-1",
               evidence=["CLICKHOUSE_PASSWORD=k2-lab-clickhouse", "plain k2-lab-clickhouse"],
               report="https://admin:hunter2@reports.example/r.json", extra_labels={"team": "k2-lab-prefect"})
    alerts = n.build_alerts(p, NOW, secrets=["k2-lab-prefect", "k2-lab-clickhouse"])
    payloads = [alerts] + [n.webhook_payload(f, alerts, "firing", "RK") for f in n.FORMATS]
    text = json.dumps(payloads)
    for secret in ("k2-lab-prefect", "k2-lab-clickhouse", "hunter2"):
        assert secret not in text
    assert alerts[0]["annotations"]["report"] == f"https://admin:{M}@reports.example/r.json"


def test_slack_payload_is_an_incoming_webhook_message_within_slack_limits():
    alerts = n.build_alerts(params(evidence=["e" * 3000, "with ``` fence"]), NOW)
    payload = n.slack_payload(alerts, "firing")
    assert payload["text"] == "K2 offload remediation escalated on k2-lab: code or infrastructure change needed"
    block = payload["blocks"][0]
    assert block["type"] == "section" and block["text"]["type"] == "mrkdwn"
    assert len(block["text"]["text"]) <= 3000
    assert "*Tables:* bronze_trades_binance, silver_trades" in block["text"]["text"]


def test_pagerduty_payload_is_events_v2_and_resolves_its_own_incident():
    alerts = n.build_alerts(params(), NOW)
    trigger = n.pagerduty_payload(alerts, "firing", "RKEY")
    assert (trigger["routing_key"], trigger["event_action"]) == ("RKEY", "trigger")
    assert trigger["dedup_key"] == "IcebergOffloadRemediationEscalated/k2-prod/k2-lab"
    assert {k: trigger["payload"][k] for k in ("source", "severity", "timestamp", "group", "class")} == {
        "source": "k2-lab", "severity": "critical", "timestamp": "2026-11-29T10:05:58.123Z", "group": "k2-prod",
        "class": "code or infrastructure change needed"}
    assert trigger["payload"]["custom_details"]["tables"] == ["bronze_trades_binance", "silver_trades"]
    resolve = n.pagerduty_payload(n.build_alerts(params(state="resolved"), NOW), "resolved", "RKEY")
    assert resolve == {"routing_key": "RKEY", "event_action": "resolve", "dedup_key": trigger["dedup_key"]}
    assert n.shown(trigger)["routing_key"] == M and trigger["routing_key"] == "RKEY"


def test_generic_payload_is_alertmanagers_webhook_shape():
    payload = n.generic_payload(n.build_alerts(params(), NOW), "firing")
    assert payload["version"] == "4" and payload["status"] == "firing" and len(payload["alerts"]) == 2
    assert "table" not in payload["commonLabels"] and payload["commonLabels"]["host"] == "k2-lab"
    assert all(a["status"] == "firing" for a in payload["alerts"])


@pytest.mark.parametrize("change,message", [
    ({"reason": " "}, "reason is required to escalate"),
    ({"host": ""}, "host must name the K2 Docker host"),
    ({"ends_after_seconds": 30}, "ends_after_seconds must be between 60 and 604800, got 30."),
    ({"timeout": 0}, "timeout must be between 1 and 120 seconds, got 0."),
    ({"extra_labels": {"bad-name": "x"}}, "extra_labels has invalid label name(s) 'bad-name'"),
    ({"webhook_url": "https://events.pagerduty.com/v2/enqueue", "webhook_format": "pagerduty"},
     "webhook_routing_key (the PagerDuty integration key) is required"),
])
def test_bad_inputs_are_one_line_naming_the_option(change, message):
    with pytest.raises(n.NotifyError) as err:
        n.check_inputs(params(**change))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_resolving_needs_no_reason():
    n.check_inputs(params(state="resolved", reason=None))


# ---------------------------------------------------------------- the module through main()

@pytest.fixture(scope="module")
def mod():
    return load_module("offload_notify")


class FakeHTTP:
    """open_url stand-in: records each request; `answers` maps a URL prefix to an exception to raise."""

    def __init__(self, answers=None):
        self.calls, self.answers = [], answers or {}

    def __call__(self, url, data=None, method=None, timeout=None, headers=None, **kw):
        self.calls.append({"url": url, "body": json.loads(data), "method": method, "timeout": timeout,
                           "headers": headers, **kw})
        for prefix, exc in self.answers.items():
            if url.startswith(prefix):
                raise exc

        class Response:
            def read(self):
                return b""
        return Response()


def run_main(mod, monkeypatch, args: dict, check_mode: bool, http: FakeHTTP) -> dict:
    monkeypatch.setattr(mod, "open_url", http)
    return module_harness.run_main(mod, monkeypatch, args, check_mode)


SLACK = "https://hooks.slack.com/services/T0/B0/SECRETPATH"
ARGS = {"api_url": "http://127.0.0.1:9093", "host": "k2-lab", "tables": ["bronze_trades_binance"], "scenario": [2],
        "reason": "root cause is unclear", "message": "ESCALATE (root cause is unclear): x",
        "evidence": ["dsn postgresql://prefect:pg-secret@db/prefect"], "secrets": ["pg-secret"], "timeout": 7}


def test_module_check_mode_sends_nothing_and_returns_the_payloads(mod, monkeypatch):
    http = FakeHTTP()
    result = run_main(mod, monkeypatch, {**ARGS, "webhook_url": SLACK, "webhook_format": "slack"}, True, http)
    assert http.calls == []
    assert result["changed"] is True and result["sent"] == {"alertmanager": None, "webhook": None}
    assert result["alerts"][0]["labels"]["scenario"] == "2" and result["webhook_payload"]["blocks"]
    assert result["endpoints"] == {"alertmanager": "http://127.0.0.1:9093/api/v2/alerts",
                                   "webhook": "https://hooks.slack.com/..."}
    assert "pg-secret" not in json.dumps(result) and "SECRETPATH" not in json.dumps(result)


def test_module_posts_to_alertmanager_v2_and_the_webhook(mod, monkeypatch):
    http = FakeHTTP()
    result = run_main(mod, monkeypatch, {**ARGS, "webhook_url": SLACK, "webhook_format": "slack",
                                         "url_username": "am", "url_password": "am-pass"}, False, http)
    assert result["sent"] == {"alertmanager": True, "webhook": True} and result["errors"] == []
    am, hook = http.calls
    assert (am["url"], am["method"], am["timeout"]) == ("http://127.0.0.1:9093/api/v2/alerts", "POST", 7)
    assert am["headers"]["Content-Type"] == "application/json"
    assert (am["url_username"], am["url_password"], am["force_basic_auth"]) == ("am", "am-pass", True)
    assert am["body"] == result["alerts"] and isinstance(am["body"], list)
    assert hook["url"] == SLACK and "url_password" not in hook  # Alertmanager's credentials stay with Alertmanager
    assert "pg-secret" not in json.dumps([am["body"], hook["body"]])
    assert result["msg"] == "posted the escalation to http://127.0.0.1:9093/api/v2/alerts and https://hooks.slack.com/..."


def test_module_refused_send_is_one_line_naming_the_endpoint(mod, monkeypatch):
    http = FakeHTTP({"http://127.0.0.1:9093": URLError(ConnectionRefusedError(111, "Connection refused"))})
    result = run_main(mod, monkeypatch, ARGS, False, http)
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"] == ("Alertmanager http://127.0.0.1:9093/api/v2/alerts did not take the notification: "
                             "[Errno 111] Connection refused (delivered nowhere)")
    assert result["sent"] == {"alertmanager": False, "webhook": None}


def test_module_webhook_error_never_shows_its_path_and_says_what_was_delivered(mod, monkeypatch):
    error = HTTPError(SLACK, 403, "Forbidden", {}, None)
    error.read = lambda: f"invalid_token for {SLACK}".encode()  # a receiver echoing the URL back
    http = FakeHTTP({"https://hooks.slack.com": error})
    result = run_main(mod, monkeypatch, {**ARGS, "webhook_url": SLACK, "webhook_format": "slack"}, False, http)
    assert result["failed"] is True and result["changed"] is True  # Alertmanager did take it
    assert result["msg"].startswith("webhook (slack) https://hooks.slack.com/... did not take the notification: "
                                    "HTTP 403 Forbidden: invalid_token for ")
    assert result["msg"].endswith("(delivered to http://127.0.0.1:9093/api/v2/alerts)")
    assert "SECRETPATH" not in json.dumps(result) and "\n" not in result["msg"]


def test_module_timeout_is_reported_not_raised(mod, monkeypatch):
    http = FakeHTTP({"http://127.0.0.1:9093": TimeoutError("timed out")})
    result = run_main(mod, monkeypatch, ARGS, False, http)
    assert result["failed"] is True and "did not take the notification: timed out" in result["msg"]


@pytest.mark.parametrize("change,message", [
    ({"api_url": "127.0.0.1:9093"}, "api_url '127.0.0.1:9093' must start with http:// or https://"),
    ({"api_url": "http://am:am-pass@127.0.0.1:9093/?x=1"},
     "api_url 'http://am:********@127.0.0.1:9093/?x=1' must not carry a query string"),
    ({"api_url": "", "webhook_url": None}, "nothing to notify: set api_url (Alertmanager) and/or webhook_url."),
    ({"webhook_url": "hooks.slack.com/services/T0/B0/SECRETPATH"},
     "webhook_url must start with http:// or https:// (its value is not shown: it may carry a secret)."),
    ({"reason": None}, "reason is required to escalate"),
])
def test_module_bad_input_fails_before_sending(mod, monkeypatch, change, message):
    http = FakeHTTP()
    result = run_main(mod, monkeypatch, {**ARGS, **change}, False, http)
    assert result["failed"] is True and result["msg"].startswith(message) and http.calls == []
    assert "SECRETPATH" not in result["msg"]


def test_module_resolve_posts_ends_at_now(mod, monkeypatch):
    http = FakeHTTP()
    result = run_main(mod, monkeypatch, {**ARGS, "state": "resolved", "reason": None}, False, http)
    body = http.calls[0]["body"][0]
    assert body["startsAt"] == body["endsAt"] == result["ends_at"]
    assert datetime.fromisoformat(result["ends_at"].replace("Z", "+00:00")) - datetime.now(timezone.utc) < timedelta(
        seconds=60)
