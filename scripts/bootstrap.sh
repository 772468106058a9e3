#!/usr/bin/env bash
# Idempotent host set-up for a fresh Debian 12 machine: apt packages, dockerd, the project venv.
# Every step checks whether it is already done, so a second run costs a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
APT_PACKAGES=(docker.io tini prometheus prometheus-alertmanager postgresql-15 jq)

log() { printf 'bootstrap: %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps Debian from auto-starting the packaged prometheus/postgresql services:
  # the lab runs its own instances inside containers.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi

scripts/dockerd.sh

stamp="$VENV/.requirements.sha"
want=$(cat requirements.txt $(ls constraints.txt 2>/dev/null) | sha256sum | cut -d" " -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "creating venv $VENV"
  python3 -m venv "$VENV"
  cons=(); [ -f constraints.txt ] && cons=(-c constraints.txt)
  # This machine's pip config lists local mirrors that may be absent: drop those warnings, keep errors.
  "$VENV/bin/pip" install -q -r requirements.txt "${cons[@]}" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
  echo "$want" > "$stamp"
fi

# ansible-rulebook (the alert-driven loop) in a venv of its own: its pins exclude the project's pyparsing and
# websockets. It holds no ansible-core: run_playbook runs the project venv's ansible-playbook (scripts/loop.sh).
EDA_VENV=${EDA_VENV:-.venv-eda}
eda_stamp="$EDA_VENV/.requirements.sha"
eda_want=$(cat requirements-eda.txt constraints-eda.txt | sha256sum | cut -d" " -f1)
if [ ! -x "$EDA_VENV/bin/ansible-rulebook" ] || [ "$(cat "$eda_stamp" 2>/dev/null)" != "$eda_want" ]; then
  log "creating venv $EDA_VENV (ansible-rulebook)"
  python3 -m venv "$EDA_VENV"
  "$EDA_VENV/bin/pip" install -q -r requirements-eda.txt -c constraints-eda.txt 2>&1 | { grep -v 'is ignored: it is neither' || true; }
  echo "$eda_want" > "$eda_stamp"
fi
# K2 pins ClickHouse 24.3: the truth check's queries also run on a 24.x engine (chdb 2.0.4 is 24.5), in a venv of
# its own (its chdb and the project's chdb-core are one module name). tests/unit/test_offload_truth_types.py.
CH24_VENV=${CH24_VENV:-.venv-clickhouse24}
CH24_PINS=(chdb==2.0.4 pyarrow==26.0.1)
if [ ! -x "$CH24_VENV/bin/python" ] || [ "$(cat "$CH24_VENV/.requirements" 2>/dev/null)" != "${CH24_PINS[*]}" ]; then
  log "creating venv $CH24_VENV (the ClickHouse 24.5 engine)"
  python3 -m venv "$CH24_VENV"
  "$CH24_VENV/bin/pip" install -q "${CH24_PINS[@]}" 2>&1 | { grep -v 'is ignored: it is neither' || true; }
  echo "${CH24_PINS[*]}" > "$CH24_VENV/.requirements"
fi
log "ready"
