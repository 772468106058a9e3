#!/usr/bin/env bash
# Start the machine's own dockerd if no engine answers. Logs to /var/log/k2-lab-dockerd.log.
set -euo pipefail
if docker version >/dev/null 2>&1; then exit 0; fi
echo "dockerd: starting"
nohup dockerd >/var/log/k2-lab-dockerd.log 2>&1 &
for _ in $(seq 1 100); do
  docker version >/dev/null 2>&1 && exit 0
  sleep 0.2
done
echo "dockerd did not answer within 20 s; see /var/log/k2-lab-dockerd.log" >&2
exit 1
