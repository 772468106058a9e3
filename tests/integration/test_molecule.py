"""The molecule scenarios (molecule/<role>/), run against the shared lab: clear, fault, --check changes nothing,
converge, idempotence, verify (healthy, truth check clean), clear."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


def test_every_remediation_role_has_a_scenario():
    assert set(SCENARIOS) >= {"offload_worker", "offload_clickhouse", "offload_spark"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(lab, scenario):
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1",
           "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "molecule"), "test", "-s", scenario], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1200)
    output = proc.stdout + proc.stderr
    (ROOT / ".lab" / f"molecule-{scenario}.log").write_text(output)  # the whole run, for whoever debugs it
    assert proc.returncode == 0, output[-6000:]
    for step in ("prepare", "check", "side_effect", "converge", "idempotence", "verify", "destroy"):
        assert f"[{scenario} > {step}] Executed: Successful" in output, f"{step} did not run: {output[-3000:]}"
