#!/usr/bin/env bash
# The main job on the local K2 twin: a healthy offload cycle, the runbook's incident reproduced
# (ClickHouse down -> offload fails 3x -> IcebergOffloadConsecutiveFailures), the diagnosis run by
# Ansible against the lab, the automated remediation (playbooks/remediate.yml: start ClickHouse, test from the
# Spark container, one manual offload, a verifying flow run, the truth check proving no row was lost or doubled).
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
