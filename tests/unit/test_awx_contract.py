"""The AWX configuration as code (awx/) against the project it configures, read as YAML (no controller): templates
and playbooks match one to one, surveys ask only for what the playbooks read (and offer only what they accept),
credential types inject variables the project reads, the incident workflow wires diagnose -> remediate -> verify
with the gate and the published diagnosis, schedules name templates and parse, and the EDA rulebooks launch
templates that exist and take their variables."""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import offload_plan
import pytest
import yaml
from dateutil.rrule import rrulestr
from offload_alert_event import VARIABLES as ALERT_VARIABLES

ROOT = Path(__file__).resolve().parents[2]
AWX_VARS = ROOT / "awx" / "vars" / "k2_awx.yml"
CONFIGURE = ROOT / "awx" / "configure.yml"
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
JINJA_NAME = re.compile(r"{{\s*([A-Za-z_][A-Za-z0-9_]*)\s*}}")


class _Loader(yaml.SafeLoader):
    """Reads `!unsafe` (Ansible's tag for text that must not be templated) as the plain string it is."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load(path: Path):
    return yaml.load(path.read_text(), Loader=_Loader)


VARS = load(AWX_VARS)
TEMPLATES = {t["name"]: t for t in VARS["k2_awx_job_templates"]}
NODES = {n["identifier"]: n for n in VARS["k2_awx_workflow_nodes"]}
ROLES = {p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir()}


def _configure_task(module: str) -> dict:
    (task,) = [t for t in load(CONFIGURE)[0]["tasks"] if module in t]
    return task[module]


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _roles_of(playbook: Path, seen: set[str] | None = None) -> set[str]:
    """The roles a playbook (or task file) runs: named anywhere in its tasks (roles:, include_role, the
    role-dispatch variable of remediate.yml), with the roles those include in turn."""
    seen = set() if seen is None else seen
    for path in _own_files(playbook):
        for role in set(re.findall(r"\b(offload_[a-z_]+)\b", _strip_comments(path.read_text()))) & ROLES - seen:
            seen.add(role)
            for task_file in (ROOT / "roles" / role / "tasks").glob("*.yml"):
                _roles_of(task_file, seen)
    return seen


def _main_play(playbook: Path) -> dict:
    """The play that acts on the K2 Docker hosts (after the imported checks and remediate.yml's reachability play):
    the one with the playbook's variables."""
    return next(play for play in load(playbook) if play.get("hosts") == "k2_docker_hosts" and "vars" in play)


def _own_files(playbook: Path) -> list[Path]:
    """A playbook and the task files and playbooks it includes or imports (relative to it), recursively."""
    files, pending = [], [playbook]
    while pending:
        path = pending.pop()
        if path in files or not path.is_file():
            continue
        files.append(path)
        text = _strip_comments(path.read_text())
        pending += [path.parent / name for name in
                    re.findall(r"(?:include_tasks|import_tasks|import_playbook):\s*(\S+\.yml)", text)]
    return files


def _sources(playbook: Path) -> list[Path]:
    """The files whose tasks run for a playbook: its own files, its roles' tasks and defaults."""
    files = _own_files(playbook)
    for role in _roles_of(playbook):
        files += sorted((ROOT / "roles" / role / "tasks").glob("*.yml"))
        files += sorted((ROOT / "roles" / role / "defaults").glob("*.yml"))
    return files


def _inputs(playbook: Path) -> set[str]:
    """What a playbook documents as its inputs: its plays' vars, the `name=value` lines of its header, and the
    options of its roles' meta/argument_specs.yml."""
    names = set()
    for path in _own_files(playbook):
        if path.parent == playbook.parent:  # playbooks (task files have no header or plays)
            names |= set(re.findall(r"^#\s+([a-z_][a-z0-9_]*)=", path.read_text(), re.M))
            names |= {k for play in load(path) for k in (play.get("vars") or {})}
    for role in _roles_of(playbook):
        specs = load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
        for entry in specs.values():
            names |= set(entry.get("options") or {})
    return names


def _read_in(name: str, files: list[Path]) -> bool:
    """`name` is used (not only defined) in one of the files: a word of a line that does not define it."""
    word = re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)")
    definition = re.compile(rf"^\s*-?\s*{re.escape(name)}\s*:")
    return any(word.search(line) and not definition.match(line)
               for path in files for line in _strip_comments(path.read_text()).splitlines())


def _survey_variables(template: str) -> set[str]:
    return {q["variable"] for q in TEMPLATES[template].get("survey", {}).get("spec", [])}


# What no survey of a template holding credentials may ask: Ansible's own variables (ansible_python_interpreter runs
# a command as root on the Docker host), the hosts, where things are (paths, directories) and how to connect (a
# host of one's own would receive the password). k2_alert_* are the alert's fields, checked by offload_alert_event.
FORBIDDEN_QUESTION = re.compile(r"^ansible_|^hosts$|_(path|paths|dir|host|hosts|url|port|user|password|interpreter)$"
                                r"|^k2_(?!alert_)")


def test_templates_holding_credentials_prompt_for_nothing_free_form():
    for name, template in TEMPLATES.items():
        if not template["credentials"]:
            continue
        assert template["ask_variables"] is False, f"{name}: free-form variables beside its credentials"
        for question in template.get("survey", {}).get("spec", []):
            variable, kind = question["variable"], question["type"]
            assert not FORBIDDEN_QUESTION.search(variable), f"{name}: the survey asks for {variable}"
            assert kind in ("integer", "float", "text", "multiplechoice", "multiselect"), f"{name}: {variable} {kind}"
            if kind in ("integer", "float"):
                assert 0 < question["min"] <= question["max"], f"{name}: {variable} unbounded or below 1"
            if kind == "text":
                assert 0 < question["min"] <= question["max"] <= 2000, f"{name}: {variable} unbounded"


def test_every_template_points_at_an_existing_playbook():
    for name, template in TEMPLATES.items():
        path = ROOT / template["playbook"]
        assert path.is_file(), f"{name}: {template['playbook']} does not exist"
        assert path.parent == ROOT / "playbooks", f"{name}: {template['playbook']} is not a top-level playbook"
        plays = load(path)
        assert isinstance(plays, list) and plays, f"{name}: {path} is not a playbook"
        assert all("hosts" in play or "ansible.builtin.import_playbook" in play for play in plays), f"{name}: {path}"


def test_every_playbook_has_a_template():
    playbooks = {f"playbooks/{p.name}" for p in (ROOT / "playbooks").glob("*.yml")}
    assert len(playbooks) >= 5  # diagnose, remediate, timeout_revert, truth_check, health_check, ...
    assert sorted(t["playbook"] for t in TEMPLATES.values()) == sorted(playbooks)  # one each, no duplicate


def test_survey_questions_are_well_formed():
    surveys = [t["survey"] for t in TEMPLATES.values() if "survey" in t]
    assert surveys, "no survey at all: the remediate template has one"
    for survey in surveys:
        assert survey["name"] and "description" in survey and survey["spec"]
        variables = [q["variable"] for q in survey["spec"]]
        assert len(variables) == len(set(variables)), f"{survey['name']}: a variable is asked twice"
        for question in survey["spec"]:
            assert question["type"] in SURVEY_TYPES and question["question_name"] and "required" in question, question
            if question["type"] in ("multiplechoice", "multiselect"):
                assert isinstance(question["choices"], list) and question["choices"], question
                assert all(isinstance(c, str) for c in question["choices"]), f"AWX compares answers as text: {question}"
                if "default" in question:
                    assert question["default"] in question["choices"], question
            if question["required"] and question["type"] != "password":
                # A workflow or schedule launch takes the defaults: a required question without one blocks it.
                assert "default" in question, f"{question['variable']}: required without a default"


@pytest.mark.parametrize("name", [n for n, t in TEMPLATES.items() if "survey" in t])
def test_every_survey_variable_is_an_input_the_playbook_reads(name):
    playbook = ROOT / TEMPLATES[name]["playbook"]
    inputs, sources = _inputs(playbook), _sources(playbook)
    for question in TEMPLATES[name]["survey"]["spec"]:
        variable = question["variable"]
        assert variable in inputs, f"{name}: {variable} is not an input of {playbook.name} (vars, header, argument_specs)"
        # The alert's fields are read raw by offload_alert_event's action plugin (never rendered), not by a template.
        raw = variable in ALERT_VARIABLES and any(re.search(r"^\s+offload_alert_event:", path.read_text(), re.M)
                                                  for path in sources)
        assert raw or _read_in(variable, sources), f"{name}: {variable} is never read by {playbook.name} or its roles"


def test_the_remediate_survey_offers_what_remediate_accepts():
    """Each choice passes remediate.yml's own input validation (offload_plan), the choices are all there is, and an
    empty budget keeps the inventory's (no default)."""
    spec = {q["variable"]: q for q in TEMPLATES["k2-offload-remediate"]["survey"]["spec"]}
    scenarios = spec["remediate_scenarios"]
    assert offload_plan.parse_forced(scenarios["choices"]) == list(offload_plan.AUTOMATED)
    assert scenarios["type"] == "multiselect" and not scenarios["required"] and "default" not in scenarios

    mitigation = spec["remediate_timeout_mitigation"]
    assert mitigation["type"] == "multiplechoice"
    assert tuple(offload_plan.check_mitigation(c) for c in mitigation["choices"]) == offload_plan.MITIGATIONS
    role_spec = load(ROOT / "roles" / "offload_timeout" / "meta" / "argument_specs.yml")
    assert mitigation["choices"] == role_spec["argument_specs"]["main"]["options"]["offload_timeout_mitigation"]["choices"]

    budget = spec["remediate_escalation_budget_seconds"]
    assert budget["type"] == "integer" and not budget["required"] and "default" not in budget
    assert offload_plan.check_budget(budget["min"]) == budget["min"] == 1  # 0 escalates before any step
    with pytest.raises(offload_plan.PlanError):
        offload_plan.check_budget(budget["min"] - 1)
    assert offload_plan.check_budget(budget["max"]) == budget["max"] == offload_plan.MAX_BUDGET_SECONDS

    monitoring = spec["remediate_restart_monitoring"]
    assert sorted(monitoring["choices"]) == ["false", "true"] and monitoring["default"] == "false"  # | bool reads them


def _group_vars_files() -> list[Path]:
    return sorted(p for p in (ROOT / "inventory").rglob("*.yml") if "group_vars" in p.parts)


def test_credential_types_inject_variables_the_project_reads():
    group_vars = set()
    for path in _group_vars_files():
        group_vars |= set(load(path) or {})
    readers = [*sorted((ROOT / "playbooks").rglob("*.yml")), *sorted((ROOT / "roles").rglob("*.yml")), *_group_vars_files()]
    ctypes = VARS["k2_awx_credential_types"]
    assert {c["credential"] for c in ctypes} == {"postgres", "clickhouse"}
    for ctype in ctypes:
        injected = ctype["injectors"]["extra_vars"]
        assert set(ctype["injectors"]) == {"extra_vars"}, f"{ctype['name']}: only extra_vars injectors are checked here"
        fields = {f["id"] for f in ctype["inputs"]["fields"]}
        for variable, template in injected.items():
            assert variable in group_vars, f"{ctype['name']}: {variable} is not a variable of the inventory's group_vars"
            assert _read_in(variable, readers), f"{ctype['name']}: {variable} is read nowhere"
            used = JINJA_NAME.findall(template)
            assert used and set(used) <= fields, f"{ctype['name']}: {variable} injects {template!r}, not a field"
            # An absent optional field would inject "" over the inventory's value.
            assert set(used) <= set(ctype["inputs"]["required"]), f"{ctype['name']}: {used} must be required"
        secret = [f["id"] for f in ctype["inputs"]["fields"] if "password" in f["id"]]
        assert secret and all(f.get("secret") for f in ctype["inputs"]["fields"] if f["id"] in secret)


def test_job_template_credentials_exist():
    names = VARS["k2_awx_credential_names"]
    assert {c["credential"] for c in VARS["k2_awx_credential_types"]} <= set(names)
    for name, template in TEMPLATES.items():
        assert template["credentials"] and set(template["credentials"]) <= set(names), name
        assert "machine" in template["credentials"], f"{name}: the Docker host is reached over SSH"


def test_the_incident_workflow_wires_diagnose_remediate_verify():
    for identifier, node in NODES.items():
        template = node["unified_job_template"]
        assert template["type"] == "job_template" and template["name"] in TEMPLATES, identifier
        for edge in ("success_nodes", "failure_nodes", "always_nodes"):
            for target in node.get("related", {}).get(edge, []):
                assert target["identifier"] in NODES, f"{identifier}.{edge} -> {target['identifier']}: no such node"
        if node.get("extra_data"):
            # AWX takes a node's extra_data only for variables its template prompts for: survey questions here.
            assert set(node["extra_data"]) <= _survey_variables(template["name"]), f"{identifier}: extra_data ignored"

    def node_of(playbook: str) -> tuple[str, dict]:
        (match,) = [(i, n) for i, n in NODES.items()
                    if TEMPLATES[n["unified_job_template"]["name"]]["playbook"] == playbook]
        return match

    diagnose_id, diagnose = node_of("playbooks/diagnose.yml")
    remediate_id, remediate = node_of("playbooks/remediate.yml")
    verify_id, _ = node_of("playbooks/post_incident.yml")
    roots = set(NODES) - {t["identifier"] for n in NODES.values() for e in n.get("related", {}).values() for t in e}
    assert roots == {diagnose_id}
    assert diagnose["extra_data"]["diagnose_gate"] is True
    # Not healthy (the gate failed the node): remediate; healthy: the workflow ends, nothing was changed.
    assert diagnose["related"] == {"failure_nodes": [{"identifier": remediate_id}]}
    assert remediate["extra_data"]["use_report"] is True
    assert remediate["related"] == {"success_nodes": [{"identifier": verify_id}]}
    # The verify node is the post-incident check: remediate must not chain it a second time.
    assert not remediate["extra_data"].get("remediate_post_incident", False)

    # The interface the nodes use is the playbooks' own.
    diagnose_vars = _main_play(ROOT / "playbooks" / "diagnose.yml")["vars"]
    remediate_vars = _main_play(ROOT / "playbooks" / "remediate.yml")["vars"]
    assert diagnose_vars["diagnose_gate"] is False and remediate_vars["use_report"] is False
    assert _read_in("k2_offload_diagnosis", _sources(ROOT / "playbooks" / "remediate.yml"))
    assert "remediate_post_incident" in _inputs(ROOT / "playbooks" / "remediate.yml")

    workflow = _configure_task("awx.awx.workflow_job_template")
    assert workflow["ask_variables_on_launch"] is False  # they would reach every node's job, credentials and all
    assert workflow["workflow_nodes"] == "{{ k2_awx_workflow_nodes }}"


def _awx_module_options(module: str) -> dict:
    """The documented options of an awx.awx module (the collection bundled with the pinned ansible package)."""
    collections = Path(next(iter(importlib.util.find_spec("ansible_collections").submodule_search_locations)))
    tree = ast.parse((collections / "awx" / "awx" / "plugins" / "modules" / f"{module}.py").read_text())
    doc = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
               and getattr(node.targets[0], "id", "") == "DOCUMENTATION")
    return yaml.safe_load(doc)["options"]


def _undocumented_keys(value, options: dict, where: str) -> list[str]:
    found = []
    for item in value if isinstance(value, list) else [value]:
        for key, sub in item.items():
            if key not in options:
                found.append(f"{where}.{key}")
            elif options[key].get("suboptions") and isinstance(sub, (dict, list)):
                found += _undocumented_keys(sub, options[key]["suboptions"], f"{where}.{key}")
    return found


def test_workflow_nodes_use_only_the_modules_documented_suboptions():
    """workflow_job_template takes workflow_nodes as free dicts: a misspelled key there passes the module's
    argument check (and the offline run) and is silently ignored. Held to the module's documentation here."""
    options = _awx_module_options("workflow_job_template")["workflow_nodes"]["suboptions"]
    assert {"identifier", "unified_job_template", "related", "extra_data"} <= set(options)
    assert _undocumented_keys(VARS["k2_awx_workflow_nodes"], options, "workflow_nodes") == []
    assert _undocumented_keys([{"related": {"succes_nodes": []}}], options, "x") == ["x.related.succes_nodes"]


def _interval_seconds(rrule: str) -> float:
    occurrences = rrulestr(rrule.replace(" RRULE:", "\nRRULE:"), forceset=True)
    assert occurrences[0].minute % 15 != 0, f"{rrule}: on one of the offload's 15-minute slots"
    return (occurrences[1] - occurrences[0]).total_seconds()


def test_schedules_name_templates_and_parse():
    schedules = {s["unified_job_template"]: s for s in VARS["k2_awx_schedules"]}
    assert len(schedules) == len(VARS["k2_awx_schedules"]), "one schedule per template"
    for template, schedule in schedules.items():
        assert template in TEMPLATES, f"{schedule['name']}: no template {template}"
        assert re.match(r"^DTSTART;TZID=[^:]+:\d{8}T\d{6} RRULE:", schedule["rrule"]), f"AWX's rrule form: {schedule}"
    day = 24 * 3600
    assert _interval_seconds(schedules["k2-offload-health-check"]["rrule"]) == day  # the runbook: a daily check
    assert _interval_seconds(schedules["k2-offload-truth-check"]["rrule"]) == day
    if "k2-offload-watermark-maintenance" in schedules:  # the runbook's weekly cleanup
        assert _interval_seconds(schedules["k2-offload-watermark-maintenance"]["rrule"]) == 7 * day
    if "k2-offload-capacity-report" in schedules:  # weekly, each report covering the week since the last one
        window_days = _main_play(ROOT / "playbooks" / "capacity_report.yml")["vars"]["capacity_report_days"]
        assert _interval_seconds(schedules["k2-offload-capacity-report"]["rrule"]) == window_days * day


def test_configure_loops_over_the_declared_objects():
    """The tasks take their objects from awx/vars (what the tests above check), not from copies of their own."""
    assert _configure_task("awx.awx.job_template")["name"] == "{{ item.name }}"
    tasks = load(CONFIGURE)[0]["tasks"]
    loops = {next(k for k in t if k.startswith("awx.awx.")): t.get("loop") for t in tasks}
    assert loops["awx.awx.job_template"] == "{{ k2_awx_job_templates }}"
    assert loops["awx.awx.credential_type"] == "{{ k2_awx_credential_types }}"
    assert loops["awx.awx.schedule"] == "{{ k2_awx_schedules }}"


def _rulebook_actions() -> list[tuple[str, str, dict]]:
    actions = []
    for path in sorted((ROOT / "extensions" / "eda" / "rulebooks").glob("*.yml")):
        for ruleset in load(path):
            for rule in ruleset["rules"]:
                for action in rule.get("actions") or [rule["action"]]:
                    for kind in ("run_job_template", "run_workflow_template"):
                        if kind in action:
                            actions.append((path.name, kind, action[kind]))
    return actions


@pytest.mark.skipif(not (ROOT / "extensions" / "eda" / "rulebooks").is_dir(), reason="no EDA rulebooks")
def test_eda_rulebooks_launch_what_awx_defines_and_it_takes_their_variables():
    actions = _rulebook_actions()
    assert actions, "the rulebooks launch nothing on the controller"
    for rulebook, kind, action in actions:
        assert action["organization"] == VARS["k2_awx_organization"], f"{rulebook}: {action}"
        passed = set(action.get("job_args", {}).get("extra_vars") or {})
        if kind == "run_job_template":
            assert action["name"] in TEMPLATES, f"{rulebook}: no job template {action['name']}"
            # The controller takes a launch's variables only when the template prompts for them: its survey's.
            assert passed <= _survey_variables(action["name"]), f"{rulebook}: {action['name']} drops {passed}"
        else:
            assert action["name"] == VARS["k2_awx_workflow_name"], f"{rulebook}: no workflow {action['name']}"
            assert not passed, f"{rulebook}: the workflow takes no variables"
