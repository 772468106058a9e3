#!/usr/bin/env bash
# The alert-driven loop against the lab (docs/eda.md): ansible-rulebook runs the CLI rulebook in the background, its
# webhook on 127.0.0.1:$K2_LAB_PORT_EDA (5000), where the lab's Alertmanager sends IcebergOffloadConsecutiveFailures;
# a firing alert runs playbooks/remediate.yml. Usage: scripts/loop.sh up|down|status (make loop-up / loop-down).
# Idempotent: `up` with a live loop and `down` without one do nothing. Pid file and log under .lab/.
set -euo pipefail
umask 077  # its vars carry the webhook's token, its log the alerts' contents: the operator's alone
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=${K2_LAB_STATE_DIR:-$ROOT/.lab}
PID_FILE=$STATE/eda-loop.pid
LOG=$STATE/eda-loop.log
VARS=$STATE/eda-loop-vars.yml
PORT=${K2_LAB_PORT_EDA:-5000}  # lab/config.py's port_eda: the port the lab's Alertmanager sends to
RULEBOOK=extensions/eda/rulebooks/iceberg-offload-cli.yml
INVENTORY=${K2_EDA_INVENTORY:-inventory/lab}
EDA_BIN=${EDA_VENV:-.venv-eda}/bin/ansible-rulebook
# The webhook's secret (at least 32 characters): the lab's (lab/stack.py makes it at lab-up), or the operator's.
TOKEN_FILE=${K2_EDA_WEBHOOK_TOKEN_FILE:-$STATE/secrets/eda-webhook.token}

log() { printf 'loop: %s\n' "$*"; }

# The pid of the running loop, if the pid file names a live process that is this loop (not a recycled pid).
loop_pid() {
  local pid
  pid=$(cat "$PID_FILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -q "ansible-rulebook .*$RULEBOOK" || return 1
  echo "$pid"
}

# Something listens on the port; with a pid: that process does (not another one that holds the port).
listening() { ss -Hltnp "sport = :$PORT" 2>/dev/null | grep -q "${1:+pid=$1,}"; }
# The port the running loop was started with (the environment may say another now).
loop_port() { sed -n 's/^k2_eda_webhook_port: //p' "$VARS" 2>/dev/null; }

up() {
  local pid
  if pid=$(loop_pid); then log "already running (pid $pid, webhook 127.0.0.1:$(loop_port), log $LOG)"; return 0; fi
  [ -x "$EDA_BIN" ] || { log "$EDA_BIN missing: run scripts/bootstrap.sh (make setup)" >&2; return 1; }
  if listening; then log "127.0.0.1:$PORT is taken by another process: free it or set K2_LAB_PORT_EDA" >&2; return 1; fi
  local token stacks
  token=$(cat "$TOKEN_FILE" 2>/dev/null) || { log "no webhook token at $TOKEN_FILE: make lab-up makes the lab's, or set K2_EDA_WEBHOOK_TOKEN_FILE" >&2; return 1; }
  [[ $token =~ ^[A-Za-z0-9._~+/=-]{32,}$ ]] || { log "the webhook token in $TOKEN_FILE must be 32 or more token characters" >&2; return 1; }
  # The stacks an alert may name (its k2_stack label): the inventory's k2_docker_hosts.
  stacks=$(.venv/bin/ansible-inventory -i "$INVENTORY" --list 2>/dev/null | .venv/bin/python -c \
    'import json, sys; inv = json.load(sys.stdin); print(json.dumps(inv.get("k2_docker_hosts", {}).get("hosts", [])))') \
    || { log "cannot read the inventory $INVENTORY" >&2; return 1; }
  [ "$stacks" != "[]" ] || { log "the inventory $INVENTORY names no host in k2_docker_hosts" >&2; return 1; }
  mkdir -p "$STATE"
  rm -f "$PID_FILE"  # a dead loop's
  rm -f "$VARS" && touch "$LOG" && chmod 600 "$LOG"  # files an older loop left 0644
  (printf 'k2_eda_webhook_host: 127.0.0.1\nk2_eda_webhook_port: %s\nk2_eda_project_dir: %s\nk2_eda_stacks: %s\nk2_eda_webhook_token: "%s"\n' \
    "$PORT" "$ROOT" "$stacks" "$token" > "$VARS")
  printf '\n=== %s loop up: 127.0.0.1:%s, %s, inventory %s\n' "$(date -u +%FT%TZ)" "$PORT" "$RULEBOOK" "$INVENTORY" >> "$LOG"
  # run_playbook runs a copy of playbooks/ from a temporary directory, with the project venv's ansible-playbook:
  # - PATH: that ansible-playbook (the lab inventory's interpreter is its Python, which has the modules' libraries);
  # - ANSIBLE_CONFIG: the project's ansible.cfg (library/, module_utils/, roles/), not found from the copy;
  # - K2_LAB_ROOT: the lab inventory's lock, warehouse and backup paths, else relative to the copy: a lock that no
  #   other remediation would see.
  # setsid: its own process group, so that `down` stops it and the playbooks it runs, and nothing else. The inner
  # shell records its own pid (the group's id) before it becomes ansible-rulebook.
  # shellcheck disable=SC2016
  PATH="$ROOT/.venv/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg" K2_LAB_ROOT="$ROOT" \
    setsid bash -c 'echo $$ > "$0"; exec "$@"' "$PID_FILE" \
    "$EDA_BIN" --rulebook "$RULEBOOK" --inventory "$INVENTORY" --vars "$VARS" >> "$LOG" 2>&1 < /dev/null &
  # Ready when the webhook listens (the JVM and the rule engine start first); a loop that dies says why.
  for _ in $(seq 1 120); do
    if pid=$(loop_pid) && listening "$pid"; then log "running (pid $pid, webhook 127.0.0.1:$PORT, log $LOG)"; return 0; fi
    if [ -s "$PID_FILE" ] && ! loop_pid > /dev/null; then break; fi
    sleep 0.5
  done
  log "did not start; last lines of $LOG:" >&2
  tail -n 20 "$LOG" >&2
  down > /dev/null
  return 1
}

# Every process under the loop, by pid. ansible-runner starts each ansible-playbook on a pty, so in a session of its
# own, and ansible's workers take their own too: the loop's process group alone does not hold them.
descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1"); do echo "$child"; descendants "$child"; done
}

down() {
  local pid p left=() procs=() all=()
  if ! pid=$(loop_pid); then rm -f "$PID_FILE"; log "not running"; return 0; fi
  mapfile -t procs < <(descendants "$pid")
  all=("$pid" "${procs[@]}")
  kill -TERM -- "-$pid" 2>/dev/null || true
  # A remediation in flight is interrupted as by Ctrl-C (ansible stops its workers). Its lock stays; in the lab it
  # is stale at once (its process is gone), and the next run breaks it.
  for p in "${procs[@]}"; do
    if [ "$(ps -o sid= -p "$p" | tr -d ' ')" = "$p" ]; then kill -INT "$p" 2>/dev/null || true; fi
  done
  for _ in $(seq 1 30); do
    mapfile -t left < <(ps -o pid= -p "$(IFS=,; echo "${all[*]}")" | tr -d ' ')
    if [ ${#left[@]} -eq 0 ]; then
      rm -f "$PID_FILE"; log "stopped (pid $pid, and ${#procs[@]} processes it had started)"; return 0
    fi
    sleep 0.5
  done
  kill -KILL -- "-$pid" "${left[@]}" 2>/dev/null || true
  rm -f "$PID_FILE"
  log "killed (pid $pid; ${left[*]} did not stop within 15 s)"
}

status() {
  local pid
  if pid=$(loop_pid); then log "running (pid $pid, webhook 127.0.0.1:$(loop_port), log $LOG)"; else log "not running"; return 3; fi
}

case "${1:-}" in
  up | down | status) "$1" ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
