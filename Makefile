# K2 offload-failure automation. Two contract commands: `make demo` and `make test`; both set up a fresh
# Debian 12 machine themselves (apt packages, dockerd, venv, images) and skip what is already done.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
LAB := $(PY) lab/labctl.py
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: setup demo test lint lint-code bench lab-up lab-down lab-status lab-fault lab-clear lab-cycle lab-verify loop-up loop-down health-check post-incident capacity-report watermark-maintenance lab-twin-up lab-twin-down lab-twin-status

setup:
	@scripts/bootstrap.sh

lab-up: setup
	@$(LAB) up

lab-down:
	@if [ -x $(PY) ]; then $(LAB) down; else echo "lab-down: nothing to do (no venv)"; fi

lab-status:
	@$(LAB) status

lab-fault:
	@if [ -z "$(FAULT)" ]; then echo "lab-fault: set FAULT=<name>, e.g. make lab-fault FAULT=clickhouse-stopped" >&2; exit 2; fi
	@$(LAB) fault $(FAULT) $(if $(TABLE),--table $(TABLE),) $(if $(AT_STEP),--at-step "$(AT_STEP)",) $(if $(RUNNING_RUN),--running-run,)

lab-clear:
	@$(LAB) clear

lab-cycle:
	@$(LAB) cycle $(if $(TABLES),--tables $(TABLES),)

lab-verify:
	@$(LAB) verify-data

# Twins of the lab (docs/many-stacks.md): another K2 stack on this Docker engine, TWIN=b (default), c, ... with its
# own names, ports, network and state. up/down keep .lab/twins/hosts.yml, the inventory of the lab and every twin up
# (ansible-playbook -i .lab/twins/hosts.yml ...). Other labctl commands: $(PY) lab/twin.py <twin> <command>.
TWIN ?= b

lab-twin-up: setup
	@$(PY) lab/twin.py $(TWIN) up

lab-twin-down:
	@$(PY) lab/twin.py $(TWIN) down

lab-twin-status:
	@$(PY) lab/twin.py $(TWIN) status

# The rest of the runbook against the lab: the daily health check (non-zero when a human is needed), post-incident
# verification (the next 3 runs, lag, alert, truth), the capacity report (read-only; JSON + HTML chart in reports/)
# and the weekly watermark hygiene. CHECK=1 adds --check --diff; PLAYBOOK_ARGS passes more (-e capacity_report_days=1 ...).
health-check: lab-up
	@$(VENV)/bin/ansible-playbook playbooks/health_check.yml $(if $(CHECK),--check,) $(PLAYBOOK_ARGS)

post-incident: lab-up
	@$(VENV)/bin/ansible-playbook playbooks/post_incident.yml $(if $(CHECK),--check,) $(PLAYBOOK_ARGS)

capacity-report: lab-up
	@$(VENV)/bin/ansible-playbook playbooks/capacity_report.yml $(if $(CHECK),--check --diff,) $(PLAYBOOK_ARGS)

watermark-maintenance: lab-up
	@$(VENV)/bin/ansible-playbook playbooks/watermark_maintenance.yml $(if $(CHECK),--check --diff,) $(PLAYBOOK_ARGS)

# The alert-driven loop (docs/eda.md): ansible-rulebook in the background, Alertmanager's webhook on 127.0.0.1:5000
# (K2_LAB_PORT_EDA) -> playbooks/remediate.yml. Pid and log under .lab/; both targets are idempotent.
loop-up: setup
	@scripts/loop.sh up

loop-down:
	@scripts/loop.sh down

demo: lab-up
	@scripts/demo.sh

lint: setup lint-code
	@$(VENV)/bin/ansible-lint --profile production

# Python (ruff.toml) and YAML (.yamllint) lint; ansible-lint runs in `lint` and `test`.
lint-code: setup
	@$(VENV)/bin/ruff check --no-cache library module_utils doc_fragments action_plugins lab bench tests
	@$(VENV)/bin/yamllint --strict .

# Two lanes (scripts/test.sh): the integration tests on the lab; beside them ansible-lint, the unit tests, tests/lab,
# the read-only module tests, then the tests that mostly wait (on_a_twin) on twin d standing in for the lab.
test: lab-up lint-code
	@VENV=$(VENV) PYTEST_ARGS="$(PYTEST_ARGS)" scripts/test.sh

bench: lab-up
	@$(PY) bench/bench.py $(SECTIONS)
