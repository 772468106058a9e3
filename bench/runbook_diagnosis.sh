#!/usr/bin/env bash
# The runbook's diagnosis commands (steps 1-4), one after another, as an engineer would paste them,
# adapted to the lab where the lab differs (no clickhouse-client, no ping: curl on the HTTP interface).
# `make bench` times this next to playbooks/diagnose.yml.
set -u
PROM=${K2_LAB_PORT_PROMETHEUS:-9090}
CH=${K2_LAB_PORT_CLICKHOUSE:-8123}
curl -s "http://127.0.0.1:$PROM/api/v1/alerts" | jq '.data.alerts[] | select(.labels.alertname=="IcebergOffloadConsecutiveFailures")'
docker ps --filter name=k2-prefect-worker --format "table {{.Names}}\t{{.Status}}"
docker exec k2-prefect-worker bash -c "COLUMNS=200 PREFECT_API_URL=http://prefect-server:4200/api prefect flow-run ls --limit 10"
docker logs k2-prefect-worker --tail=100 2>&1 | grep -E "failed|error|timeout|crash"
curl -s -u "default:${K2_LAB_CLICKHOUSE_PASSWORD:-k2-lab-clickhouse}" "http://127.0.0.1:$CH/" --data-binary "SELECT 1"
curl -s -u "default:${K2_LAB_CLICKHOUSE_PASSWORD:-k2-lab-clickhouse}" "http://127.0.0.1:$CH/" --data-binary "SELECT version()"
docker ps | grep spark-iceberg
docker exec k2-spark-iceberg ps aux | grep java
docker exec k2-prefect-db psql -U prefect -d prefect -c "\dt"
docker exec k2-prefect-db psql -U prefect -d prefect -c "SELECT COUNT(*) FROM offload_watermarks"
docker exec k2-spark-iceberg curl -s http://k2-clickhouse:8123/ping
true
