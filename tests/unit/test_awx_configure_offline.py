"""awx/configure.yml against a controller that is not there (a closed port on 127.0.0.1): every awx.awx task runs and
fails on the connection, none on its parameters. ansible-lint does not see a misspelled or mistyped module parameter
("Unsupported parameters", a value outside the choices); the module's own argument check, which runs before it
connects, does. No controller, no lab: ~15 s, one core.

The playbook runs as written, with dummy secrets, no_log off (k2_awx_no_log=false: a hidden result hides its error
too) and a play-level ignore_errors added to a copy, so that the first failure does not hide the tasks after it.
A copy with one misspelled parameter proves the check catches one. Without a secret, the playbook names it before
any credential task (whose no_log would hide the error)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = ROOT / ".venv" / "bin" / "ansible-playbook"
CONNECTION_FAILURE = "Connection refused"
# Distinctive values: a secret that is a substring of a message gets masked in the output.
DUMMY_SECRETS = {name: f"offline-test-{name}" for name in (
    "k2_awx_controller_oauthtoken", "k2_awx_ssh_private_key", "k2_awx_postgres_username", "k2_awx_postgres_password",
    "k2_awx_clickhouse_username", "k2_awx_clickhouse_password", "k2_awx_vault_password")}


class _Loader(yaml.SafeLoader):
    """Reads `!unsafe` as the plain string it is."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
VARS = yaml.load((ROOT / "awx" / "vars" / "k2_awx.yml").read_text(), Loader=_Loader)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_ignoring_errors(tmp_path: Path, keep_tasks: set[str] | None = None) -> Path:
    """awx/ copied, its playbook's plays with ignore_errors (optionally only the tasks named in keep_tasks)."""
    shutil.copytree(ROOT / "awx", tmp_path / "awx")
    playbook = tmp_path / "awx" / "configure.yml"
    plays = yaml.safe_load(playbook.read_text())
    for play in plays:
        play["ignore_errors"] = True
        if keep_tasks is not None:
            play["tasks"] = [t for t in play["tasks"] if t["name"] in keep_tasks]
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    return playbook


def run(playbook: Path, extra_vars: dict) -> dict:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "json",
           "ANSIBLE_NOCOLOR": "1"}
    for name in [k for k in env if k.startswith("CONTROLLER_")]:  # the collection's fallbacks: none from the caller
        del env[name]
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), str(playbook), "-e", json.dumps(extra_vars)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.stdout.lstrip().startswith("{"), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(proc.stdout)


def offline_vars(**overrides) -> dict:
    return {"k2_awx_controller_host": f"https://127.0.0.1:{closed_port()}", "k2_awx_no_log": False,
            **DUMMY_SECRETS, **overrides}


def results(task: dict) -> list[dict]:
    result = task["hosts"]["localhost"]
    return result.get("results") or [result]


def problems(output: dict) -> list[str]:
    """One line per task result that did not fail on the connection (awx.awx) or did not pass (the others)."""
    found = []
    for play in output["plays"]:
        for task in play["tasks"]:
            action = task["hosts"]["localhost"].get("action", "")
            for result in results(task):
                message = str(result.get("msg", ""))
                if result.get("skipped"):
                    found.append(f"{task['task']['name']}: skipped")
                elif action.startswith("awx.awx.") and not (result.get("failed") and CONNECTION_FAILURE in message):
                    found.append(f"{task['task']['name']}: {message[:300]}")
                elif not action.startswith("awx.awx.") and result.get("failed"):
                    found.append(f"{task['task']['name']}: {message[:300]}")
    return found


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory) -> dict:
    return run(copy_ignoring_errors(tmp_path_factory.mktemp("awx")), offline_vars())


def test_every_awx_task_fails_on_the_connection_not_on_its_parameters(offline_run):
    assert problems(offline_run) == []


def test_every_task_of_the_playbook_ran_once_per_item(offline_run):
    play = yaml.safe_load((ROOT / "awx" / "configure.yml").read_text())[0]
    declared = [t["name"] for t in play["pre_tasks"] + play["tasks"]]
    ran = {task["task"]["name"]: task for task in offline_run["plays"][0]["tasks"]}
    assert list(ran) == declared
    awx_tasks = [t for t in play["tasks"] if any(k.startswith("awx.awx.") for k in t)]
    assert len(awx_tasks) >= 10, "the playbook lost its tasks"
    for task in awx_tasks:
        loop = task.get("loop", "").strip("{} ")
        expected = len(VARS[loop]) if loop else 1
        assert len(results(ran[task["name"]])) == expected, task["name"]


def test_a_misspelled_parameter_is_caught(tmp_path):
    """The same check on a copy whose workflow task has one parameter misspelled: it must name the task."""
    workflow_task = next(t["name"] for t in yaml.safe_load((ROOT / "awx" / "configure.yml").read_text())[0]["tasks"]
                         if "awx.awx.workflow_job_template" in t)
    playbook = copy_ignoring_errors(tmp_path, keep_tasks={workflow_task})
    playbook.write_text(playbook.read_text().replace("ask_variables_on_launch:", "ask_variables_on_lunch:"))
    found = problems(run(playbook, offline_vars()))
    assert len(found) == 1 and found[0].startswith(workflow_task) and "Unsupported parameters" in found[0], found


def test_a_missing_secret_is_named_before_any_credential_task():
    """The credential tasks hide their errors (no_log): a secret left out must be named before them."""
    extra_vars = {k: v for k, v in offline_vars(k2_awx_no_log=True).items() if k != "k2_awx_postgres_password"}
    output = run(ROOT / "awx" / "configure.yml", extra_vars)  # as written: the first failure ends the play
    tasks = output["plays"][0]["tasks"]
    assert not any(t["hosts"]["localhost"].get("action", "").startswith("awx.awx.") for t in tasks), "a task ran"
    failed = [r for t in tasks for r in results(t) if r.get("failed")]
    assert [r["msg"] for r in failed] == ["k2_awx_postgres_password is not set: see awx/secrets.example.yml."]
