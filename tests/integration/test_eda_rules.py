"""The alert-driven loop's rules, replayed without the lab: Alertmanager v4 notifications (tests/fixtures/alertmanager)
go through the rulebooks' own filters, conditions and throttle in a real ansible-rulebook (.venv-eda, Java 17).
Only the source (webhook -> eda.builtin.generic replaying the fixtures) and the action (remediation -> a debug line
with a marker and the extra vars the remediation would get) are swapped, so the test sees exactly which alerts
would start a remediation, and with which variables."""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml
from hostile_alerts import clean_alert, notification
from offload_alert_event import PATTERNS, VARIABLES

ROOT = Path(__file__).resolve().parents[2]
RULEBOOK = ROOT / ".venv-eda" / "bin" / "ansible-rulebook"
RULEBOOKS = ROOT / "extensions" / "eda" / "rulebooks"
VARIANTS = {"cli": RULEBOOKS / "iceberg-offload-cli.yml", "controller": RULEBOOKS / "iceberg-offload-controller.yml"}
FIXTURES = ROOT / "tests" / "fixtures" / "alertmanager"
MARKER = "K2-EDA-REMEDIATE"
REFUSED = "K2-EDA-REFUSED"
# The stacks of the replay's inventory (k2_eda_stacks, what scripts/loop.sh reads from k2_docker_hosts).
STACKS = ["k2-lab", "k2-lab-b"]
# The alert's identity each rule hands to the remediation: the runbook's alert names its table; the early-warning
# IcebergOffloadMetricsDown (a stopped worker, which the runbook's alert cannot see) names the scrape job.
ALERT_VARS = ("k2_alert_name", "k2_alert_table", "k2_alert_job", "k2_alert_starts_at", "k2_alert_fingerprint")

# The notifications in the order Alertmanager would send them, and the remediations they must start, in order.
REPLAY = [
    "firing-one-table.json",  # binance fires: remediate
    "firing-one-table.json",  # Alertmanager repeats it: throttled (same alert and stack within once_within)
    "firing-other-stack.json",  # the same table's alert from stack k2-lab-b: its own run, limited to k2-lab-b
    "firing-two-tables.json",  # kraken and coinbase in one group: each table is remediated
    "resolved.json",  # silver_trades resolved: nothing, though this table never fired (not the throttle)
    "mixed-group.json",  # group firing: ohlcv_1h fires (remediate), ohlcv_5m is resolved (nothing)
    "other-alertname.json",  # IcebergOffloadLagCritical for ohlcv_1m: another runbook, nothing
    "metrics-down.json",  # the worker's metrics are down: remediate (the diagnosis finds the tables)
    "metrics-down.json",  # repeated: throttled (same scrape job)
    "metrics-down-resolved.json",  # resolved: nothing
    "firing-unknown-stack.json",  # a stack the inventory does not have: refused, logged
    "firing-no-stack.json",  # no k2_stack label (a Prometheus without the external label): refused, logged
]
EXPECTED = [("bronze_trades_binance", "k2-lab"), ("bronze_trades_binance", "k2-lab-b"), ("bronze_trades_kraken", "k2-lab"),
            ("bronze_trades_coinbase", "k2-lab"), ("ohlcv_1h", "k2-lab")]
# Last, a notification whose every field carries Jinja (tests/hostile_alerts.py): only its alert whose forwarded
# fields are clean starts a remediation (for this table, not throttled by the ones above).
HOSTILE_CLEAN_TABLE = "ohlcv_1d"


def _load(path: Path) -> dict:
    rulesets = yaml.safe_load(path.read_text())
    assert len(rulesets) == 1 and len(rulesets[0]["rules"]) == 3, f"{path.name}: one ruleset with three rules"
    return rulesets[0]


def _remediations(ruleset: dict) -> list[dict]:
    """The two rules that start a remediation (the third refuses an alert for an unknown stack)."""
    rules = [r for r in ruleset["rules"] if "debug" not in r["action"]]
    assert len(rules) == 2
    return rules


def _action_vars(rule: dict) -> dict:
    """The extra vars the rule's action hands to the remediation, as templates."""
    action = rule["action"]
    if "run_playbook" in action:
        assert action["run_playbook"]["name"] == "playbooks/remediate.yml"
        return action["run_playbook"]["extra_vars"]
    job = action["run_job_template"]
    assert (job["name"], job["organization"]) == ("k2-offload-remediate", "K2")
    return job["job_args"]["extra_vars"]


def _without_action(ruleset: dict) -> dict:
    ruleset = copy.deepcopy(ruleset)
    for rule in ruleset["rules"]:
        rule.pop("action")
    return ruleset


def _alert(fixture: str, table: str) -> dict:
    alerts = json.loads((FIXTURES / fixture).read_text())["alerts"]
    return next(a for a in alerts if a["labels"].get("table") == table)


def test_the_two_variants_differ_only_in_the_action():
    cli, controller = (_load(p) for p in VARIANTS.values())
    assert _without_action(cli) == _without_action(controller)
    assert cli["rules"][2] == controller["rules"][2]  # the refusal, action included
    for cli_rule, controller_rule in zip(_remediations(cli), _remediations(controller)):
        alert_vars = {k: v for k, v in _action_vars(cli_rule).items() if k in ALERT_VARS}
        assert {"k2_alert_name", "k2_alert_starts_at", "k2_alert_fingerprint"} <= alert_vars.keys()
        assert _action_vars(controller_rule) == alert_vars


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_conditions_match_every_forwarded_field_with_the_playbook_s_own_pattern(variant):
    """The remediation refuses an alert field that is not in Alertmanager's form (module_utils/offload_alert_event.py):
    the rules match the same patterns, so the loop never starts a run that the playbook would refuse."""
    field_of = {"labels.table": "table", "labels.job": "job", "startsAt": "started_at", "fingerprint": "fingerprint"}
    for rule in _remediations(_load(VARIANTS[variant])):
        assert "and event.labels.k2_stack in vars.k2_eda_stacks" in rule["condition"]  # only a stack it has
        patterns = dict(re.findall(r'event\.(\S+) is match\("\^(.*?)\$"\)', rule["condition"]))
        forwarded = {re.search(r"event\.(\S+) }}", v).group(1) for k, v in _action_vars(rule).items() if k in VARIABLES}
        # The alert name is compared for equality in the condition; every other forwarded field is matched.
        assert forwarded - {"labels.alertname"} == set(patterns), (rule["name"], patterns)
        assert {field_of[f]: p for f, p in patterns.items()} == {field_of[f]: PATTERNS[field_of[f]][0] for f in patterns}


def test_the_webhook_listens_on_loopback_unless_told_otherwise():
    source = _load(VARIANTS["cli"])["sources"][0]["eda.builtin.webhook"]
    host, port = (jinja2.Environment().from_string(source[k]) for k in ("host", "port"))
    # An empty host would make the webhook bind every interface (its own default): it must count as unset.
    for given in ({}, {"k2_eda_webhook_host": ""}, {"k2_eda_webhook_host": None}):
        assert host.render(given) == "127.0.0.1", given
    assert port.render({}) == "5000" and port.render({"k2_eda_webhook_port": 5123}) == "5123"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_webhook_wants_a_token_and_each_run_is_limited_to_the_alert_s_stack(variant):
    """Without the token the webhook answers 401 (test_eda_loop posts both ways); an unset token fails closed (it
    cannot be rendered, so no request gets in). The stack comes from the alert's k2_stack label into meta.hosts,
    which ansible-rulebook passes as the run's limit (run_playbook) or the job's limit (run_job_template); the
    throttle keys on the stack and the alert's fingerprint."""
    ruleset = _load(VARIANTS[variant])
    source = ruleset["sources"][0]
    token = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(source["eda.builtin.webhook"]["token"])
    assert token.render({"k2_eda_webhook_token": "s" * 32}) == "s" * 32
    with pytest.raises(jinja2.UndefinedError):
        token.render({})
    assert {"eda.builtin.insert_hosts_to_meta": {"host_path": "labels.k2_stack", "log_error": False}} in source["filters"]
    for rule in _remediations(ruleset):
        assert rule["throttle"]["group_by_attributes"] == ["event.labels.k2_stack", "event.fingerprint"]
        assert "limit" not in str(rule["action"])  # meta.hosts is the limit; a literal one would override it


def _replay_rulebook(tmp_path: Path, hostile: dict) -> Path:
    """Both variants as rulesets of one rulebook (one JVM): their source replays the fixtures, then `hostile`, as the
    webhook would queue them ({payload, meta}) through the same filters; their action prints the marker and the
    rendered vars."""
    payload = tmp_path / "notifications.yml"
    notifications = [json.loads((FIXTURES / name).read_text()) for name in REPLAY] + [hostile]
    payload.write_text(yaml.safe_dump([{"payload": n, "meta": {"endpoint": "endpoint", "headers": {}}}
                                       for n in notifications]))
    rulesets = []
    for variant, path in VARIANTS.items():
        ruleset = _load(path)
        source = ruleset["sources"][0]
        assert source.pop("eda.builtin.webhook"), "the source is Alertmanager's webhook"
        source["eda.builtin.generic"] = {"payload_file": str(payload), "shutdown_after": 1}
        for rule in ruleset["rules"]:
            if "debug" in rule["action"]:
                rule["action"] = {"debug": {"msg": f"{REFUSED} variant={variant}"}}
                continue
            shown = " ".join(f"{k}={v}" for k, v in _action_vars(rule).items() if k in ALERT_VARS)
            rule["action"] = {"debug": {"msg": f"{MARKER} variant={variant} {shown} stack={{{{ event.meta.hosts }}}}"}}
        ruleset["name"] = f"{ruleset['name']} [{variant}]"
        rulesets.append(ruleset)
    replay = tmp_path / "replay.yml"
    replay.write_text(yaml.safe_dump(rulesets, sort_keys=False))
    (tmp_path / "vars.yml").write_text(yaml.safe_dump({"k2_eda_stacks": STACKS}))
    return replay


@pytest.mark.skipif(not RULEBOOK.exists(), reason=".venv-eda/bin/ansible-rulebook absent: scripts/bootstrap.sh installs it")
def test_replayed_notifications_start_exactly_the_expected_remediations(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    hostile = notification(markers, HOSTILE_CLEAN_TABLE)
    replay = _replay_rulebook(tmp_path, hostile)
    # ansible-rulebook asks ansible-galaxy about collections: the project venv's, as make loop-up runs it.
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}
    command = [str(RULEBOOK), "--rulebook", str(replay), "--vars", str(tmp_path / "vars.yml")]
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    started = {variant: [] for variant in VARIANTS}
    refused = {variant: 0 for variant in VARIANTS}
    for line in output.splitlines():
        if line.startswith(MARKER):
            fields = dict(re.findall(r"(\S+)=(\S+)", line))
            fields["stack"] = fields["stack"].strip("[]'\"")
            started[fields.pop("variant")].append(fields)
        elif line.startswith(REFUSED):
            refused[re.search(r"variant=(\S+)", line)[1]] += 1
    fixture_of = {("bronze_trades_binance", "k2-lab"): "firing-one-table.json",
                  ("bronze_trades_binance", "k2-lab-b"): "firing-other-stack.json",
                  ("bronze_trades_kraken", "k2-lab"): "firing-two-tables.json",
                  ("bronze_trades_coinbase", "k2-lab"): "firing-two-tables.json", ("ohlcv_1h", "k2-lab"): "mixed-group.json"}
    expected = [{"k2_alert_name": "IcebergOffloadConsecutiveFailures", "k2_alert_table": table,
                 "k2_alert_starts_at": _alert(fixture_of[table, stack], table)["startsAt"],
                 "k2_alert_fingerprint": _alert(fixture_of[table, stack], table)["fingerprint"], "stack": stack}
                for table, stack in EXPECTED]
    down = json.loads((FIXTURES / "metrics-down.json").read_text())["alerts"][0]
    expected.append({"k2_alert_name": "IcebergOffloadMetricsDown", "k2_alert_job": "iceberg-scheduler",
                     "k2_alert_starts_at": down["startsAt"], "k2_alert_fingerprint": down["fingerprint"], "stack": "k2-lab"})
    clean = clean_alert(hostile)
    expected.append({"k2_alert_name": "IcebergOffloadConsecutiveFailures", "k2_alert_table": HOSTILE_CLEAN_TABLE,
                     "k2_alert_starts_at": clean["startsAt"], "k2_alert_fingerprint": clean["fingerprint"],
                     "stack": "k2-lab"})
    for variant, remediations in started.items():
        assert remediations == expected, f"{variant}: {output[-3000:]}"
    # The unknown stack, the missing label and the hostile alert whose k2_stack carries Jinja.
    assert refused == {variant: 3 for variant in VARIANTS}, output[-3000:]
    assert not list(markers.iterdir()), "the rule engine rendered an alert's field"
