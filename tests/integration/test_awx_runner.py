"""The playbooks run the way AWX runs them: ansible-runner, a private data dir per job, credentials injected as
extra vars (custom credential types) and the vault password answered from env/passwords (vault credential), the
project's ansible.cfg found from the project directory, and the diagnosis handed from the diagnose node to the
remediate node as artifacts (set_stats -> the playbook_on_stats event's artifact_data -> the next job's extra vars),
never as a file: each job's private data dir is its own."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import yaml
from test_lab_faults import CHECKS

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"


def _vaulted(value: str, password_file: Path) -> dict:
    """One value vaulted on its own, as an AWX inventory carries it after the sync: {"__ansible_vault": <ciphertext>}."""
    proc = subprocess.run([str(VENV_BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(password_file),
                           "--output", "-"], input=value, capture_output=True, text=True, check=True)
    return {"__ansible_vault": proc.stdout.strip()}


class _Unsafe(str):
    """A string AWX writes as `!unsafe`."""


class _AwxExtraVarsDumper(yaml.SafeDumper):
    pass


_AwxExtraVarsDumper.add_representer(_Unsafe, lambda dumper, value: dumper.represent_scalar("!unsafe", str(value)))


def _awx_extravars(variables: dict) -> str:
    """env/extravars as AWX writes it (ALLOW_JINJA_IN_EXTRA_VARS=template, the default that awx/configure.yml pins):
    every string given at launch, by a workflow's artifacts or by a credential's injector is tagged `!unsafe` (the
    templates set no extra vars of their own), so the playbooks must work without rendering any of them."""
    def tag(value):
        if isinstance(value, str):
            return _Unsafe(value)
        if isinstance(value, dict):
            return {k: tag(v) for k, v in value.items()}
        if isinstance(value, list):
            return [tag(v) for v in value]
        return value
    return yaml.dump(tag(variables), Dumper=_AwxExtraVarsDumper)


class AwxJob:
    """One AWX job: its own private data dir, the project (the repository) under project/, the inventory exactly as
    AWX writes it - inventory/hosts, an executable that prints the JSON of hosts, group vars (the project's group_vars
    flattened in by the inventory sync, the ClickHouse password vaulted on its own) and _meta.hostvars - and env/ as
    AWX's credential injection fills it."""

    def __init__(self, workdir: Path, lab, hosts=("k2-lab",), group: str = "k2_docker_hosts") -> None:
        self.dir = workdir
        self.vault_password = secrets.token_hex(16)
        (workdir / "inventory").mkdir(parents=True)
        (workdir / "env").mkdir()
        (workdir / "project").symlink_to(ROOT)  # AWX copies the project; a link is the same tree
        host_vars = {"ansible_connection": "local", "ansible_python_interpreter": str(VENV_BIN / "python")}
        lab_vars = yaml.safe_load((ROOT / "inventory/lab/group_vars/k2_docker_hosts/lab.yml").read_text())
        self.passwords = {k: lab_vars.pop(k) for k in ("k2_postgres_password", "k2_clickhouse_password")}
        assert self.passwords["k2_postgres_password"] == lab.cfg.db_password, "the lab inventory matches the lab"
        password_file = workdir / "vault-password"
        password_file.write_text(self.vault_password)
        lab_vars["k2_clickhouse_password"] = _vaulted(self.passwords["k2_clickhouse_password"], password_file)
        password_file.unlink()  # only the answer to the prompt carries it from here on
        all_vars = yaml.safe_load((ROOT / "inventory/group_vars/all/k2.yml").read_text())
        inventory = {"all": {"children": ["ungrouped", group], "vars": all_vars},
                     group: {"hosts": list(hosts), "vars": lab_vars},
                     "_meta": {"hostvars": {h: host_vars for h in hosts}}}
        script = workdir / "inventory" / "hosts"
        script.write_text(f"#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint({json.dumps(inventory)!r})\n")
        script.chmod(0o700)
        self.env = {"passwords": {r"^Vault password:\s*?$": self.vault_password},
                    "cmdline": "--ask-vault-pass",
                    "envvars": {"K2_LAB_ROOT": str(ROOT)},
                    "settings": {"process_isolation": False, "suppress_ansible_output": True}}

    def run(self, playbook: str, ident: str, extravars: dict, timeout: float = 900) -> tuple[str, dict, str]:
        """(status, artifact_data of the playbook_on_stats event, stdout). The PostgreSQL password arrives as a
        credential type's extra_vars injector puts it; extra vars of the job template or of a workflow come along,
        all of them `!unsafe` as AWX writes them."""
        env = self.dir / "env"
        (env / "extravars").write_text(_awx_extravars(
            {"k2_postgres_password": self.passwords["k2_postgres_password"], **extravars}))
        for name in ("passwords", "envvars", "settings"):
            (env / name).write_text(json.dumps(self.env[name]))
        (env / "cmdline").write_text(self.env["cmdline"])
        clean_env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}  # the project's own cfg
        clean_env["PATH"] = f"{VENV_BIN}:{clean_env.get('PATH', '')}"
        subprocess.run([str(VENV_BIN / "ansible-runner"), "run", str(self.dir), "-p", playbook, "--ident", ident],
                       env=clean_env, capture_output=True, text=True, timeout=timeout, cwd=self.dir)
        artifacts = self.dir / "artifacts" / ident
        events = [json.loads(p.read_text()) for p in sorted((artifacts / "job_events").glob("*.json"))]
        stats = [e for e in events if e.get("event") == "playbook_on_stats"]
        assert stats, f"no playbook_on_stats event: {(artifacts / 'stdout').read_text()[-3000:]}"
        return ((artifacts / "status").read_text().strip(), stats[-1]["event_data"].get("artifact_data") or {},
                (artifacts / "stdout").read_text())


def test_diagnose_over_two_hosts_publishes_both_diagnoses_in_the_jobs_artifacts(lab, tmp_path):
    """Two inventory hosts (two names for the lab's one stack): a flat set_stats would keep the last host's."""
    job = AwxJob(tmp_path, lab, hosts=("k2-lab", "k2-lab-twin"))
    status, artifacts, stdout = job.run("playbooks/diagnose.yml", "diagnose", {}, timeout=300)
    assert status == "successful", stdout[-3000:]
    published = artifacts["k2_offload_diagnosis"]
    assert sorted(published) == ["k2-lab", "k2-lab-twin"]
    assert {published[h]["host"] for h in published} == {"k2-lab", "k2-lab-twin"}
    # The vault-encrypted ClickHouse password and the injected PostgreSQL password both reached the probes.
    assert all(published[h]["status"] == "healthy" and published[h]["blind"] == [] for h in published), published
    for secret in job.passwords.values():
        assert secret not in stdout and secret not in json.dumps(artifacts)


def test_workflow_diagnose_gate_then_remediate_from_artifacts_then_post_incident(clean_lab, tmp_path):
    """The workflow k2-offload-incident as AWX runs it: the diagnose node (diagnose_gate=true) fails on an
    unhealthy stack after publishing; its artifacts become the remediate node's extra vars (use_report=true), in
    another private data dir where no report file exists; the remediation recovers and publishes its result; the
    post-incident node passes."""
    lab = clean_lab
    lab.fault("worker-stopped")
    CHECKS["worker-stopped"](lab)  # this is worker-stopped's end-to-end test (test_lab_faults.py leaves it here)
    diagnose_job = AwxJob(tmp_path / "diagnose", lab)
    # The survey's answers as AWX sends them: text ("true"), not YAML booleans.
    status, diagnosis, stdout = diagnose_job.run("playbooks/diagnose.yml", "diagnose", {"diagnose_gate": "true"})
    assert status == "failed", "the gate fails the node, so that the workflow's failure edge remediates"
    assert "remediation needed" in stdout
    assert diagnosis["k2_offload_diagnosis"]["k2-lab"]["scenarios"][0]["scenario"] == 1, diagnosis

    remediate_job = AwxJob(tmp_path / "remediate", lab)
    missing_report = tmp_path / "remediate" / "no-such-report.json"
    status, result, stdout = remediate_job.run(
        "playbooks/remediate.yml", "remediate",
        {**diagnosis, "use_report": "true", "report_path": str(missing_report),
         "remediation_report_path": str(tmp_path / "remediate" / "remediation.json")})
    assert status == "successful", stdout[-4000:]
    assert not missing_report.exists()
    remediation = result["k2_offload_remediation"]["k2-lab"]
    assert remediation["status"] == "recovered" and remediation["remediated_scenarios"] == [1], remediation
    published_at = diagnosis["k2_offload_diagnosis"]["k2-lab"]["generated_at"]
    assert remediation["diagnosis_generated_at"] == published_at, "it acted on the published diagnosis"
    wm = lab.wm()
    assert wm["status"] == "success" and wm["failure_count"] == 0, wm
    lab.assert_no_row_lost_or_doubled()
    # AWX deletes the job's directory: the stack keeps its copy of the incident record on the Docker host.
    kept = lab.cfg.state_dir / "incidents" / "incidents.jsonl"
    record = json.loads(kept.read_text().splitlines()[-1])
    assert record["run"]["run_id"] == remediation["run_id"] and record["outcome"]["status"] == "recovered", record
    assert oct(kept.stat().st_mode & 0o777) == "0o600"

    # The workflow's last node: the runbook's post-incident check (the lab's schedule is paused: it creates the
    # three runs, one after another).
    verify_job = AwxJob(tmp_path / "verify", lab)
    status, verdict, stdout = verify_job.run(
        "playbooks/post_incident.yml", "verify",
        {"post_incident_report_path": str(tmp_path / "verify" / "post-incident.json")})
    assert status == "successful", stdout[-4000:]
    assert verdict["k2_offload_post_incident"] == {"k2-lab": "passed"}
    report = json.loads((tmp_path / "verify" / "post-incident.json").read_text())
    assert [r["state_type"] for r in report["flow_runs"]] == ["COMPLETED"] * 3 and report["created_runs"] == 3
    assert {c["check"]: c["passed"] for c in report["checks"]} == {"flow_runs": True, "lag": True, "alert": True,
                                                                   "truth": True}


def test_a_published_diagnosis_of_another_host_is_refused_and_nothing_changes(lab, tmp_path):
    """A workflow that hands over the wrong host's diagnosis must not remediate this one on it."""
    job = AwxJob(tmp_path, lab)
    other = {"kind": "k2-offload-diagnosis", "host": "k2-other", "generated_at": "2026-01-01T00:00:00Z"}
    status, _, stdout = job.run("playbooks/remediate.yml", "remediate",
                                {"use_report": True, "report_path": str(tmp_path / "absent.json"),
                                 "k2_offload_diagnosis": {"k2-lab": other}}, timeout=300)
    assert status == "failed"
    assert "published diagnosis k2_offload_diagnosis['k2-lab'] belongs to host 'k2-other', not 'k2-lab'." in stdout
    assert "Traceback" not in stdout and "Take the stack's remediation lock" not in stdout


def test_an_awx_inventory_without_the_k2_group_fails_the_job_rather_than_succeed_on_no_host(lab, tmp_path):
    """AWX's scheduled checks and the workflow's diagnose gate read a job's status: a job that matched no host must not
    read as a healthy stack."""
    job = AwxJob(tmp_path, lab, group="docker_hosts")
    status, artifacts, stdout = job.run("playbooks/diagnose.yml", "diagnose", {}, timeout=300)
    assert status == "failed", stdout[-3000:]
    assert "The inventory names no host in group k2_docker_hosts" in stdout and "Diagnose the Iceberg offload" not in stdout
    assert artifacts == {}
