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

# ansible-lint (~2 min, one core), the unit tests (no lab; ~1 min, mostly the AWX configuration's offline run; in a
# random order, pytest-randomly prints the seed), tests/lab (the ClickHouse front on its own server) and the
# integration tests marked beside_the_lab (read-only modules, robust to faults injected meanwhile) run beside the
# other integration tests (file order: they share one lab and inject faults into it); any of them failing fails
# the target. pytest exit 5 (nothing collected) is a failure too: a suite that runs no test proves nothing.
# Their logs go to .test-logs/: the history-layout tests rebuild the lab, which empties .lab/.
# The integration tests marked on_a_twin (the lab's fault tests, written against LabConfig and host k2-lab only) run
# at the same time on twin $(TEST_TWIN) standing in for the lab (tests/run_on_twin.py), which is removed at the end:
# the suite is wait-bound (timeouts, alerts), so two labs halve its wall time without more cores.
TEST_TWIN := d
test: lab-up lint-code
	@mkdir -p .test-logs; $(VENV)/bin/ansible-lint --profile production > .test-logs/ansible-lint.log 2>&1 & lint=$$!; \
	  { $(VENV)/bin/pytest tests/unit -p no:cacheprovider -p randomly -q -ra $(PYTEST_ARGS) && \
	    $(VENV)/bin/pytest tests/lab -p no:cacheprovider -p no:randomly -q -ra $(PYTEST_ARGS) && \
	    $(VENV)/bin/pytest tests/integration -m beside_the_lab -p no:cacheprovider -p no:randomly -q -ra $(PYTEST_ARGS); \
	  } > .test-logs/unit-tests.log 2>&1 & unit=$$!; \
	  $(PY) tests/run_on_twin.py $(TEST_TWIN) tests/integration -m on_a_twin -p no:cacheprovider -p no:randomly -ra \
	    $(PYTEST_ARGS) > .test-logs/twin-lane.log 2>&1 & lane=$$!; \
	  $(VENV)/bin/pytest tests/integration -m "not beside_the_lab and not on_a_twin" -p no:cacheprovider -p no:randomly \
	    -ra $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no integration tests" >&2; rc=1; fi; \
	  wait $$lane; lrc=$$?; echo "--- integration tests on twin $(TEST_TWIN) (.test-logs/twin-lane.log) ---"; \
	  if [ $$lrc -ne 0 ]; then cat .test-logs/twin-lane.log; echo "make test: the tests on twin $(TEST_TWIN) failed (rc $$lrc)" >&2; rc=1; \
	  else tail -n 3 .test-logs/twin-lane.log; fi; \
	  $(PY) lab/twin.py $(TEST_TWIN) down > .test-logs/twin-down.log 2>&1 || { cat .test-logs/twin-down.log; rc=1; }; \
	  wait $$unit; urc=$$?; tail -n 3 .test-logs/unit-tests.log; \
	  if [ $$urc -ne 0 ]; then cat .test-logs/unit-tests.log; echo "make test: unit, tests/lab or beside_the_lab failed (rc $$urc)" >&2; rc=1; fi; \
	  if ! wait $$lint; then cat .test-logs/ansible-lint.log; echo "make test: ansible-lint failed" >&2; rc=1; \
	  else tail -1 .test-logs/ansible-lint.log; fi; exit $$rc

bench: lab-up
	@$(PY) bench/bench.py $(SECTIONS)
