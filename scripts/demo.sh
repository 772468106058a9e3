#!/usr/bin/env bash
# The main job on the local K2 twin: a healthy offload cycle, the runbook's incident reproduced
# (ClickHouse down -> offload fails 3x -> IcebergOffloadConsecutiveFailures), the diagnosis run by
# Ansible against the lab, the automated remediation (playbooks/remediate.yml: start ClickHouse, test from the
# Spark container, one manual offload, a verifying flow run, the truth check proving no row was lost or doubled);
# then the closed loop: the worker dies and the alert-driven loop (ansible-rulebook, make loop-up) heals it with
# no human command.
set -euo pipefail
cd "$(dirname "$0")/.."
LAB=(.venv/bin/python lab/labctl.py)
step() { printf '\n=== %s\n' "$*"; }

step "1. Healthy offload cycle"
"${LAB[@]}" cycle
"${LAB[@]}" verify-data

step "2. Incident: ClickHouse stops; the next offload fails three times"
"${LAB[@]}" fault clickhouse-stopped
"${LAB[@]}" cycle --tables bronze_trades_binance || true
for _ in $(seq 1 30); do
  if curl -s 127.0.0.1:"${K2_LAB_PORT_PROMETHEUS:-9090}"/api/v1/alerts | grep -q '"alertname":"IcebergOffloadConsecutiveFailures".*"state":"firing"'; then
    echo "alert IcebergOffloadConsecutiveFailures is firing"; break
  fi
  sleep 2
done

step "3. Diagnosis by Ansible (playbooks/diagnose.yml against the lab inventory): names the runbook scenario"
.venv/bin/ansible-playbook playbooks/diagnose.yml

step "4. Remediation by Ansible (playbooks/remediate.yml, acting on the report of step 3): verified recovery"
.venv/bin/ansible-playbook playbooks/remediate.yml -e use_report=true

step "5. Independent truth check (labctl verify-data)"
"${LAB[@]}" verify-data
"${LAB[@]}" clear >/dev/null

step "6. The closed loop: ansible-rulebook listens for Alertmanager (make loop-up)"
scripts/loop.sh up
trap 'scripts/loop.sh down >/dev/null' EXIT
loop_log=.lab/eda-loop.log
offset=$(stat -c %s "$loop_log" 2>/dev/null || echo 0)
new_log() { tail -c +"$((offset + 1))" "$loop_log" 2>/dev/null; }

step "7. Incident without a human: the worker is OOM-killed (no runs, so no errors: IcebergOffloadMetricsDown fires)"
"${LAB[@]}" fault worker-oom
alert_seen="" started_seen=""
for _ in $(seq 1 150); do
  if [ -z "$alert_seen" ] && curl -s 127.0.0.1:"${K2_LAB_PORT_ALERTMANAGER:-9093}"/api/v2/alerts \
      | grep -q 'IcebergOffloadMetricsDown'; then
    alert_seen=1; echo "alert IcebergOffloadMetricsDown fired; Alertmanager posts it to the rulebook's webhook"
  fi
  if [ -z "$started_seen" ] && new_log | grep -q "PLAY \[Remediate the Iceberg offload\]"; then
    started_seen=1; echo "the rulebook started playbooks/remediate.yml (log: $loop_log)"
  fi
  if new_log | grep -q "RECOVERED in\|ESCALATE"; then break; fi
  sleep 2
done
echo "its summary:"
new_log | grep -o '"\(RECOVERED\|HEALTHY\|IN PROGRESS\|verified\|did\|incident record\)[^"]*"' | tail -10 || true

step "8. The incident record (reports/incidents.jsonl) and its Markdown report"
tail -1 reports/incidents.jsonl | .venv/bin/python -c 'import json,sys; r=json.loads(sys.stdin.read()); print("outcome:", r["outcome"]["status"], "| MTTR:", r["mttr"]["human"], "from", r["mttr"]["from"], "| alert started", r["times"]["alert_started_at"])'
ls -t reports/incident-*.md | head -1
"${LAB[@]}" verify-data
