# K2 offload-failure automation. Two contract commands: `make demo` and `make test`; both set up a fresh
# Debian 12 machine themselves (apt packages, dockerd, venv, images) and skip what is already done.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
LAB := $(PY) lab/labctl.py
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: setup demo test conformance lint lint-code bench soak lab-up lab-down lab-status lab-fault lab-clear lab-cycle lab-verify loop-up loop-down health-check post-incident capacity-report watermark-maintenance lab-twin-up lab-twin-down lab-twin-status mutation

setup:
	@scripts/bootstrap.sh

# K2_SOURCE=<k2-market-data-platform checkout>: the conformance lane (docs/fidelity.md), K2's own job, watermark code
# and DDLs on Spark 3.5 (scripts/spark35.sh builds it). One lab runs one lane: `make lab-down` to switch.
lab-up: setup
	@$(if $(K2_SOURCE),scripts/spark35.sh && ,)$(LAB) up

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
# The conformance lane (tests/integration/test_k2_conformance.py) runs last in lane 1 when a K2 checkout is there
# (K2_SOURCE, else ../shared/upstream/k2-market-data-platform); the rest runs on the twin, whatever K2_SOURCE says.
test: setup lint-code
	@env -u K2_SOURCE $(LAB) up
	@VENV=$(VENV) PYTEST_ARGS="$(PYTEST_ARGS)" scripts/test.sh

# Just the conformance lane, on a user's own K2 checkout: make conformance K2_SOURCE=<path>.
conformance: setup lint-code
	@$(VENV)/bin/pytest -p no:cacheprovider -p no:randomly -ra tests/integration/test_k2_conformance.py $(PYTEST_ARGS)

bench: lab-up
	@$(PY) bench/bench.py $(SECTIONS)

# A seeded chaos soak of the alert-driven loop with the schedule live (lab/soak.py): make soak SEED=7 FAULTS=20.
SEED ?= 1
FAULTS ?= 3
soak: lab-up
	@$(PY) lab/soak.py --seed $(SEED) --faults $(FAULTS)

# Mutation testing (docs/testing.md): mutmut 3 on the pure safety logic in module_utils/ (setup.cfg [mutmut]),
# against its unit tests only; prints killed / total per file and fails below MUTATION_MIN percent. Not in `make
# test` (slow). mutmut lives in .venv-mutation (requirements-mutation.txt), which sees the project venv's packages
# through a .pth file. mutmut names a mutant after its file's path and the tests import module_utils by plain name,
# so it mutates src/ (a link to module_utils/, removed after the run: ruff would take src/ for first-party code) and
# mutants/module_utils is a link to the mutated src/.
# MUTATION_CHILDREN: parallel mutant runs (default: the cores); MUTATION_KEEP=1 keeps mutants/ (reuses results).
MUTATION_VENV ?= .venv-mutation
MUTATION_MIN ?= 85
mutation: setup
	@set -euo pipefail; \
	want=$$(cat requirements-mutation.txt constraints.txt | sha256sum | cut -d" " -f1); \
	if [ ! -x $(MUTATION_VENV)/bin/mutmut ] || [ "$$(cat $(MUTATION_VENV)/.requirements.sha 2>/dev/null)" != "$$want" ]; then \
	  echo "mutation: creating venv $(MUTATION_VENV) (mutmut)"; \
	  python3 -m venv $(MUTATION_VENV); \
	  $(MUTATION_VENV)/bin/pip install -q -r requirements-mutation.txt -c constraints.txt 2>&1 | { grep -v 'is ignored: it is neither' || true; }; \
	  site=$$($(MUTATION_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$$site/k2-project-venv.pth"; \
	  echo "$$want" > $(MUTATION_VENV)/.requirements.sha; \
	fi; \
	[ -n "$(MUTATION_KEEP)" ] || rm -rf mutants; \
	trap 'rm -f src' EXIT; ln -sfn module_utils src; mkdir -p mutants; ln -sfn src mutants/module_utils; \
	start=$$(date +%s); \
	$(MUTATION_VENV)/bin/mutmut run $(if $(MUTATION_CHILDREN),--max-children $(MUTATION_CHILDREN),) > mutants/run.log 2>&1 \
	  || { tail -n 40 mutants/run.log; exit 1; }; \
	echo "mutation: mutmut run took $$(( $$(date +%s) - start )) s (log: mutants/run.log)"; \
	$(MUTATION_VENV)/bin/mutmut results --all true | $(PY) scripts/mutation_report.py --min $(MUTATION_MIN)
